package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/rulesets"
	"github.com/cloudflare/cloudflare-go/v6/zones"
)

// Actions a block list's WAF custom rule may take.
const (
	ActionBlock            = "block"
	ActionManagedChallenge = "managed_challenge"
)

// BlockActions lists the actions of --block-action.
var BlockActions = []string{ActionBlock, ActionManagedChallenge}

// BlockRule is the WAF custom rule that makes a block list take effect on
// a zone: `ip.src in $LIST` with an action.
type BlockRule struct {
	Zone, Ruleset, ID string
	Action            string
	Expression        string
	Description       string
	Enabled           bool
}

// blockRulePlan is the rule raywatch wants for list with action.
func blockRulePlan(list, action string) BlockRule {
	return BlockRule{
		Action:      action,
		Expression:  "ip.src in $" + list,
		Description: "raywatch: " + action + " the addresses raywatch lists in $" + list,
		Enabled:     true,
	}
}

// blockRuleRef is the ref raywatch gives the rule of list, by which it
// finds it again.
func blockRuleRef(list string) string { return "raywatch_block_" + list }

// diff describes how r differs from the plan p; empty when it does not.
func (r BlockRule) diff(p BlockRule) []string {
	var out []string
	if r.Action != p.Action {
		out = append(out, fmt.Sprintf("action %s → %s", r.Action, p.Action))
	}
	if r.Expression != p.Expression {
		out = append(out, fmt.Sprintf("expression %q → %q", r.Expression, p.Expression))
	}
	if !r.Enabled {
		out = append(out, "enabled (was disabled)")
	}
	return out
}

// errNoEntrypoint is a zone without custom rules yet.
var errNoEntrypoint = errors.New("no custom-rules entry point ruleset")

// customRules returns the zone's http_request_firewall_custom entry point
// ruleset id and its rules; errNoEntrypoint when the zone has none.
func (c *Client) customRules(ctx context.Context, zone string) (string, []rulesets.PhaseGetResponseRule, error) {
	var p rulesets.PhaseGetParams
	p.ZoneID.Value, p.ZoneID.Present = zone, true
	rs, err := c.rulesets.Phases.Get(ctx, rulesets.PhaseHTTPRequestFirewallCustom, p)
	if HTTPStatus(err) == http.StatusNotFound {
		return "", nil, errNoEntrypoint
	}
	if err != nil {
		return "", nil, explainWith("read the zone's WAF custom rules", err, hintWAFAuth)
	}
	return rs.ID, rs.Rules, nil
}

// FindBlockRule returns the zone's WAF custom rule that raywatch made for
// list (found by its ref); ok is false when there is none.
func (c *Client) FindBlockRule(ctx context.Context, zone, list string) (r BlockRule, ok bool, err error) {
	rsID, rules, err := c.customRules(ctx, zone)
	if errors.Is(err, errNoEntrypoint) {
		return BlockRule{}, false, nil
	}
	if err != nil {
		return BlockRule{}, false, err
	}
	i := slices.IndexFunc(rules, func(x rulesets.PhaseGetResponseRule) bool { return x.Ref == blockRuleRef(list) })
	if i < 0 {
		return BlockRule{}, false, nil
	}
	x := rules[i]
	return BlockRule{Zone: zone, Ruleset: rsID, ID: x.ID, Action: string(x.Action), Expression: x.Expression,
		Description: x.Description, Enabled: x.Enabled}, true, nil
}

// BlockConnectOptions says what [Client.ConnectBlockList] makes.
type BlockConnectOptions struct {
	Zone string
	// Account holds the list; "" means the zone's account.
	Account string
	List    string
	// Action is ActionBlock or ActionManagedChallenge.
	Action string
	DryRun bool
}

