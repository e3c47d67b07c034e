package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/exception"
)

// clock is a settable clock for exception expiry.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func x(id, rule, comment string) exception.Exception {
	return exception.Exception{ID: id, Rule: rule, Comment: comment, Match: map[string]exception.Values{}}
}

func TestExceptions(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clk := newClock(t0)
	rs := parseRules(t, ruleRar+"---\n"+ruleOther+"---\n"+ruleJump)
	e, err := engine.NewWithOptions(rs, engine.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	const rar = "6f3e2987-db24-4c78-a860-b4f4095a7095"
	scanner := x("scanner", "*", "our vulnerability scanner")
	scanner.Match["source.ip"] = exception.Values{"198.51.100.7", "203.0.113.0/28"}
	health := x("health", rar, "health check")
	health.Match["url.path|startswith"] = exception.Values{"/health"}
	health.Match["user_agent.original|contains"] = exception.Values{"kube-probe"}
	temp := x("temp", "other", "until the migration ends")
	temp.Match["url.path|endswith"] = exception.Values{"/tmp.rar"}
	temp.Expires = t0.Add(time.Hour)
	if err := e.SetExceptions([]exception.Exception{scanner, health, temp}); err != nil {
		t.Fatal(err)
	}

	ev := func(ip, uri, ua string) *normalize.Event {
		return httpEvent(t, map[string]any{"ClientIP": ip, "ClientRequestURI": uri, "ClientRequestPath": uri, "ClientRequestUserAgent": ua, "RayID": ip + uri + ua})
	}
	tests := []struct {
		name string
		ev   *normalize.Event
		want []string
	}{
		{"scanner ip, every rule", ev("198.51.100.7", "/a.rar", "x"), nil},
		{"scanner range", ev("203.0.113.9", "/login", "x"), nil},
		{"another source still alerts", ev("198.51.100.8", "/a.rar", "x"), []string{rar, "other"}},
		{"health check, its rule only", ev("192.0.2.1", "/health/x.rar", "kube-probe/1.29"), []string{"other"}},
		{"health path, other agent", ev("192.0.2.1", "/health/x.rar", "curl"), []string{rar, "other"}},
		{"temp, before expiry", ev("192.0.2.2", "/tmp.rar", "x"), []string{rar}},
	}
	for _, tc := range tests {
		if got := alertIDs(e, tc.ev); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: alerts of %v; want %v", tc.name, got, tc.want)
		}
	}
	// The exception expires by itself.
	clk.set(t0.Add(time.Hour))
	if got := alertIDs(e, ev("192.0.2.3", "/tmp.rar", "x")); strings.Join(got, ",") != rar+",other" {
		t.Errorf("after expiry: alerts of %v; want both rar rules", got)
	}

	// Counters: per rule, and per exception (drained once).
	if st := statusOf(t, e, rar); st.SuppressedByExceptions != 2 || st.Suppressed != 2 {
		t.Errorf("rar suppressed by exceptions %d (total %d); want 2 (scanner, health)", st.SuppressedByExceptions, st.Suppressed)
	}
	if st := statusOf(t, e, "other"); st.SuppressedByExceptions != 2 {
		t.Errorf("other suppressed by exceptions %d; want 2 (scanner, temp)", st.SuppressedByExceptions)
	}
	listed := []exception.Exception{scanner, health, temp}
	e.AddPendingUsage(listed)
	if listed[0].Suppressed != 3 || listed[1].Suppressed != 1 || listed[2].Suppressed != 1 || !listed[0].LastSuppressed.Equal(t0) {
		t.Errorf("pending usage: %d %d %d (last %v); want 3 1 1 at %v", listed[0].Suppressed, listed[1].Suppressed, listed[2].Suppressed, listed[0].LastSuppressed, t0)
	}
	got := e.DrainExceptionUsage()
	want := []exception.Exception{{ID: "health", Suppressed: 1, LastSuppressed: t0}, {ID: "scanner", Suppressed: 3, LastSuppressed: t0}, {ID: "temp", Suppressed: 1, LastSuppressed: t0}}
	if len(got) != len(want) {
		t.Fatalf("DrainExceptionUsage = %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Suppressed != want[i].Suppressed || !got[i].LastSuppressed.Equal(want[i].LastSuppressed) {
			t.Errorf("DrainExceptionUsage[%d] = %+v; want %+v", i, got[i], want[i])
		}
	}
	if again := e.DrainExceptionUsage(); len(again) != 0 {
		t.Errorf("second drain = %+v; want nothing new", again)
	}

	// Removing every exception makes the rules alert again.
	if err := e.SetExceptions(nil); err != nil {
		t.Fatal(err)
	}
	if got := alertIDs(e, ev("198.51.100.7", "/a.rar", "x")); len(got) != 2 {
		t.Errorf("without exceptions: alerts of %v; want both rar rules", got)
	}
	// An invalid exception keeps the previous ones.
	bad := x("bad", "*", "")
	if err := e.SetExceptions([]exception.Exception{scanner, bad}); err == nil || !strings.Contains(err.Error(), "exception bad") {
		t.Errorf("SetExceptions(invalid) = %v; want an error naming it", err)
	}
}

