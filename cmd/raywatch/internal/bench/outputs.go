package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/web"
)

// benchWebhookSecret signs the webhook deliveries of the webhook phase.
const benchWebhookSecret = "bench-webhook-secret"

// WebhookReport is the webhook phase of a report: the time from a batch's
// 2xx to its marker's alert at a webhook receiver, then what a minute
// (Config.Outage) of the receiver refusing connections does.
type WebhookReport struct {
	OfferedPerSec  int     `json:"offered_records_per_sec"`
	AchievedPerSec float64 `json:"achieved_records_per_sec"`
	Seconds        float64 `json:"seconds"`
	Batches        int     `json:"batches"`
	Received       int     `json:"alerts_received"`
	P50ms          float64 `json:"p50_ms"`
	P99ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	// Deliveries counts every delivery the receiver accepted (new alerts
	// and updates of grouped ones), BadSignatures those whose signature
	// did not verify.
	Deliveries    int64            `json:"deliveries"`
	BadSignatures int64            `json:"bad_signatures"`
	Outage        *OutageReport    `json:"outage,omitempty"`
	Output        web.OutputStatus `json:"output"`
}

// OutageReport is what happened while the receiver was down.
type OutageReport struct {
	Seconds float64 `json:"seconds"`
	// AchievedPerSec is the intake's rate meanwhile, and Refused the
	// batches it did not acknowledge: an output that is down must not
	// slow it.
	AchievedPerSec float64 `json:"achieved_records_per_sec"`
	Batches        int     `json:"batches"`
	Refused        int64   `json:"refused"`
	// QueuedAtEnd is the output's queue when the receiver came back, and
	// OldestAtEndSec the age of its oldest delivery then.
	QueuedAtEnd    int64   `json:"queued_at_end"`
	OldestAtEndSec float64 `json:"oldest_at_end_seconds"`
	Retried        int64   `json:"retried"`
	// FirstAfterUpSec is how long after the receiver came back the first
	// delivery arrived (the backoff of the failing output), AllNewSec
	// when every marker alert of the outage had arrived, and QueuedAfter
	// the queue then: updates of grouped alerts, which wait for their
	// spacing (a minute per alert).
	FirstAfterUpSec float64 `json:"first_delivery_after_up_seconds"`
	AllNewSec       float64 `json:"all_new_alerts_seconds"`
	QueuedAfter     int64   `json:"queued_after"`
	// Received of Batches markers arrived; Lost = Batches-Refused-Received.
	Received int `json:"alerts_received"`
	Lost     int `json:"lost"`
}

// hookSink is the webhook receiver of the webhook phase, on a fixed
// loopback address that can be taken down (connections refused) and
// brought back. It records the first arrival of each marker alert.
type hookSink struct {
	addr string
	srv  *http.Server
	m    atomic.Pointer[markers]

	deliveries, badSigs atomic.Int64
	mu                  sync.Mutex
	last                time.Time // of the last delivery
}

func (h *hookSink) up() error {
	addr := h.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("webhook receiver: %w", err)
	}
	h.addr = l.Addr().String()
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go h.srv.Serve(l)
	return nil
}

func (h *hookSink) down() { h.srv.Close() }

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	now := time.Now()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	mac := hmac.New(sha256.New, []byte(benchWebhookSecret))
	mac.Write(body)
	if r.Header.Get("X-Raywatch-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		h.badSigs.Add(1)
	}
	h.deliveries.Add(1)
	h.mu.Lock()
	h.last = now
	h.mu.Unlock()
	var d struct {
		Kind  string `json:"kind"`
		Alert struct {
			Event struct {
				Source struct {
					IP string `json:"ip"`
				} `json:"source"`
			} `json:"event"`
		} `json:"alert"`
	}
	if json.Unmarshal(body, &d) != nil {
		return
	}
	if ip := d.Alert.Event.Source.IP; d.Kind == "alert.new" && strings.HasPrefix(ip, "10.") {
		m := h.m.Load()
		m.mu.Lock()
		if _, ok := m.seen[ip]; !ok {
			m.seen[ip] = now
		}
		m.mu.Unlock()
	}
}

// firstAfter returns the time of the first delivery at or after t, by
// polling until one comes (zero when ctx ends first).
func (h *hookSink) firstAfter(ctx context.Context, t time.Time) time.Time {
	for ctx.Err() == nil {
		h.mu.Lock()
		last := h.last
		h.mu.Unlock()
		if !last.Before(t) {
			return last
		}
		time.Sleep(5 * time.Millisecond) // polling the receiver
	}
	return time.Time{}
}

// withWebhook starts the receiver and points serve's webhook output at it.
func (r *run) withWebhook(cfg *app.Config) error {
	r.hook = &hookSink{}
	r.hook.m.Store(newMarkers())
	if err := r.hook.up(); err != nil {
		return err
	}
	cfg.Outputs.Notify.WebhookURLs = []string{"http://" + r.hook.addr + "/hook"}
	cfg.Outputs.Notify.WebhookSecret = []byte(benchWebhookSecret)
	return nil
}

