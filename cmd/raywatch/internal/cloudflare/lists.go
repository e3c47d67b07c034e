package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/cloudflare/cloudflare-go/v6/logpush"
	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/rules"
	"github.com/cloudflare/cloudflare-go/v6/zones"
)

// IPList is an account-level IP list of Cloudflare (the Lists API, kind
// ip), which WAF custom rules reference as $Name.
type IPList struct {
	Account string
	ID      string
	Name    string
	// Items is the number of items Cloudflare counted when the list was
	// read.
	Items int
}

// ListItem is one item of an IP list.
type ListItem struct {
	// ID is Cloudflare's id of the item; "" for an item to add.
	ID string
	// IP is an IPv4 or IPv6 address or range.
	IP      string
	Comment string
}

// listNameRE is what Cloudflare accepts as a list name.
var listNameRE = regexp.MustCompile(`^[a-zA-Z0-9_]{1,50}$`)

// CheckListName checks a list name as Cloudflare would, naming flag in
// the error.
func CheckListName(flag, name string) error {
	if !listNameRE.MatchString(name) {
		return fmt.Errorf("%s %q: a Cloudflare list name has 1 to 50 letters, digits and underscores", flag, name)
	}
	return nil
}

// Hints for the errors of the Lists and Rulesets APIs.
const (
	hintListsAuth = "check the credentials: the API token needs Account · Account Filter Lists · Edit on the account " +
		"(and Zone · Zone · Read to find the account of --zone without CLOUDFLARE_ACCOUNT_ID)"
	hintWAFAuth = "check the credentials: the API token needs Zone · Zone WAF · Edit on the zone, " +
		"and Account · Account Filter Lists · Edit on its account"
)

// explainWith is explainAPI with authHint in place of the Logpush one.
func explainWith(op string, err error, authHint string) error {
	err = explainAPI(op, err)
	var ce *cfError
	if errors.As(err, &ce) && ce.Hint == hintAuth {
		ce.Hint = authHint
	}
	return err
}