// TestExceptionsIntelAndCorrelation checks that exceptions also apply to the
// intelligence-feed rule and to correlation rules.
func TestExceptionsIntelAndCorrelation(t *testing.T) {
	builtin, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	set := ioc.NewSet([]ioc.Indicator{{Type: ioc.TypeIPv4, Value: "198.51.100.66", File: "feed.txt", Line: 1}}, time.Now())
	corr := parseRules(t, ruleRar+"---\ntitle: rar twice\nid: corr\ncorrelation:\n  type: event_count\n  rules: [rar_download]\n  group-by: [c-ip]\n  timespan: 1m\n  condition: {gte: 2}\n  generate: true\n")
	e, err := engine.NewWithOptions(append(builtin, corr...), engine.Options{IOC: func() *ioc.Set { return set }})
	if err != nil {
		t.Fatal(err)
	}
	intel := x("intel", rules.IntelligenceFeedID, "a partner listed by mistake")
	intel.Match["source.ip"] = exception.Values{"198.51.100.66"}
	c := x("c", "corr", "batch downloads are expected")
	c.Match["url.path|startswith"] = exception.Values{"/batch/"}
	if err := e.SetExceptions([]exception.Exception{intel, c}); err != nil {
		t.Fatal(err)
	}
	if got := alertIDs(e, at(t, 0, "198.51.100.66", "200", "/")); len(got) != 0 {
		t.Errorf("listed IP with an exception: alerts of %v; want none", got)
	}
	ip := "192.0.2.50"
	var got []string
	for i, uri := range []string{"/batch/1.rar", "/batch/2.rar", "/batch/3.rar"} {
		got = append(got, alertIDs(e, at(t, i, ip, "200", uri))...)
	}
	if slices.Contains(got, "corr") || len(got) != 3 {
		t.Errorf("correlation with an exception: alerts of %v; want the 3 rar alerts only", got)
	}
	got = nil
	for i, uri := range []string{"/x/1.rar", "/x/2.rar"} {
		got = append(got, alertIDs(e, at(t, 10+i, ip, "200", uri))...)
	}
	if !slices.Contains(got, "corr") {
		t.Errorf("correlation without exception: alerts of %v; want corr", got)
	}
}

func TestValidateException(t *testing.T) {
	ok := x("a", "*", "c")
	ok.Match["cloudflare.RequestHeaders.x-user"] = exception.Values{"bob"}
	ok.Match["url.path|contains"] = exception.Values{"/x"}
	if err := engine.ValidateException(ok); err != nil {
		t.Errorf("ValidateException(%v) = %v", ok.Match, err)
	}
	bad := x("b", "*", "c")
	bad.Match["c-ip"] = exception.Values{"1.2.3.4"}
	if err := engine.ValidateException(bad); err == nil || !strings.Contains(err.Error(), `"c-ip" is not a field`) {
		t.Errorf("ValidateException(c-ip) = %v; want an error naming the field", err)
	}
}

// TestExceptionsConcurrent matches events while exceptions are swapped and
// drained (run with -race).
func TestExceptionsConcurrent(t *testing.T) {
	e, err := engine.New(parseRules(t, ruleRar))
	if err != nil {
		t.Fatal(err)
	}
	scanner := x("scanner", "*", "scanner")
	scanner.Match["source.ip"] = exception.Values{"198.51.100.7"}
	evs := []*normalize.Event{userEvent(t, "/a.rar", "", "198.51.100.7"), userEvent(t, "/a.rar", "", "198.51.100.8")}
	var wg sync.WaitGroup
	var alerts atomic.Int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				alerts.Add(int64(len(e.Match(evs[i%2], "t", time.Now()))))
			}
		}()
	}
	var drained atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			xs := []exception.Exception{scanner}
			if i%2 == 1 {
				xs = nil
			}
			if err := e.SetExceptions(xs); err != nil {
				t.Error(err)
				return
			}
			for _, u := range e.DrainExceptionUsage() {
				drained.Add(u.Suppressed)
			}
		}
	}()
	wg.Wait()
	if err := e.SetExceptions([]exception.Exception{scanner}); err != nil {
		t.Fatal(err)
	}
	for _, u := range e.DrainExceptionUsage() {
		drained.Add(u.Suppressed)
	}
	st := statusOf(t, e, "6f3e2987-db24-4c78-a860-b4f4095a7095")
	if alerts.Load()+st.SuppressedByExceptions != 2000 || drained.Load() != st.SuppressedByExceptions {
		t.Errorf("alerts %d + suppressed %d != 2000 events, or drained %d != suppressed", alerts.Load(), st.SuppressedByExceptions, drained.Load())
	}
}

// usageSink records what RunExceptionUsage stores; it fails while fail is
// set.
type usageSink struct {
	mu   sync.Mutex
	got  map[string]int64
	fail atomic.Bool
	call chan struct{}
}

func (s *usageSink) AddExceptionUsage(ctx context.Context, us []exception.Exception) error {
	defer func() {
		select {
		case s.call <- struct{}{}:
		default:
		}
	}()
	if s.fail.Load() {
		return errors.New("disk full")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range us {
		s.got[u.ID] += u.Suppressed
	}
	return nil
}

func TestRunExceptionUsage(t *testing.T) {
	e, err := engine.New(parseRules(t, ruleRar))
	if err != nil {
		t.Fatal(err)
	}
	scanner := x("scanner", "*", "scanner")
	scanner.Match["source.ip"] = exception.Values{"198.51.100.7"}
	if err := e.SetExceptions([]exception.Exception{scanner}); err != nil {
		t.Fatal(err)
	}
	ev := userEvent(t, "/a.rar", "", "198.51.100.7")
	e.Match(ev, "t", time.Now())
	e.Match(ev, "t", time.Now())
	sink := &usageSink{got: map[string]int64{}, call: make(chan struct{}, 1)}
	sink.fail.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		e.RunExceptionUsage(ctx, sink, time.Millisecond, nil)
		close(done)
	}()
	<-sink.call // a failed flush: the counts are kept
	sink.fail.Store(false)
	e.Match(ev, "t", time.Now())
	cancel()
	<-done // the final flush has run
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.got["scanner"] != 3 {
		t.Errorf("stored suppressions = %v; want scanner: 3", sink.got)
	}
}
