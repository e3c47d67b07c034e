package retro_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/retro"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/store/archive"
)

// t0 is when the archived traffic happened.
var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// record is an http_requests record from ip at t.
func record(t time.Time, ip, host, ua string, n int) string {
	return fmt.Sprintf(`{"ClientIP":%q,"ClientRequestHost":%q,"ClientRequestMethod":"GET","ClientRequestURI":"/p/%d","ClientRequestPath":"/p/%d","ClientRequestUserAgent":%q,"EdgeStartTimestamp":%d,"EdgeEndTimestamp":%d,"EdgeResponseStatus":200,"RayID":"%016x"}`,
		ip, host, n, n, ua, t.UnixNano(), t.Add(30*time.Millisecond).UnixNano(), uint64(0x8f00000000000000)+uint64(n))
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fixture is an archive of 5 batches of 100 records (received a minute
// after their events), a store, and a Hunter committing into the store.
type fixture struct {
	arch   *archive.Archive
	store  *store.Store
	hunter *retro.Hunter
	iocs   atomic.Pointer[ioc.Set]
	mu     sync.Mutex
	sunk   []alert.Alert
}

const evilIP = "192.0.2.44"

func newFixture(t *testing.T, opts retro.Options) *fixture {
	t.Helper()
	f := &fixture{}
	var err error
	f.arch, err = archive.Open(archive.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for b := range 5 {
		var lines []string
		for r := range 100 {
			at := t0.Add(time.Duration(b)*time.Hour + time.Duration(r)*time.Second)
			ip := fmt.Sprintf("198.51.100.%d", r%200+1)
			ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0"
			if b == 2 && r == 17 {
				ip = evilIP // the one visit of the address published later
			}
			if b == 3 && r == 5 {
				ua = "Lemon-Duck-TKShM-InUsrPcv"
			}
			lines = append(lines, record(at, ip, "Shop.Example.com", ua, n))
			n++
		}
		received := t0.Add(time.Duration(b)*time.Hour + 2*time.Minute)
		if _, err := f.arch.Put(received, "zone-a", fmt.Sprintf("batch%d", b), bytes.NewReader(gz(t, strings.Join(lines, "\n")+"\n"))); err != nil {
			t.Fatal(err)
		}
	}
	f.store, err = store.Open(filepath.Join(t.TempDir(), "alerts.db"), store.Options{GroupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	f.iocs.Store(ioc.NewSet([]ioc.Indicator{{Type: ioc.TypeIPv4, Value: "203.0.113.1", File: "feed.txt", Line: 1}}, time.Now()))
	opts.Archive = f.arch
	opts.Sink = func(ctx context.Context, as []alert.Alert) error {
		f.mu.Lock()
		f.sunk = append(f.sunk, as...)
		f.mu.Unlock()
		_, err := f.store.Commit(ctx, store.Batch{Alerts: as})
		return err
	}
	opts.IOC = f.iocs.Load
	if opts.PollEvery == 0 {
		opts.PollEvery = time.Hour // tests call CheckIOC
	}
	f.hunter, err = retro.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.hunter.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// waitHunts waits until n hunts have finished and returns their statuses.
func (f *fixture) waitHunts(t *testing.T, n int) []retro.Status { return waitFinished(t, f.hunter, n) }

// waitFinished polls h until n of its hunts are neither queued nor
// running (10 s at most) and returns those.
func waitFinished(t *testing.T, h *retro.Hunter, n int) []retro.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var done []retro.Status
		for _, st := range h.Status() {
			if st.State != retro.StateQueued && st.State != retro.StateRunning {
				done = append(done, st)
			}
		}
		if len(done) >= n {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d hunts finished after 10s; want %d: %+v", len(done), n, h.Status())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

func (f *fixture) stored(t *testing.T) []alert.Alert {
	t.Helper()
	as, _, err := f.store.List(context.Background(), store.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestHuntNewIndicator(t *testing.T) {
	f := newFixture(t, retro.Options{})
	old := f.iocs.Load()
	// The address is published: added on line 2 of a new file.
	added := ioc.NewSet([]ioc.Indicator{
		{Type: ioc.TypeIPv4, Value: "203.0.113.1", File: "feed.txt", Line: 1},
		{Type: ioc.TypeIPv4, Value: evilIP, File: "new.txt", Line: 2},
	}, time.Now())
	f.iocs.Store(added)
	if id := f.hunter.CheckIOC(); id == "" {
		t.Fatal("CheckIOC after an indicator was added queued no hunt")
	}
	st := f.waitHunts(t, 1)[0]
	if st.State != retro.StateDone || st.Kind != retro.KindIndicators || st.Indicators != 1 || st.Matches != 1 || st.Records != 500 || st.Objects != 5 || st.ObjectsTotal != 5 {
		t.Errorf("hunt status = %+v; want done, 1 indicator, 1 match, 500 records of 5 objects", st)
	}
	as := f.stored(t)
	if len(as) != 1 {
		t.Fatalf("%d alerts stored; want 1", len(as))
	}
	a := as[0]
	wantTime := t0.Add(2*time.Hour + 17*time.Second)
	if !a.Retro || a.Rule.ID != rules.IntelligenceFeedID || a.Rule.Title != "Intelligence feed match" || !a.FirstSeen.Equal(wantTime) || a.Intake != "zone-a" {
		t.Errorf("alert = retro %v, rule %s %q, first seen %v, intake %q; want retro, the intelligence feed, %v, zone-a", a.Retro, a.Rule.ID, a.Rule.Title, a.FirstSeen, a.Intake, wantTime)
	}
	if len(a.Matches) != 1 || a.Matches[0].Field != "source.ip" || a.Matches[0].Indicator == nil || a.Matches[0].Indicator.File != "new.txt" || a.Matches[0].Indicator.Line != 2 {
		t.Errorf("matches = %+v; want source.ip with the indicator of new.txt:2", a.Matches)
	}

	// Removed, then added again: hunted again, nothing new is stored.
	f.iocs.Store(old)
	if id := f.hunter.CheckIOC(); id != "" {
		t.Errorf("removing an indicator queued hunt %s", id)
	}
	f.iocs.Store(ioc.NewSet([]ioc.Indicator{
		{Type: ioc.TypeIPv4, Value: "203.0.113.1", File: "feed.txt", Line: 1},
		{Type: ioc.TypeIPv4, Value: evilIP, File: "new.txt", Line: 2},
	}, time.Now()))
	if id := f.hunter.CheckIOC(); id == "" {
		t.Fatal("adding the indicator again queued no hunt")
	}
	st2 := f.waitHunts(t, 2)[0]
	if st2.Matches != 1 {
		t.Errorf("second hunt matches = %d; want 1", st2.Matches)
	}
	again := f.stored(t)
	if len(again) != 1 || again[0].Count != 1 || again[0].ID != a.ID {
		t.Errorf("after the indicator was added again: %d alerts (%+v); want the same single alert, count 1", len(again), again)
	}
	f.mu.Lock()
	if len(f.sunk) != 2 || f.sunk[0].ID != f.sunk[1].ID || f.sunk[0].RecordKey != f.sunk[1].RecordKey {
		t.Errorf("the two hunts' alerts differ in ID or record key: %v", f.sunk)
	}
	f.mu.Unlock()
}

func TestHuntStartsOnPoll(t *testing.T) {
	f := newFixture(t, retro.Options{PollEvery: 10 * time.Millisecond})
	f.iocs.Store(ioc.NewSet([]ioc.Indicator{{Type: ioc.TypeIPv4, Value: evilIP, File: "new.txt", Line: 1}}, time.Now()))
	if st := f.waitHunts(t, 1)[0]; st.State != retro.StateDone || st.Matches != 1 {
		t.Errorf("hunt = %+v; want done with 1 match", st)
	}
	if as := f.stored(t); len(as) != 1 || !as[0].Retro {
		t.Errorf("stored %+v; want one retro alert", as)
	}
}

func TestHuntKinds(t *testing.T) {
	tests := []struct {
		name    string
		inds    []ioc.Indicator
		matches int
	}{
		// The record's host is Shop.Example.com: domains ignore case, and
		// a listed domain matches its subdomains.
		{"domain", []ioc.Indicator{{Type: ioc.TypeDomain, Value: "example.com", File: "d.txt", Line: 1}}, 500},
		// A range has no text to prefilter records with: every record is
		// normalized.
		{"cidr", []ioc.Indicator{{Type: ioc.TypeCIDR, Value: "192.0.2.0/24", File: "c.txt", Line: 1}}, 1},
		{"user-agent", []ioc.Indicator{{Type: ioc.TypeUA, Value: "Lemon-Duck-TKShM-InUsrPcv", File: "u.txt", Line: 1}}, 1},
		{"two", []ioc.Indicator{
			{Type: ioc.TypeIPv4, Value: evilIP, File: "a.txt", Line: 1},
			{Type: ioc.TypeUA, Value: "Lemon-Duck-TKShM-InUsrPcv", File: "a.txt", Line: 2},
		}, 2},
		{"absent", []ioc.Indicator{{Type: ioc.TypeIPv4, Value: "203.0.113.250", File: "a.txt", Line: 1}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, retro.Options{})
			f.hunter.HuntIndicators(tt.inds)
			st := f.waitHunts(t, 1)[0]
			if st.State != retro.StateDone || st.Matches != tt.matches || st.Records != 500 {
				t.Errorf("hunt = %+v; want done, %d matches of 500 records", st, tt.matches)
			}
		})
	}
}

func TestHuntRule(t *testing.T) {
	// A drop-in rule added after the traffic: the Lemon Duck user-agent.
	r, err := rules.Parse("lemon.yml", []byte(`title: Lemon Duck again
id: 5f6e3a43-3c52-4b65-9d7c-0b1f3a7e9c11
status: experimental
logsource:
  category: webserver
  product: cloudflare
detection:
  selection:
    user_agent.original|startswith: 'Lemon-Duck-'
  condition: selection
level: high
`))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, retro.Options{})
	for range 2 {
		if _, err := f.hunter.HuntRule(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range f.waitHunts(t, 2) {
		if st.Kind != retro.KindRule || st.Rule != r.ID || st.State != retro.StateDone || st.Matches != 1 {
			t.Errorf("rule hunt = %+v; want done with 1 match", st)
		}
	}
	as := f.stored(t)
	want := t0.Add(3*time.Hour + 5*time.Second)
	if len(as) != 1 || !as[0].Retro || as[0].Rule.ID != r.ID || !as[0].FirstSeen.Equal(want) || as[0].Count != 1 {
		t.Errorf("stored %+v; want one retro alert of the rule at %v, counted once over two hunts", as, want)
	}
	if _, err := f.hunter.HuntRule(rules.Rule{ID: rules.IntelligenceFeedID}); err == nil {
		t.Error("HuntRule(intelligence feed) = nil error; want one pointing to indicator hunts")
	}
}

func TestHuntWindow(t *testing.T) {
	// The hunt is queued at t0+3h: batches received after that were
	// processed with the indicator in place and are not read; with a
	// retention of 90 minutes, those received before t0+1h30 are not
	// either.
	now := t0.Add(3 * time.Hour)
	f := newFixture(t, retro.Options{Now: func() time.Time { return now }, Retention: 90 * time.Minute})
	f.hunter.HuntIndicators([]ioc.Indicator{{Type: ioc.TypeIPv4, Value: evilIP, File: "a.txt", Line: 1}})
	st := f.waitHunts(t, 1)[0]
	if st.ObjectsTotal != 1 || st.Objects != 1 || st.Records != 100 || st.Matches != 1 ||
		!st.Since.Equal(now.Add(-90*time.Minute)) || !st.Until.Equal(now) {
		t.Errorf("hunt = %+v; want the one batch received between t0+1h30 and t0+3h, with its match", st)
	}
}

func TestHuntSkipsUnreadableObject(t *testing.T) {
	f := newFixture(t, retro.Options{})
	var lines []string
	for i := range 2000 {
		ip := fmt.Sprintf("203.0.113.%d", i%200+1)
		if i%200 == 0 {
			ip = evilIP
		}
		lines = append(lines, record(t0.Add(time.Duration(i)*time.Millisecond), ip, "a.example", fmt.Sprintf("agent-%d", i*7919%10007), 1000+i))
	}
	full := gz(t, strings.Join(lines, "\n")+"\n")
	if _, err := f.arch.Put(t0.Add(30*time.Minute), "zone-a", "cut", bytes.NewReader(full[:len(full)/2])); err != nil {
		t.Fatal(err)
	}
	f.hunter.HuntIndicators([]ioc.Indicator{{Type: ioc.TypeIPv4, Value: evilIP, File: "a.txt", Line: 1}})
	st := f.waitHunts(t, 1)[0]
	if st.State != retro.StateDone || st.Unreadable != 1 || !strings.Contains(st.Error, "_cut.ndjson.gz") || st.Objects != 6 {
		t.Errorf("hunt = %+v; want done, the cut object reported, all 6 objects read", st)
	}
	// The records before the cut and the other batches were matched.
	if st.Matches < 2 {
		t.Errorf("matches = %d; want the one of the whole batches and those before the cut", st.Matches)
	}
}

func TestHuntPausesWhileBusy(t *testing.T) {
	var asked atomic.Int32
	f := newFixture(t, retro.Options{YieldEvery: 100, Busy: func() bool { return asked.Add(1) <= 3 }})
	f.hunter.HuntIndicators([]ioc.Indicator{{Type: ioc.TypeIPv4, Value: evilIP, File: "a.txt", Line: 1}})
	if st := f.waitHunts(t, 1)[0]; st.State != retro.StateDone || st.Matches != 1 {
		t.Errorf("hunt = %+v; want done once the pipeline is no longer busy", st)
	}
	// 500 records, a check every 100: 5 checks, the first waiting out
	// three busy answers.
	if got := asked.Load(); got != 3+5 {
		t.Errorf("Busy asked %d times; want 8", got)
	}
}

func TestHuntCanceled(t *testing.T) {
	f := &fixture{}
	arch, err := archive.Open(archive.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	arch.Put(t0, "z", "b", strings.NewReader(strings.Repeat(record(t0, evilIP, "a.example", "x", 1)+"\n", 1000)))
	ctx, cancel := context.WithCancel(context.Background())
	h, err := retro.New(retro.Options{Archive: arch, Sink: func(context.Context, []alert.Alert) error { return nil },
		Busy: func() bool { cancel(); return true }})
	if err != nil {
		t.Fatal(err)
	}
	f.hunter = h
	h.HuntIndicators([]ioc.Indicator{{Type: ioc.TypeIPv4, Value: evilIP}})
	if err := h.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if st := h.Status(); len(st) != 1 || st[0].State != retro.StateCanceled {
		t.Errorf("Status() = %+v; want one canceled hunt", st)
	}
}

// BenchmarkHunt measures a hunt over an archive of 100 batches of 1000
// records: one address (whose text prefilters records) and one range
// (which normalizes every record).
func BenchmarkHunt(b *testing.B) {
	arch, err := archive.Open(archive.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for i := range 100 {
		var lines []string
		for r := range 1000 {
			lines = append(lines, record(t0.Add(time.Duration(n)*time.Second), fmt.Sprintf("198.51.%d.%d", r%250, i%250+1), "shop.example.com", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", n))
			n++
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(strings.Join(lines, "\n") + "\n"))
		zw.Close()
		if _, err := arch.Put(t0.Add(time.Duration(i)*time.Minute), "z", fmt.Sprint(i), &buf); err != nil {
			b.Fatal(err)
		}
	}
	for _, ind := range []ioc.Indicator{
		{Type: ioc.TypeIPv4, Value: evilIP, File: "a.txt", Line: 1},
		{Type: ioc.TypeCIDR, Value: "192.0.2.0/24", File: "a.txt", Line: 2},
	} {
		b.Run(string(ind.Type), func(b *testing.B) {
			var records int64
			for b.Loop() {
				ctx, cancel := context.WithCancel(context.Background())
				h, err := retro.New(retro.Options{Archive: arch, Sink: func(context.Context, []alert.Alert) error { return nil }})
				if err != nil {
					b.Fatal(err)
				}
				h.HuntIndicators([]ioc.Indicator{ind})
				done := make(chan struct{})
				go func() { h.Run(ctx); close(done) }()
				for {
					if st := h.Status()[0]; st.State == retro.StateDone {
						records += st.Records
						break
					}
					time.Sleep(time.Millisecond) // poll without taking a processor from the hunt
				}
				cancel()
				<-done
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