// ConnectBlockList makes a block list take effect on a zone: it creates
// the IP list in the account when it is missing, then creates (or
// updates) the zone's WAF custom rule `ip.src in $LIST` with the action.
// It changes nothing when both are already right. It prints what it did
// to out.
func (c *Client) ConnectBlockList(ctx context.Context, o BlockConnectOptions, out io.Writer) error {
	if !slices.Contains(BlockActions, o.Action) {
		return fmt.Errorf("--block-action %q: want %s", o.Action, strings.Join(BlockActions, " or "))
	}
	account := o.Account
	if account == "" {
		var err error
		if account, err = c.ZoneAccount(ctx, o.Zone); err != nil {
			return err
		}
	}
	l, ok, err := c.FindIPList(ctx, account, o.List)
	switch {
	case err != nil:
		return err
	case ok:
		fmt.Fprintf(out, "IP list %q exists in account %s (%d items).\n", l.Name, account, l.Items)
	case o.DryRun:
		fmt.Fprintf(out, "dry run: would create IP list %q in account %s.\n", o.List, account)
	default:
		if l, err = c.CreateIPList(ctx, account, o.List, "Addresses raywatch blocks at the edge; raywatch adds and removes them"); err != nil {
			return err
		}
		fmt.Fprintf(out, "created IP list %q (%s) in account %s.\n", l.Name, l.ID, account)
	}
	return c.ensureBlockRule(ctx, o, out)
}

// ensureBlockRule creates or updates the zone's custom rule of the list.
func (c *Client) ensureBlockRule(ctx context.Context, o BlockConnectOptions, out io.Writer) error {
	plan := blockRulePlan(o.List, o.Action)
	rsID, rules, err := c.customRules(ctx, o.Zone)
	noEntrypoint := errors.Is(err, errNoEntrypoint)
	if err != nil && !noEntrypoint {
		return err
	}
	i := slices.IndexFunc(rules, func(x rulesets.PhaseGetResponseRule) bool { return x.Ref == blockRuleRef(o.List) })
	switch {
	case i < 0 && o.DryRun:
		fmt.Fprintf(out, "dry run: would create the WAF custom rule %q (%s) on zone %s.\n", plan.Expression, plan.Action, o.Zone)
		return nil
	case i < 0 && noEntrypoint:
		return c.createCustomRules(ctx, o.Zone, o.List, plan, out)
	case i < 0:
		return c.addBlockRule(ctx, o.Zone, rsID, o.List, plan, out)
	}
	have := rules[i]
	changes := BlockRule{Action: string(have.Action), Expression: have.Expression, Enabled: have.Enabled}.diff(plan)
	if len(changes) == 0 {
		fmt.Fprintf(out, "WAF custom rule %s (%q, %s) on zone %s is up to date; nothing changed.\n", have.ID, have.Expression, have.Action, o.Zone)
		return nil
	}
	if o.DryRun {
		fmt.Fprintf(out, "dry run: would update WAF custom rule %s on zone %s: %s.\n", have.ID, o.Zone, strings.Join(changes, "; "))
		return nil
	}
	var p rulesets.RuleEditParams
	p.ZoneID.Value, p.ZoneID.Present = o.Zone, true
	var b rulesets.RuleEditParamsBody
	b.Action.Value, b.Action.Present = rulesets.RuleEditParamsBodyAction(plan.Action), true
	b.Expression.Value, b.Expression.Present = plan.Expression, true
	b.Description.Value, b.Description.Present = plan.Description, true
	b.Enabled.Value, b.Enabled.Present = true, true
	b.Ref.Value, b.Ref.Present = blockRuleRef(o.List), true
	p.Body = b
	if _, err := c.rulesets.Rules.Edit(ctx, rsID, have.ID, p); err != nil {
		return explainWith("update WAF custom rule "+have.ID, err, hintWAFAuth)
	}
	fmt.Fprintf(out, "updated WAF custom rule %s on zone %s: %s.\n", have.ID, o.Zone, strings.Join(changes, "; "))
	return nil
}

// createCustomRules creates the zone's custom-rules entry point ruleset
// holding the block list's rule.
func (c *Client) createCustomRules(ctx context.Context, zone, list string, plan BlockRule, out io.Writer) error {
	var p rulesets.RulesetNewParams
	p.ZoneID.Value, p.ZoneID.Present = zone, true
	p.Kind.Value, p.Kind.Present = rulesets.KindZone, true
	p.Phase.Value, p.Phase.Present = rulesets.PhaseHTTPRequestFirewallCustom, true
	p.Name.Value, p.Name.Present = "default", true
	var r rulesets.RulesetNewParamsRule
	r.Action.Value, r.Action.Present = rulesets.RulesetNewParamsRulesAction(plan.Action), true
	r.Expression.Value, r.Expression.Present = plan.Expression, true
	r.Description.Value, r.Description.Present = plan.Description, true
	r.Enabled.Value, r.Enabled.Present = true, true
	r.Ref.Value, r.Ref.Present = blockRuleRef(list), true
	p.Rules.Value, p.Rules.Present = []rulesets.RulesetNewParamsRuleUnion{r}, true
	// No retry: a create that timed out may have succeeded.
	rs, err := c.rulesets.New(ctx, p, option.WithMaxRetries(0))
	if err != nil {
		return explainWith("create the zone's WAF custom rules", err, hintWAFAuth)
	}
	id := ""
	if len(rs.Rules) > 0 {
		id = rs.Rules[len(rs.Rules)-1].ID
	}
	fmt.Fprintf(out, "created WAF custom rule %s on zone %s: %s when %s.\n", id, zone, plan.Action, plan.Expression)
	return nil
}

