package cloudflare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare/cftest"
)

func fakeClient(t *testing.T) (*Client, *cftest.Server) {
	t.Helper()
	f := cftest.New(t)
	c, err := NewClient(Credentials{Token: cftest.Token, BaseURL: f.URL()}, &Redactor{})
	if err != nil {
		t.Fatal(err)
	}
	c.BulkPoll = time.Millisecond
	return c, f
}

func TestIPListItems(t *testing.T) {
	ctx := context.Background()
	c, f := fakeClient(t)
	account, err := c.ZoneAccount(ctx, cftest.Zone)
	if err != nil || account != cftest.Account {
		t.Fatalf("ZoneAccount = %q, %v; want %s", account, err, cftest.Account)
	}
	if _, ok, err := c.FindIPList(ctx, account, "rw_block"); ok || err != nil {
		t.Fatalf("FindIPList before creation = %v, %v", ok, err)
	}
	l, err := c.CreateIPList(ctx, account, "rw_block", "test")
	if err != nil {
		t.Fatal(err)
	}
	// 600 items: more than one page of 500 when read back.
	var items []ListItem
	for i := range 600 {
		items = append(items, ListItem{IP: fmt.Sprintf("198.51.%d.%d", i/250, i%250), Comment: "c"})
	}
	items = append(items, ListItem{IP: "2001:db8:1:2::/64", Comment: "v6"})
	f.Mu.Lock()
	f.OpPolls = 3
	f.Mu.Unlock()
	if err := c.AddListItems(ctx, l, items); err != nil {
		t.Fatal(err)
	}
	// AddListItems returned only once the operation completed.
	if n := len(f.ListIPs("rw_block")); n != 601 {
		t.Fatalf("list holds %d items after AddListItems; want 601", n)
	}
	if n := f.Count(cftest.PBulkOperation); n != 4 {
		t.Errorf("bulk operation polled %d times; want 4 (3 pending, then completed)", n)
	}
	got, err := c.ListItems(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 601 || got[600].IP != "2001:db8:1:2::/64" || got[600].ID == "" {
		t.Fatalf("ListItems = %d items, last %+v", len(got), got[len(got)-1])
	}
	var ids []string
	for _, it := range got[:599] {
		ids = append(ids, it.ID)
	}
	if err := c.DeleteListItems(ctx, l, ids); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"198.51.2.99": "c", "2001:db8:1:2::/64": "v6"}, f.ListIPs("rw_block")); d != "" {
		t.Errorf("list after delete (-want +got):\n%s", d)
	}
	if l2, ok, err := c.FindIPList(ctx, account, "rw_block"); !ok || err != nil || l2.ID != l.ID || l2.Items != 2 {
		t.Errorf("FindIPList = %+v, %v, %v; want id %s with 2 items", l2, ok, err, l.ID)
	}
}

func TestIPListErrors(t *testing.T) {
	ctx := context.Background()
	c, f := fakeClient(t)
	l, err := c.CreateIPList(ctx, cftest.Account, "rw_block", "")
	if err != nil {
		t.Fatal(err)
	}
	add := []ListItem{{IP: "203.0.113.9"}}

	// A failed bulk operation changes nothing and says so.
	f.Mu.Lock()
	f.FailOps = 1
	f.Mu.Unlock()
	err = c.AddListItems(ctx, l, add)
	var be *BulkError
	if !errors.As(err, &be) || len(f.ListIPs("rw_block")) != 0 {
		t.Errorf("AddListItems with a failing operation = %v; want a *BulkError and no item", err)
	}

	// 429 with Retry-After, and 5xx: errors that say their status.
	f.Fail(cftest.PAddItems, 1, http.StatusTooManyRequests, 971, "Please wait and consider throttling your request speed", "7")
	err = c.AddListItems(ctx, l, add)
	if HTTPStatus(err) != 429 || RetryAfter(err) != 7*time.Second || !IsRateLimited(err) || !strings.Contains(err.Error(), "hint: Cloudflare is rate-limiting") {
		t.Errorf("AddListItems answered 429: err %v, status %d, retry after %v", err, HTTPStatus(err), RetryAfter(err))
	}
	f.Fail(cftest.PAddItems, 1, http.StatusBadGateway, 10013, "upstream failure", "")
	if err := c.AddListItems(ctx, l, add); HTTPStatus(err) != 502 {
		t.Errorf("AddListItems answered 502: err %v", err)
	}
	// Not retried by the client (the outbox retries): one request each.
	if n := f.Count(cftest.PAddItems); n != 3 {
		t.Errorf("%d add requests; want 3", n)
	}
	if err := c.AddListItems(ctx, l, add); err != nil || len(f.ListIPs("rw_block")) != 1 {
		t.Errorf("AddListItems after the failures = %v, list %v", err, f.ListIPs("rw_block"))
	}

	// A list of another kind, and a token without the permission.
	f.AddList("hosts", "hostname")
	if _, _, err := c.FindIPList(ctx, cftest.Account, "hosts"); err == nil || !strings.Contains(err.Error(), "holds hostname items") {
		t.Errorf("FindIPList of a hostname list = %v", err)
	}
	f.Fail(cftest.PLists, 1, http.StatusForbidden, 10000, "Authentication error", "")
	if _, _, err := c.FindIPList(ctx, cftest.Account, "rw_block"); err == nil || !strings.Contains(err.Error(), "Account Filter Lists") {
		t.Errorf("FindIPList without permission = %v; want the Lists permission named", err)
	}
	if err := CheckListName("--block-list", "raywatch-block"); err == nil {
		t.Errorf("CheckListName accepted a hyphen")
	}
}

