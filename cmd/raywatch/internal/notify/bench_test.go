package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// stateReceiver records when it first saw each alert reach each count.
type stateReceiver struct {
	mu    sync.Mutex
	count map[string]int // highest count seen, by alert id
	seen  map[string]time.Time
	cond  chan struct{} // closed and replaced at every change
}

func newStateReceiver() *stateReceiver {
	return &stateReceiver{count: map[string]int{}, seen: map[string]time.Time{}, cond: make(chan struct{})}
}

func (r *stateReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var b Body
	if err := json.Unmarshal(body, &b); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	now := time.Now()
	r.mu.Lock()
	if b.Alert.Count > r.count[b.Alert.ID] {
		r.count[b.Alert.ID] = b.Alert.Count
		r.seen[fmt.Sprint(b.Alert.ID, "/", b.Alert.Count)] = now
		close(r.cond)
		r.cond = make(chan struct{})
	}
	r.mu.Unlock()
}

// reached returns when the receiver first saw alert a with at least its
// count (zero if not yet) and a channel closed at the next change.
func (r *stateReceiver) reached(a *alert.Alert) (time.Time, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.count[a.ID] < a.Count {
		return time.Time{}, r.cond
	}
	var first time.Time
	for c := a.Count; c <= r.count[a.ID]; c++ {
		if t, ok := r.seen[fmt.Sprint(a.ID, "/", c)]; ok && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first, nil
}

// firstAfter returns the first receipt at or after t.
func (r *stateReceiver) firstAfter(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	for _, at := range r.seen {
		if !at.Before(t) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// switchable is an HTTP server on a fixed loopback address that can be
// taken down (connections refused) and brought back.
type switchable struct {
	addr string
	h    http.Handler
	srv  *http.Server
}

func (s *switchable) up(tb testing.TB) {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.srv = &http.Server{Handler: s.h}
	go s.srv.Serve(l)
}

func (s *switchable) down() { s.srv.Close() }

// loadGen commits, every tick, a batch of per-record alerts drawn from a
// pool of sources (so that some make new alerts and most grow existing
// ones), and records each commit's changed alerts and time.
type commitRecord struct {
	at      time.Time
	changed []alert.Alert
}

func loadGen(ctx context.Context, tb testing.TB, st *store.Store, d *Dispatcher, perBatch int, every time.Duration, out chan<- commitRecord) {
	t := time.NewTicker(every)
	defer t.Stop()
	t0 := slotStart().Add(time.Second)
	n := 0
	for {
		select {
		case <-ctx.Done():
			close(out)
			return
		case <-t.C:
		}
		var batch []alert.Alert
		for range perBatch {
			n++
			batch = append(batch, hit(t0, fmt.Sprint("r", rand.N(5)), keyN(n), ipN("198.51.100", rand.N(200))))
		}
		changed, err := st.Commit(ctx, store.Batch{ID: keyN(n), Alerts: batch})
		if err != nil {
			if ctx.Err() == nil {
				tb.Error(err)
			}
			close(out)
			return
		}
		at := time.Now()
		d.Wake()
		out <- commitRecord{at: at, changed: changed}
	}
}

// latencies waits until the receiver has seen the changes of the commits
// (only the alerts they created, with onlyNew) and returns the
// commit-to-receipt latencies, sorted.
func latencies(tb testing.TB, rcv *stateReceiver, commits []commitRecord, onlyNew bool) []time.Duration {
	var lat []time.Duration
	known := map[string]bool{}
	deadline := time.After(10 * time.Minute)
	for _, c := range commits {
		for i := range c.changed {
			a := &c.changed[i]
			if onlyNew && known[a.ID] {
				continue
			}
			known[a.ID] = true
			for {
				at, wait := rcv.reached(a)
				if wait == nil {
					lat = append(lat, max(0, at.Sub(c.at)))
					break
				}
				select {
				case <-wait:
				case <-deadline:
					tb.Fatal("deliveries did not arrive")
				}
			}
		}
	}
	slices.Sort(lat)
	return lat
}

func pct(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(float64(len(lat))*p))]
}

// BenchmarkWebhookLatency measures the time from a commit's return to the
// webhook receiving the alerts it created (with the default spacing of
// updates), or every change it made (with every update sent), at 5,000
// records/s with 1 % matching: 10 batches a second of 5 per-record alerts
// each. Run it with -benchtime=1x; each iteration lasts 30 s.
func BenchmarkWebhookLatency(b *testing.B) {
	for _, c := range []struct {
		name    string
		updates time.Duration
	}{{"new-alerts", 0}, {"every-change", -1}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				rcv := newStateReceiver()
				srv := &switchable{addr: "127.0.0.1:0", h: rcv}
				srv.up(b)
				o := Options{WebhookURLs: []string{"http://" + srv.addr}, GroupWindow: window, UpdateInterval: c.updates}
				st := tempStore(b, &o)
				d := start(b, o, st)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				ch := make(chan commitRecord, 1000)
				go loadGen(ctx, b, st, d, 5, 100*time.Millisecond, ch)
				var commits []commitRecord
				for c := range ch {
					commits = append(commits, c)
				}
				cancel()
				lat := latencies(b, rcv, commits, c.updates >= 0)
				b.ReportMetric(float64(pct(lat, 0.5).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(pct(lat, 0.99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(pct(lat, 1).Microseconds())/1000, "max-ms")
				b.ReportMetric(float64(len(lat)), "measured")
				srv.down()
			}
		})
	}
}

// BenchmarkWebhookOutage takes the receiver down (connections refused)
// for a minute under the same load, every change sent, then brings it
// back, and reports the queue at the end of the outage, how long the queue
// took to drain once the receiver was back (default backoff: 1 s doubling
// to 5 min), and the latency of all changes committed. Run it with
// -benchtime=1x.
func BenchmarkWebhookOutage(b *testing.B) {
	for range b.N {
		rcv := newStateReceiver()
		srv := &switchable{addr: "127.0.0.1:0", h: rcv}
		srv.up(b)
		o := Options{WebhookURLs: []string{"http://" + srv.addr}, GroupWindow: window, UpdateInterval: -1}
		st := tempStore(b, &o)
		d := start(b, o, st)
		ctx, cancel := context.WithCancel(context.Background())
		ch := make(chan commitRecord, 10000)
		go loadGen(ctx, b, st, d, 5, 100*time.Millisecond, ch)
		srv.down()
		downAt := time.Now()
		for time.Since(downAt) < time.Minute {
			time.Sleep(time.Second) // the outage lasts a minute: this is the measurement
		}
		st0, _ := st.Outbox().Stats("webhook-1")
		srv.up(b)
		upAt := time.Now()
		for {
			if s, _ := st.Outbox().Stats("webhook-1"); s.Queued == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		drained := time.Since(upAt)
		cancel()
		var commits []commitRecord
		for c := range ch {
			commits = append(commits, c)
		}
		lat := latencies(b, rcv, commits, false)
		b.ReportMetric(float64(st0.Queued), "queued-at-end-of-outage")
		b.ReportMetric(drained.Seconds(), "drain-s")
		b.ReportMetric(rcv.firstAfter(upAt).Sub(upAt).Seconds(), "first-delivery-after-up-s")
		b.ReportMetric(float64(len(commits)), "commits")
		b.ReportMetric(float64(pct(lat, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(pct(lat, 0.99).Microseconds())/1000, "p99-ms")
		srv.down()
	}
}