func newMarkers() *markers {
	return &markers{acked: map[string]time.Time{}, seen: map[string]time.Time{}}
}

// webhookPhase offers cfg.Rate records/s for cfg.Latency and measures the
// time from each batch's 2xx to its marker's alert at the webhook; then,
// with Config.Outage, takes the receiver down for that long under the
// same load and measures the queue, the recovery and what was lost.
func (r *run) webhookPhase(ctx context.Context, p *poster) error {
	defer r.hook.down()
	m := newMarkers()
	r.hook.m.Store(m)
	t0 := time.Now()
	sent, failures := r.offer(ctx, p, m, r.cfg.Latency)
	offeredFor := time.Since(t0)
	if err := waitMarkers(ctx, m, 2*time.Minute); err != nil {
		return err
	}
	lat, acked := m.latencies()
	if len(lat) == 0 {
		return errors.New("webhook: no marker alert reached the receiver")
	}
	q := func(p float64) float64 { return ms(lat[min(len(lat)-1, int(float64(len(lat))*p))]) }
	rep := &WebhookReport{
		OfferedPerSec: r.cfg.Rate, AchievedPerSec: float64(acked*batchRecords) / offeredFor.Seconds(), Seconds: offeredFor.Seconds(),
		Batches: sent, Received: len(lat), P50ms: q(.5), P99ms: q(.99), MaxMs: ms(lat[len(lat)-1]),
	}
	r.rep.Webhook = rep
	if failures > 0 {
		return fmt.Errorf("webhook: %d of %d batches refused", failures, sent)
	}
	if r.cfg.Outage > 0 {
		r.say("webhook: receiver down for %v under the same load", r.cfg.Outage)
		out, err := r.outage(ctx, p)
		if err != nil {
			return err
		}
		rep.Outage = out
	}
	rep.Deliveries, rep.BadSignatures = r.hook.deliveries.Load(), r.hook.badSigs.Load()
	st, err := outputStatus(p)
	if err != nil {
		return err
	}
	rep.Output = st
	if rep.BadSignatures > 0 {
		return fmt.Errorf("webhook: %d deliveries whose signature does not verify", rep.BadSignatures)
	}
	return nil
}

// outage takes the receiver down for cfg.Outage while offering cfg.Rate,
// brings it back and waits (ten minutes at most) for every marker.
func (r *run) outage(ctx context.Context, p *poster) (*OutageReport, error) {
	m := newMarkers()
	r.hook.m.Store(m)
	r.hook.down()
	t0 := time.Now()
	sent, refused := r.offer(ctx, p, m, r.cfg.Outage)
	offeredFor := time.Since(t0)
	st, err := outputStatus(p)
	if err != nil {
		return nil, err
	}
	if err := r.hook.up(); err != nil {
		return nil, err
	}
	upAt := time.Now()
	out := &OutageReport{
		Seconds: offeredFor.Seconds(), Batches: sent, Refused: refused, QueuedAtEnd: st.Queue, Retried: st.Retried,
		AchievedPerSec: float64((int64(sent)-refused)*batchRecords) / offeredFor.Seconds(),
	}
	if !st.Oldest.IsZero() {
		out.OldestAtEndSec = upAt.Sub(st.Oldest).Seconds()
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	out.FirstAfterUpSec = r.hook.firstAfter(wctx, upAt).Sub(upAt).Seconds()
	waitErr := waitMarkers(wctx, m, 10*time.Minute)
	out.AllNewSec = time.Since(upAt).Seconds()
	if st, err := outputStatus(p); err == nil {
		out.QueuedAfter = st.Queue
	}
	lat, acked := m.latencies()
	out.Received = len(lat)
	out.Lost = acked - len(lat)
	if waitErr != nil {
		r.say("%v", waitErr)
	}
	return out, nil
}

// waitMarkers waits until every acknowledged marker has been seen, or
// limit passes (an error naming how many were not).
func waitMarkers(ctx context.Context, m *markers, limit time.Duration) error {
	end := time.Now().Add(limit)
	for {
		lat, acked := m.latencies()
		if len(lat) == acked {
			return nil
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return fmt.Errorf("webhook: %d of %d acknowledged batches' alerts not received after %v", acked-len(lat), acked, limit)
		}
		time.Sleep(20 * time.Millisecond) // polling the receiver
	}
}

// outputStatus reads the webhook output's state from GET /api/v1/outputs.
func outputStatus(p *poster) (web.OutputStatus, error) {
	resp, err := p.client.Get(p.base + "/api/v1/outputs")
	if err != nil {
		return web.OutputStatus{}, err
	}
	defer resp.Body.Close()
	var rep web.OutputsReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return web.OutputStatus{}, fmt.Errorf("GET /api/v1/outputs: %w", err)
	}
	if len(rep.Outputs) != 1 {
		return web.OutputStatus{}, fmt.Errorf("GET /api/v1/outputs: %d outputs; want the webhook", len(rep.Outputs))
	}
	return rep.Outputs[0], nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