func TestConnectBlockListOnce(t *testing.T) {
	ctx := context.Background()
	c, f := fakeClient(t)
	o := BlockConnectOptions{Zone: cftest.Zone, List: "rw_block", Action: ActionBlock}
	var out bytes.Buffer
	if err := c.ConnectBlockList(ctx, o, &out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`created IP list "rw_block"`, "created WAF custom rule", "block when ip.src in $rw_block"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	want := []map[string]any{{"action": "block", "expression": "ip.src in $rw_block", "enabled": true, "ref": "raywatch_block_rw_block"}}
	if d := cmp.Diff(want, pick(f.CustomRules(), "action", "expression", "enabled", "ref")); d != "" {
		t.Errorf("custom rules (-want +got):\n%s", d)
	}

	// A second run changes nothing.
	out.Reset()
	if err := c.ConnectBlockList(ctx, o, &out); err != nil {
		t.Fatal(err)
	}
	writes := f.Count(cftest.PCreateList) + f.Count(cftest.PCreateRuleset) + f.Count(cftest.PCreateRule) + f.Count(cftest.PEditRule)
	if writes != 2 || !strings.Contains(out.String(), "is up to date; nothing changed") {
		t.Errorf("second run: %d writes in all (want 2, from the first run); output:\n%s", writes, out.String())
	}

	// Another action updates the rule in place.
	o.Action = ActionManagedChallenge
	out.Reset()
	if err := c.ConnectBlockList(ctx, o, &out); err != nil {
		t.Fatal(err)
	}
	if f.Count(cftest.PEditRule) != 1 || !strings.Contains(out.String(), "action block → managed_challenge") {
		t.Errorf("edits %d; output:\n%s", f.Count(cftest.PEditRule), out.String())
	}
	if r, ok, err := c.FindBlockRule(ctx, cftest.Zone, "rw_block"); !ok || err != nil || r.Action != ActionManagedChallenge || !r.Enabled {
		t.Errorf("FindBlockRule = %+v, %v, %v", r, ok, err)
	}
}

func TestConnectBlockListKeepsOtherRules(t *testing.T) {
	ctx := context.Background()
	c, f := fakeClient(t)
	f.AddCustomRule(map[string]any{"action": "skip", "expression": `ip.src eq 192.0.2.10`, "description": "office"})
	f.AddList("rw_block", "ip")
	var out bytes.Buffer
	o := BlockConnectOptions{Zone: cftest.Zone, Account: cftest.Account, List: "rw_block", Action: ActionBlock, DryRun: true}
	if err := c.ConnectBlockList(ctx, o, &out); err != nil {
		t.Fatal(err)
	}
	if n := len(f.CustomRules()); n != 1 || !strings.Contains(out.String(), "dry run: would create the WAF custom rule") {
		t.Errorf("dry run: %d rules; output:\n%s", n, out.String())
	}
	o.DryRun = false
	if err := c.ConnectBlockList(ctx, o, &out); err != nil {
		t.Fatal(err)
	}
	got := pick(f.CustomRules(), "action", "expression")
	want := []map[string]any{{"action": "skip", "expression": "ip.src eq 192.0.2.10"}, {"action": "block", "expression": "ip.src in $rw_block"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("custom rules (-want +got):\n%s", d)
	}
	if f.Count(cftest.PCreateList) != 0 || f.Count(cftest.PZone) != 0 {
		t.Errorf("the existing list was created again, or the zone read despite the account given")
	}
}

// pick keeps the keys of each map.
func pick(ms []map[string]any, keys ...string) []map[string]any {
	var out []map[string]any
	for _, m := range ms {
		o := map[string]any{}
		for _, k := range keys {
			o[k] = m[k]
		}
		out = append(out, o)
	}
	return out
}