// addBlockRule adds the block list's rule at the end of the zone's custom
// rules (after the user's own, such as skip rules for trusted addresses).
func (c *Client) addBlockRule(ctx context.Context, zone, rsID, list string, plan BlockRule, out io.Writer) error {
	var p rulesets.RuleNewParams
	p.ZoneID.Value, p.ZoneID.Present = zone, true
	var b rulesets.RuleNewParamsBody
	b.Action.Value, b.Action.Present = rulesets.RuleNewParamsBodyAction(plan.Action), true
	b.Expression.Value, b.Expression.Present = plan.Expression, true
	b.Description.Value, b.Description.Present = plan.Description, true
	b.Enabled.Value, b.Enabled.Present = true, true
	b.Ref.Value, b.Ref.Present = blockRuleRef(list), true
	p.Body = b
	rs, err := c.rulesets.Rules.New(ctx, rsID, p, option.WithMaxRetries(0))
	if err != nil {
		return explainWith("add the WAF custom rule", err, hintWAFAuth)
	}
	id := ""
	for _, r := range rs.Rules {
		if r.Ref == blockRuleRef(list) {
			id = r.ID
		}
	}
	fmt.Fprintf(out, "created WAF custom rule %s on zone %s: %s when %s.\n", id, zone, plan.Action, plan.Expression)
	return nil
}

// BlockStatus is the state of a block list on Cloudflare, for `raywatch
// cloudflare status`.
type BlockStatus struct {
	// Account is the account looked in; List is the list when Exists.
	Account string
	List    IPList
	Exists  bool
	// Rules are the zones' WAF custom rules of the list; Without names
	// the zones that have none.
	Rules   []BlockRule
	Without []string
}

// BlockListStatus reads the list named list in account (or, when
// account is "", in the account of zone or of the first zone the
// credentials read) and the rule of the list on zone (every zone the
// credentials read when zone is "").
func (c *Client) BlockListStatus(ctx context.Context, account, zone, list string) (BlockStatus, error) {
	type zoneRef struct{ id, name, account string }
	var zs []zoneRef
	if zone != "" {
		zs = []zoneRef{{id: zone, name: zone}}
	} else {
		var p zones.ZoneListParams
		p.PerPage.Value, p.PerPage.Present = 50, true
		it := c.zones.ListAutoPaging(ctx, p)
		for it.Next() {
			z := it.Current()
			zs = append(zs, zoneRef{z.ID, z.Name, z.Account.ID})
		}
		if err := it.Err(); err != nil {
			return BlockStatus{}, explainWith("list the zones", err, hintWAFAuth)
		}
	}
	st := BlockStatus{Account: account}
	var err error
	switch {
	case st.Account != "":
	case zone != "":
		if st.Account, err = c.ZoneAccount(ctx, zone); err != nil {
			return BlockStatus{}, err
		}
	case len(zs) > 0:
		st.Account = zs[0].account
	default:
		return BlockStatus{}, errors.New("no zone to find the account of the list: set CLOUDFLARE_ACCOUNT_ID or give --zone")
	}
	if st.List, st.Exists, err = c.FindIPList(ctx, st.Account, list); err != nil {
		return BlockStatus{}, err
	}
	for _, z := range zs {
		r, ok, err := c.FindBlockRule(ctx, z.id, list)
		if err != nil {
			return BlockStatus{}, err
		}
		if !ok {
			st.Without = append(st.Without, z.name)
			continue
		}
		r.Zone = z.name
		st.Rules = append(st.Rules, r)
	}
	return st, nil
}
