package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
)

// markers pairs each batch's 2xx with its marker's alert on the
// websocket. Its methods are safe for concurrent use.
type markers struct {
	mu    sync.Mutex
	acked map[string]time.Time // marker IP → 2xx
	seen  map[string]time.Time // marker IP → first alert on the websocket
}

// read records the marker alerts of ws until it closes.
func (m *markers) read(ws *websocket.Conn) {
	for {
		_, msg, err := ws.ReadMessage()
		now := time.Now()
		if err != nil {
			return
		}
		// Only marker alerts matter: find the marker IP without decoding
		// the whole frame.
		i := bytes.Index(msg, []byte(`"ip":"10.`))
		if i < 0 {
			continue
		}
		rest := msg[i+6:]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			continue
		}
		ip := string(rest[:j])
		m.mu.Lock()
		if _, ok := m.seen[ip]; !ok {
			m.seen[ip] = now
		}
		m.mu.Unlock()
	}
}

func (m *markers) ack(ip string, t time.Time) {
	m.mu.Lock()
	m.acked[ip] = t
	m.mu.Unlock()
}

// waitAll waits (two minutes at most) until every acknowledged marker has
// been seen.
func (m *markers) waitAll() {
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		m.mu.Lock()
		done := 0
		for ip := range m.acked {
			if _, ok := m.seen[ip]; ok {
				done++
			}
		}
		n := len(m.acked)
		m.mu.Unlock()
		if done == n {
			return
		}
	}
}

// latencies returns the sorted latencies of the markers seen, and how
// many were acknowledged.
func (m *markers) latencies() ([]time.Duration, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var lat []time.Duration
	for ip, t := range m.acked {
		if s, ok := m.seen[ip]; ok {
			lat = append(lat, max(0, s.Sub(t)))
		}
	}
	slices.Sort(lat)
	return lat, len(m.acked)
}

// memSamples are the memory figures sampled every tenth of the phase.
type memSamples struct {
	rss, anon, file, heap []float64
}

// sample takes ten samples over d, and heap profiles when memProfile is
// set; it stops early when ctx ends.
func sample(ctx context.Context, d time.Duration, memProfile string) *memSamples {
	s := &memSamples{}
	tick := time.NewTicker(d / 10)
	defer tick.Stop()
	for range 10 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return s
		}
		s.rss = append(s.rss, rssMiB())
		s.anon = append(s.anon, procStatusMiB("RssAnon:"))
		s.file = append(s.file, procStatusMiB("RssFile:"))
		s.heap = append(s.heap, liveHeapMiB())
		if memProfile != "" {
			// For a leak hunt: go tool pprof -base FILE.1 FILE.10.
			_ = writeHeapProfile(fmt.Sprintf("%s.%d", memProfile, len(s.rss)))
		}
	}
	return s
}

// latencyPhase offers cfg.Rate records/s for cfg.Latency and measures the
// time from each batch's 2xx to its marker's alert on the websocket.
func (r *run) latencyPhase(ctx context.Context, p *poster) error {
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(p.base, "http")+"/ws", nil)
	if err != nil {
		return fmt.Errorf("websocket: %w", err)
	}
	m := &markers{acked: map[string]time.Time{}, seen: map[string]time.Time{}}
	readDone := make(chan struct{})
	go func() { m.read(ws); close(readDone) }()
	defer func() { ws.Close(); <-readDone }()
	// Start from a collected heap, without the garbage of the setup.
	debug.FreeOSMemory()
	rss0 := rssMiB()
	samples := make(chan *memSamples, 1)
	go func() { samples <- sample(ctx, r.cfg.Latency, r.cfg.MemProfile) }()
	t0 := time.Now()
	sent, failures := r.offer(ctx, p, m, r.cfg.Latency)
	offeredFor := time.Since(t0)
	m.waitAll()
	rss1 := rssMiB()
	s := <-samples
	lat, acked := m.latencies()
	if len(lat) == 0 {
		return errors.New("latency: no marker alert reached the websocket")
	}
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))]) / float64(time.Millisecond)
	}
	r.rep.Latency = &LatencyReport{
		OfferedPerSec: r.cfg.Rate, AchievedPerSec: float64(acked*batchRecords) / offeredFor.Seconds(), Batches: sent, Seen: len(lat),
		P50ms: q(.5), P99ms: q(.99), MaxMs: float64(lat[len(lat)-1]) / float64(time.Millisecond),
		RSSStartMiB: rss0, RSSEndMiB: rss1, Seconds: offeredFor.Seconds(),
		RSSMiB: s.rss, RSSAnonMiB: s.anon, RSSFileMiB: s.file, HeapMiB: s.heap,
	}
	if failures > 0 {
		return fmt.Errorf("latency: %d of %d batches refused", failures, sent)
	}
	return nil
}

// offer posts a batch every interval that makes cfg.Rate records/s, for
// d, recording each 2xx; it returns the batches sent and those refused.
func (r *run) offer(ctx context.Context, p *poster, m *markers, d time.Duration) (sent int, failures int64) {
	interval := time.Duration(float64(time.Second) / (float64(r.cfg.Rate) / batchRecords))
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.cfg.Clients*4)
	var failed atomic.Int64
	for tick := time.Now(); tick.Before(deadline); tick = tick.Add(interval) {
		if d := time.Until(tick); d > 0 {
			time.Sleep(d) // the offered rate's pace
		}
		if ctx.Err() != nil {
			break
		}
		body, n := p.batch()
		ip := traffic.MarkerIP(n)
		sent++
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := p.post(body); err != nil {
				failed.Add(1)
				return
			}
			m.ack(ip, time.Now())
		})
	}
	wg.Wait()
	return sent, failed.Load()
}