// HTTPStatus returns the HTTP status of an error answer of Cloudflare's
// API, or 0 for another error (the network's, the context's).
func HTTPStatus(err error) int {
	var ce *cfError
	if errors.As(err, &ce) {
		return ce.Status
	}
	var ae *logpush.Error
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

// RetryAfter returns the wait an error answer asked for with Retry-After
// (in seconds), or 0.
func RetryAfter(err error) time.Duration {
	var ce *cfError
	if errors.As(err, &ce) {
		return ce.RetryAfter
	}
	return 0
}

// ZoneAccount returns the id of the account zone belongs to.
func (c *Client) ZoneAccount(ctx context.Context, zone string) (string, error) {
	var p zones.ZoneGetParams
	p.ZoneID.Value, p.ZoneID.Present = zone, true
	z, err := c.zones.Get(ctx, p)
	if err != nil {
		return "", explainWith("read zone "+zone, err, hintListsAuth)
	}
	if z.Account.ID == "" {
		return "", fmt.Errorf("read zone %s: Cloudflare did not say which account it belongs to; set CLOUDFLARE_ACCOUNT_ID", zone)
	}
	return z.Account.ID, nil
}

// FindIPList returns the account's list named name; ok is false when
// there is none. A list of that name of another kind is an error.
func (c *Client) FindIPList(ctx context.Context, account, name string) (l IPList, ok bool, err error) {
	var p rules.ListListParams
	p.AccountID.Value, p.AccountID.Present = account, true
	page, err := c.lists.List(ctx, p)
	if err != nil {
		return IPList{}, false, explainWith("list the account's lists", err, hintListsAuth)
	}
	for _, x := range page.Result {
		if x.Name != name {
			continue
		}
		if x.Kind != rules.ListsListKindIP {
			return IPList{}, false, fmt.Errorf("the account's list %q holds %s items, not IP addresses; choose another --block-list", name, x.Kind)
		}
		return IPList{Account: account, ID: x.ID, Name: x.Name, Items: int(x.NumItems)}, true, nil
	}
	return IPList{}, false, nil
}

// CreateIPList creates an IP list in the account.
func (c *Client) CreateIPList(ctx context.Context, account, name, description string) (IPList, error) {
	var p rules.ListNewParams
	p.AccountID.Value, p.AccountID.Present = account, true
	p.Name.Value, p.Name.Present = name, true
	p.Kind.Value, p.Kind.Present = rules.ListNewParamsKindIP, true
	p.Description.Value, p.Description.Present = description, true
	// No retry: a create that timed out may have succeeded.
	res, err := c.lists.New(ctx, p, option.WithMaxRetries(0))
	if err != nil {
		return IPList{}, explainWith("create list "+name, err, hintListsAuth)
	}
	return IPList{Account: account, ID: res.ID, Name: res.Name}, nil
}

// ListItems returns every item of the list.
func (c *Client) ListItems(ctx context.Context, l IPList) ([]ListItem, error) {
	var p rules.ListItemListParams
	p.AccountID.Value, p.AccountID.Present = l.Account, true
	p.PerPage.Value, p.PerPage.Present = 500, true
	it := c.lists.Items.ListAutoPaging(ctx, l.ID, p)
	var out []ListItem
	for it.Next() {
		x := it.Current()
		out = append(out, ListItem{ID: x.ID, IP: x.IP, Comment: x.Comment})
	}
	if err := it.Err(); err != nil {
		return nil, explainWith("read the items of list "+l.Name, err, hintListsAuth)
	}
	return out, nil
}

// AddListItems adds items to the list (an address already on it gets the
// new comment) and waits until Cloudflare has applied them. The request
// is not retried here: the caller retries (the outbox does). Calls that
// change lists must not overlap: Cloudflare runs one bulk operation per
// account at a time and refuses another with 429.
func (c *Client) AddListItems(ctx context.Context, l IPList, items []ListItem) error {
	if len(items) == 0 {
		return nil
	}
	var p rules.ListItemNewParams
	p.AccountID.Value, p.AccountID.Present = l.Account, true
	for _, it := range items {
		var b rules.ListItemNewParamsBodyListsListItemIPComment
		b.IP.Value, b.IP.Present = it.IP, true
		if it.Comment != "" {
			b.Comment.Value, b.Comment.Present = it.Comment, true
		}
		p.Body = append(p.Body, b)
	}
	op := fmt.Sprintf("add %d items to list %s", len(items), l.Name)
	res, err := c.lists.Items.New(ctx, l.ID, p, option.WithMaxRetries(0))
	if err != nil {
		return explainWith(op, err, hintListsAuth)
	}
	return c.waitBulk(ctx, l.Account, res.OperationID, op)
}

// DeleteListItems removes the items of ids from the list and waits until
// Cloudflare has applied it; see [Client.AddListItems].
func (c *Client) DeleteListItems(ctx context.Context, l IPList, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var p rules.ListItemDeleteParams
	p.AccountID.Value, p.AccountID.Present = l.Account, true
	items := make([]rules.ListItemDeleteParamsItem, len(ids))
	for i, id := range ids {
		items[i].ID.Value, items[i].ID.Present = id, true
	}
	p.Items.Value, p.Items.Present = items, true
	op := fmt.Sprintf("remove %d items from list %s", len(ids), l.Name)
	res, err := c.lists.Items.Delete(ctx, l.ID, p, option.WithMaxRetries(0))
	if err != nil {
		return explainWith(op, err, hintListsAuth)
	}
	return c.waitBulk(ctx, l.Account, res.OperationID, op)
}

// BulkError is a bulk operation that Cloudflare reports failed.
type BulkError struct {
	Op, ID, Reason string
}

func (e *BulkError) Error() string {
	return fmt.Sprintf("%s: Cloudflare's bulk operation %s failed: %s", e.Op, e.ID, e.Reason)
}

// waitBulk polls the bulk operation id until it completes (nil) or fails
// (a *BulkError), or ctx ends. The wait between polls doubles from
// BulkPoll to 5 seconds.
func (c *Client) waitBulk(ctx context.Context, account, id, op string) error {
	if id == "" {
		return fmt.Errorf("%s: Cloudflare gave no operation id", op)
	}
	wait := c.BulkPoll
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	var p rules.ListBulkOperationGetParams
	p.AccountID.Value, p.AccountID.Present = account, true
	for {
		res, err := c.lists.BulkOperations.Get(ctx, id, p)
		if err != nil {
			return explainWith(op+": poll bulk operation "+id, err, hintListsAuth)
		}
		switch res.Status {
		case rules.ListBulkOperationGetResponseStatusCompleted:
			return nil
		case rules.ListBulkOperationGetResponseStatusFailed:
			reason := res.Error
			if reason == "" {
				reason = "no reason given"
			}
			return &BulkError{Op: op, ID: id, Reason: reason}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: waiting for bulk operation %s: %w", op, id, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// IsRateLimited reports whether err is Cloudflare's 429 (too many
// requests, or a bulk operation still running).
func IsRateLimited(err error) bool { return HTTPStatus(err) == http.StatusTooManyRequests }
