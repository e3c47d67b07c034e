package block

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare/cftest"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/notify"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

const list = "rw_block"

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a Blocker over a store, run by a notification dispatcher,
// talking to the fake Cloudflare API.
type env struct {
	f     *cftest.Server
	st    *store.Store
	b     *Blocker
	d     *notify.Dispatcher
	clock *clock
	logs  *logBuffer
}

// testOptions are fast options: rules r1 and r2 at level high and above.
func testOptions() Options {
	return Options{
		List: list, Zone: cftest.Zone, Rules: []string{"r1", "r2"}, TTL: 24 * time.Hour,
		MinInterval: time.Millisecond, ExpiryInterval: 5 * time.Millisecond,
	}
}

// start runs a Blocker with o (and the dispatcher, and the expiry loop)
// until the test ends.
func start(t *testing.T, o Options) *env {
	t.Helper()
	e := &env{f: cftest.New(t), clock: &clock{t: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}, logs: &logBuffer{}}
	o.Now = e.clock.Now
	o.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(filepath.Join(t.TempDir(), "alerts.db"), store.Options{
		Timeout: time.Second, GroupWindow: time.Hour, Outputs: []string{OutputName},
		OutboxFilter: func(_ string, a *alert.Alert) bool { return o.Accepts(a) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := cloudflare.NewClient(cloudflare.Credentials{Token: cftest.Token, BaseURL: e.f.URL()}, &cloudflare.Redactor{})
	if err != nil {
		t.Fatal(err)
	}
	c.BulkPoll = time.Millisecond
	e.st = st
	if e.b, err = New(o, st, c); err != nil {
		t.Fatal(err)
	}
	e.d, err = notify.New(notify.Options{
		Extra: []notify.Output{e.b}, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		PollInterval: 10 * time.Millisecond, UpdateInterval: -1, Logger: o.Logger,
	}, st.Outbox(), st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.d.Run(ctx) })
	wg.Go(func() { e.b.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return e
}

var keys int

// commit commits an alert of rule (level high) from ip and returns it as
// stored.
func (e *env) commit(t *testing.T, rule, ip string) alert.Alert {
	t.Helper()
	return e.commitLevel(t, rule, "high", ip)
}

func (e *env) commitLevel(t *testing.T, rule, level, ip string) alert.Alert {
	t.Helper()
	keys++
	ts := e.clock.Now()
	a := alert.Alert{
		ID: alert.AlertID(ts, rule, fmt.Sprint(keys)), RecordKey: fmt.Sprint(keys), Count: 1, FirstSeen: ts, LastSeen: ts,
		Rule:   alert.RuleRef{ID: rule, Title: "Title of " + rule, Level: level},
		Status: alert.StatusNew, Intake: "default",
		Event: map[string]any{"source": map[string]any{"ip": ip}, "url": map[string]any{"domain": "shop.example"}},
	}
	out, err := e.st.Commit(context.Background(), store.Batch{Alerts: []alert.Alert{a}})
	if err != nil {
		t.Fatal(err)
	}
	e.d.Wake()
	return out[0]
}

// idle waits until the outbox holds no block job.
func (e *env) idle(t *testing.T) {
	t.Helper()
	waitFor(t, "an empty outbox", func() bool {
		s, err := e.st.Outbox().Stats(OutputName)
		return err == nil && s.Queued == 0
	})
}

func (e *env) report(t *testing.T, ip string) Report {
	t.Helper()
	r, err := e.b.Report(context.Background(), ip, 100)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// trail returns the audit trail, oldest first, as "action address who".
func (e *env) trail(t *testing.T) []string {
	t.Helper()
	var out []string
	rep := e.report(t, "")
	for i := len(rep.Audit) - 1; i >= 0; i-- {
		r := rep.Audit[i]
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", r.Action, r.Address, r.Who)))
	}
	return out
}

// writes counts the requests that change lists.
func (e *env) writes() int {
	return e.f.Count(cftest.PAddItems) + e.f.Count(cftest.PDeleteItems) + e.f.Count(cftest.PCreateList)
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not a guess
	}
}

func TestAlertListsItsAddress(t *testing.T) {
	e := start(t, testOptions())
	a := e.commit(t, "r1", "203.0.113.7")
	waitFor(t, "the address on the list", func() bool { return len(e.f.ListIPs(list)) == 1 })
	e.idle(t)
	want := map[string]string{"203.0.113.7": "raywatch: rule r1 alert " + a.ID + ": Title of r1"}
	if d := cmp.Diff(want, e.f.ListIPs(list)); d != "" {
		t.Errorf("Cloudflare's list (-want +got):\n%s", d)
	}
	rep := e.report(t, "203.0.113.7")
	if len(rep.Entries) != 1 || !rep.Entries[0].Until.Equal(e.clock.Now().Add(24*time.Hour)) || rep.Entries[0].Who != "rule:r1" || rep.Entries[0].Alert != a.ID {
		t.Errorf("entries = %+v; want 203.0.113.7 until now+24h, by rule:r1 for alert %s", rep.Entries, a.ID)
	}
	if d := cmp.Diff([]string{"block 203.0.113.7 rule:r1"}, e.trail(t)); d != "" {
		t.Errorf("audit trail (-want +got):\n%s", d)
	}
	if e.f.Count(cftest.PCreateList) != 1 || e.f.Count(cftest.PBulkOperation) < 1 {
		t.Errorf("list creations %d, bulk operation polls %d; want 1 and at least 1", e.f.Count(cftest.PCreateList), e.f.Count(cftest.PBulkOperation))
	}
	// A rule not chosen, or a level below high, lists nothing.
	e.commit(t, "r-other", "198.51.100.20")
	e.commitLevel(t, "r2", "medium", "198.51.100.21")
	e.idle(t)
	if d := cmp.Diff([]string{"203.0.113.7"}, keysOf(e.f.ListIPs(list))); d != "" {
		t.Errorf("list (-want +got):\n%s", d)
	}
}

func TestSecondAlertExtendsTTLAndExpiryRemoves(t *testing.T) {
	e := start(t, testOptions())
	t0 := e.clock.Now()
	e.commit(t, "r1", "203.0.113.7")
	waitFor(t, "the address on the list", func() bool { return len(e.f.ListIPs(list)) == 1 })
	e.idle(t)

	e.clock.Add(3 * time.Hour)
	a2 := e.commit(t, "r2", "203.0.113.7")
	e.idle(t)
	rep := e.report(t, "203.0.113.7")
	if len(rep.Entries) != 1 || !rep.Entries[0].Until.Equal(t0.Add(27*time.Hour)) || rep.Entries[0].Alert != a2.ID {
		t.Fatalf("entries = %+v; want until t0+27h, alert %s", rep.Entries, a2.ID)
	}
	if e.f.Count(cftest.PAddItems) != 1 {
		t.Errorf("%d add requests; an extension must not touch Cloudflare's list", e.f.Count(cftest.PAddItems))
	}

	// Still listed after the first alert's 24 hours.
	e.clock.Add(25 * time.Hour)
	e.idle(t)
	if len(e.f.ListIPs(list)) != 1 {
		t.Fatalf("the address went before its extended time")
	}
	e.clock.Add(2 * time.Hour)
	waitFor(t, "the expiry", func() bool { return len(e.f.ListIPs(list)) == 0 && len(e.report(t, "").Entries) == 0 })
	want := []string{"block 203.0.113.7 rule:r1", "extend 203.0.113.7 rule:r2", "expire 203.0.113.7 raywatch"}
	if d := cmp.Diff(want, e.trail(t)); d != "" {
		t.Errorf("audit trail (-want +got):\n%s", d)
	}
	if r := e.report(t, "").Audit[0]; !strings.Contains(r.Reason, "--block-ttl 24h0m0s") || !r.At.Equal(e.clock.Now()) {
		t.Errorf("expiry record = %+v", r)
	}
}

func TestNeverListed(t *testing.T) {
	o := testOptions()
	var err error
	if o.Never, err = ParseNever("198.51.100.0/24, 2001:db8:5::/48 ,192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	e := start(t, o)
	for _, ip := range []string{
		"10.1.2.3", "172.16.5.5", "192.168.1.1", "127.0.0.1", "100.64.0.9", "169.254.1.1", "::1", "fe80::1", "fd00::5",
		"::ffff:10.0.0.1",  // mapped private
		"104.16.1.1",       // Cloudflare's
		"2606:4700::1111",  // Cloudflare's
		"198.51.100.77",    // --block-never range
		"192.0.2.1",        // --block-never address
		"2001:db8:5:1::9",  // --block-never /48 covers its /64
		"not an address",   //
		"203.0.113.9",      // the one to list
		"2001:db8:1:2::99", // listed as its /64
	} {
		e.commit(t, "r1", ip)
	}
	e.idle(t)
	want := []string{"203.0.113.9", "2001:db8:1:2::/64"}
	var got []string
	for ip := range e.f.ListIPs(list) {
		got = append(got, ip)
	}
	if !cmp.Equal(want, got, cmpSorted) {
		t.Errorf("list = %v; want %v", got, want)
	}
	// Nor by hand.
	for _, ip := range []string{"10.0.0.1", "104.16.0.1", "198.51.100.1", "2001:db8:5::1"} {
		if _, err := e.b.Block(context.Background(), Request{IP: ip}, "alice"); err == nil || !strings.Contains(err.Error(), "never listed") {
			t.Errorf("Block(%s) = %v; want a refusal", ip, err)
		}
	}
	if !strings.Contains(e.logs.String(), "source address never listed") || !strings.Contains(e.logs.String(), "Cloudflare's own addresses") {
		t.Errorf("the refusals are not logged:\n%s", e.logs.String())
	}
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

func TestRetriedWithoutLoss(t *testing.T) {
	e := start(t, testOptions())
	// The list exists; its changes fail: 429 with Retry-After, a 503, a
	// bulk operation that fails, then a 502 on the poll.
	e.f.AddList(list, "ip")
	e.f.Fail(cftest.PAddItems, 1, http.StatusTooManyRequests, 971, "Please wait and consider throttling your request speed", "1")
	e.f.Fail(cftest.PAddItems, 1, http.StatusServiceUnavailable, 10000+13, "service unavailable", "")
	e.f.Mu.Lock()
	e.f.FailOps = 1
	e.f.Mu.Unlock()
	e.f.Fail(cftest.PBulkOperation, 1, http.StatusBadGateway, 10013, "bad gateway", "")
	ips := []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"}
	for _, ip := range ips {
		e.commit(t, "r1", ip)
	}
	waitFor(t, "every address listed", func() bool { return len(e.f.ListIPs(list)) == 3 })
	e.idle(t)
	want := []string{"block 203.0.113.1 rule:r1", "block 203.0.113.2 rule:r1", "block 203.0.113.3 rule:r1"}
	if got := e.trail(t); !cmp.Equal(want, got, cmpSorted) {
		t.Errorf("audit trail = %v; want one block per address", got)
	}
	if n := len(e.f.ListByName(list).Items); n != 3 {
		t.Errorf("the list holds %d items; want 3", n)
	}
	var s notify.OutputStatus
	waitFor(t, "the output to report success", func() bool {
		rep, err := e.d.Report(context.Background())
		s = rep.Outputs[0]
		return err == nil && s.State == "ok"
	})
	if s.Retried != 3 || s.Failed != 0 || s.Delivered != 3 {
		t.Errorf("output status = %+v; want 3 retries (429, 503, failed operation; the 502 of a poll is retried at once), no failure, 3 delivered", s)
	}
	if r := e.report(t, ""); r.LastError != "" {
		t.Errorf("report still shows the error %q", r.LastError)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	o := testOptions()
	o.DryRun = true
	e := start(t, o)
	a := e.commit(t, "r1", "203.0.113.7")
	e.idle(t)
	if n := e.writes() + e.f.Count(cftest.PLists) + e.f.Count(cftest.PZone); n != 0 {
		t.Errorf("a dry run made %d requests to Cloudflare", n)
	}
	rep := e.report(t, "")
	if !rep.DryRun || len(rep.Entries) != 1 || !rep.Entries[0].DryRun || rep.Entries[0].Alert != a.ID {
		t.Errorf("report = %+v; want the address as a dry run's entry", rep)
	}
	if len(rep.Audit) != 1 || !rep.Audit[0].DryRun || rep.Audit[0].Action != store.BlockActionBlock {
		t.Errorf("audit = %+v; want one dry-run block", rep.Audit)
	}
	if !strings.Contains(e.logs.String(), "dry run: would list the source address") {
		t.Errorf("the dry run does not say what it would list:\n%s", e.logs.String())
	}
	// By hand too, and the expiry of a dry run's entry.
	if _, err := e.b.Block(context.Background(), Request{IP: "198.51.100.4", Reason: "scanner"}, "alice"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(25 * time.Hour)
	waitFor(t, "the expiry", func() bool { return len(e.report(t, "").Entries) == 0 })
	if n := e.writes(); n != 0 {
		t.Errorf("a dry run made %d changes on Cloudflare", n)
	}
}

func TestMaxExpiresOldestFirst(t *testing.T) {
	o := testOptions()
	o.Max = 2
	e := start(t, o)
	for _, ip := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
		e.commit(t, "r1", ip)
		e.idle(t)
		e.clock.Add(time.Minute)
	}
	waitFor(t, "the list to settle", func() bool { return len(e.f.ListIPs(list)) == 2 })
	if got := e.f.ListIPs(list); got["203.0.113.1"] != "" || got["203.0.113.3"] == "" {
		t.Errorf("list = %v; want .2 and .3 (the oldest made room)", got)
	}
	rep := e.report(t, "")
	if !rep.Full || rep.Evicted != 1 || rep.Listed != 2 {
		t.Errorf("report: full %v, evicted %d, listed %d; want true, 1, 2", rep.Full, rep.Evicted, rep.Listed)
	}
	want := []string{"block 203.0.113.1 rule:r1", "block 203.0.113.2 rule:r1", "expire 203.0.113.1 raywatch", "block 203.0.113.3 rule:r1"}
	if d := cmp.Diff(want, e.trail(t)); d != "" {
		t.Errorf("audit trail (-want +got):\n%s", d)
	}
}

func TestIPv6ListedAsSlash64(t *testing.T) {
	e := start(t, testOptions())
	e.commit(t, "r1", "2001:db8:1:2:aaaa::1")
	e.idle(t)
	e.clock.Add(time.Hour)
	e.commit(t, "r2", "2001:db8:1:2:bbbb::2") // same /64: extends
	e.idle(t)
	if d := cmp.Diff([]string{"2001:db8:1:2::/64"}, keysOf(e.f.ListIPs(list))); d != "" {
		t.Errorf("list (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"block 2001:db8:1:2::/64 rule:r1", "extend 2001:db8:1:2::/64 rule:r2"}, e.trail(t)); d != "" {
		t.Errorf("audit trail (-want +got):\n%s", d)
	}
	if r := e.report(t, "2001:db8:1:2:cccc::3"); len(r.Entries) != 1 || len(r.Audit) != 2 {
		t.Errorf("report of another address of the /64 = %d entries, %d records; want 1, 2", len(r.Entries), len(r.Audit))
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestBlockAndUnblockByHand(t *testing.T) {
	ctx := context.Background()
	e := start(t, testOptions())
	ent, err := e.b.Block(ctx, Request{IP: "203.0.113.50", Reason: "credential stuffing", Alert: "a1"}, "dashboard")
	if err != nil {
		t.Fatal(err)
	}
	if ent.Who != "dashboard" || ent.Reason != "credential stuffing" || e.f.ListIPs(list)["203.0.113.50"] != "raywatch: blocked by dashboard: credential stuffing" {
		t.Errorf("entry %+v, list %v", ent, e.f.ListIPs(list))
	}
	if _, err := e.b.Unblock(ctx, "203.0.113.50", "false positive", "dashboard"); err != nil {
		t.Fatal(err)
	}
	if len(e.f.ListIPs(list)) != 0 {
		t.Errorf("still listed after Unblock: %v", e.f.ListIPs(list))
	}
	if _, err := e.b.Unblock(ctx, "203.0.113.50", "", "dashboard"); err == nil || !strings.Contains(err.Error(), "not on the block list") {
		t.Errorf("second Unblock = %v; want not listed", err)
	}
	// The rules leave an unblocked address alone for a TTL...
	e.commit(t, "r1", "203.0.113.50")
	e.idle(t)
	if len(e.f.ListIPs(list)) != 0 {
		t.Errorf("a rule listed an address unblocked by hand")
	}
	if r := e.report(t, "203.0.113.50"); len(r.Holds) != 1 || r.Holds[0].Who != "dashboard" {
		t.Errorf("holds = %+v", r.Holds)
	}
	// ...then list it again.
	e.clock.Add(25 * time.Hour)
	waitFor(t, "the hold to end", func() bool { return len(e.report(t, "").Holds) == 0 })
	e.commit(t, "r1", "203.0.113.50")
	waitFor(t, "the address listed again", func() bool { return len(e.f.ListIPs(list)) == 1 })
	e.idle(t)
	want := []string{"block 203.0.113.50 dashboard", "unblock 203.0.113.50 dashboard", "block 203.0.113.50 rule:r1"}
	if d := cmp.Diff(want, e.trail(t)); d != "" {
		t.Errorf("audit trail (-want +got):\n%s", d)
	}
	if rec := e.report(t, "").Audit[1]; rec.Reason != "false positive" {
		t.Errorf("unblock record = %+v", rec)
	}
}

func TestAddressForms(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "203.0.113.7", want: "203.0.113.7"},
		{in: " 203.0.113.7 ", want: "203.0.113.7"},
		{in: "203.0.113.7/32", want: "203.0.113.7"},
		{in: "::ffff:203.0.113.7", want: "203.0.113.7"},
		{in: "2001:db8:1:2:3:4:5:6", want: "2001:db8:1:2::/64"},
		{in: "2001:db8:1:2::/64", want: "2001:db8:1:2::/64"},
		{in: "fe80::1%eth0", want: "fe80::/64"},
		{in: "203.0.113.0/24", err: "give an address"},
		{in: "2001:db8::/48", err: "give an address"},
		{in: "example.com", err: "not an IP address"},
	} {
		_, got, err := Address(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Address(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Address(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseNever("10.0.0.0/8,bogus"); err == nil || !strings.Contains(err.Error(), `--block-never "bogus"`) {
		t.Errorf("ParseNever with a bad item = %v", err)
	}
	for _, s := range append(append([]string{}, CloudflareIPv4...), CloudflareIPv6...) {
		if _, err := netip.ParsePrefix(s); err != nil {
			t.Errorf("Cloudflare range %q: %v", s, err)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{List: "bad-name", MinLevel: "severe", TTL: time.Second}
	err := o.Validate()
	for _, w := range []string{"--block-list", "--block-min-level", "--block-rules", "--block-ttl", "CLOUDFLARE_ACCOUNT_ID"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate = %v; want it to name %s", err, w)
		}
	}
	o = Options{List: "ok_name", Rules: []string{AllRules}, DryRun: true}
	if err := o.Validate(); err != nil {
		t.Errorf("a dry run without an account: %v", err)
	}
	if !o.Accepts(&alert.Alert{Rule: alert.RuleRef{ID: "any", Level: "critical"}}) || o.Accepts(&alert.Alert{Rule: alert.RuleRef{ID: "any", Level: "medium"}}) {
		t.Errorf("Accepts with every rule, min level high: wrong")
	}
}
