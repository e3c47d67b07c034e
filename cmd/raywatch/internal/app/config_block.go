package app

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/block"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/alert"
)

// BlockConfig is the edge response: the alerts' source addresses listed
// in a Cloudflare IP list (see package block). It is off unless List is
// set.
type BlockConfig struct {
	// List is --block-list, the account IP list's name.
	List string
	// MinLevel, Rules (comma-separated ids, "" for the built-in rules and
	// the intelligence-feed rule, "*" for every rule), TTL, Never
	// (comma-separated CIDRs), DryRun and Max are the --block-* flags.
	MinLevel string
	Rules    string
	TTL      time.Duration
	Never    string
	DryRun   bool
	Max      int
	// Account is CLOUDFLARE_ACCOUNT_ID.
	Account string
}

// flags registers the --block-* flags on fs.
func (b *BlockConfig) flags(fs *flag.FlagSet, env Env) {
	fs.StringVar(&b.List, "block-list", env.Or("RAYWATCH_BLOCK_LIST", ""), "respond at the edge: list the source addresses of alerts in this Cloudflare account IP list, which `raywatch cloudflare connect --block-list` applies to the zone with a WAF custom rule; off when empty (RAYWATCH_BLOCK_LIST)")
	fs.StringVar(&b.MinLevel, "block-min-level", env.Or("RAYWATCH_BLOCK_MIN_LEVEL", "high"), "lowest level of the alerts whose source is listed (RAYWATCH_BLOCK_MIN_LEVEL)")
	fs.StringVar(&b.Rules, "block-rules", env.Or("RAYWATCH_BLOCK_RULES", ""), "comma-separated ids of the rules whose alerts list their source; empty means the built-in rules and the intelligence-feed rule, * every rule (RAYWATCH_BLOCK_RULES)")
	fs.DurationVar(&b.TTL, "block-ttl", env.Duration("RAYWATCH_BLOCK_TTL", 24*time.Hour), "how long an address stays listed after its last alert (RAYWATCH_BLOCK_TTL)")
	fs.StringVar(&b.Never, "block-never", env.Or("RAYWATCH_BLOCK_NEVER", ""), "comma-separated addresses and CIDR ranges never listed (loopback, private and Cloudflare's own ranges never are) (RAYWATCH_BLOCK_NEVER)")
	fs.BoolVar(&b.DryRun, "block-dry-run", env.Bool("RAYWATCH_BLOCK_DRY_RUN"), "log and show what would be listed; never change the Cloudflare list (RAYWATCH_BLOCK_DRY_RUN)")
	fs.IntVar(&b.Max, "block-max", int(env.Int("RAYWATCH_BLOCK_MAX", 1000)), "most addresses listed at once; beyond it the entries that expire first go (RAYWATCH_BLOCK_MAX)")
	b.Account = env("CLOUDFLARE_ACCOUNT_ID")
}

// options returns the block options of the configuration; the zone (of
// RAYWATCH_CLOUDFLARE_ZONE) finds the account when CLOUDFLARE_ACCOUNT_ID
// is not set.
func (b *BlockConfig) options(zone string) (block.Options, error) {
	o := block.Options{
		List: b.List, Account: b.Account, Zone: zone, MinLevel: b.MinLevel,
		TTL: b.TTL, DryRun: b.DryRun, Max: b.Max,
	}
	var err error
	if o.Never, err = block.ParseNever(b.Never); err != nil {
		return o, err
	}
	for id := range strings.SplitSeq(b.Rules, ",") {
		if id = strings.TrimSpace(id); id != "" {
			o.Rules = append(o.Rules, id)
		}
	}
	if len(o.Rules) == 0 {
		builtin, err := rules.Builtin()
		if err != nil {
			return o, err
		}
		for _, r := range builtin {
			o.Rules = append(o.Rules, r.ID)
		}
	}
	return o, nil
}

// validate checks the --block-* flags (cfg gives the Cloudflare
// credentials and zone); nothing when the edge response is off.
func (b *BlockConfig) validate(cfg *Config) []error {
	if b.List == "" {
		return nil
	}
	o, err := b.options(cfg.Cloudflare.Zone)
	if err != nil {
		return []error{err}
	}
	var errs []error
	if o.Max <= 0 {
		errs = append(errs, fmt.Errorf("--block-max %d: at least 1", o.Max))
	}
	if !b.DryRun && !cfg.Cloudflare.Credentials.Set() {
		errs = append(errs, errors.New("--block-list needs Cloudflare API credentials: CLOUDFLARE_API_TOKEN (with Account Filter Lists Edit), or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY; or try it with --block-dry-run"))
	}
	if err := o.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// enabled reports whether the edge response is on.
func (b *BlockConfig) enabled() bool { return b.List != "" }

// outboxOutputs returns outputs with the block list's queue added when the
// edge response is on: the store's Options.Outputs.
func (b *BlockConfig) outboxOutputs(outputs []string) []string {
	if !b.enabled() {
		return outputs
	}
	return append(outputs[:len(outputs):len(outputs)], block.OutputName)
}

// outboxFilter returns the store's Options.OutboxFilter: the block list's
// queue takes what its options accept, the other outputs what filter does
// (nil: everything).
func (b *BlockConfig) outboxFilter(o block.Options, filter func(string, *alert.Alert) bool) func(string, *alert.Alert) bool {
	return func(output string, a *alert.Alert) bool {
		if output == block.OutputName {
			return o.Accepts(a)
		}
		return filter == nil || filter(output, a)
	}
}
