package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// batchSize bounds the jobs one round reads from the outbox.
const batchSize = 100

// maxRetryAfter caps the wait an output may ask for with Retry-After.
const maxRetryAfter = time.Hour

// delivery is a job with its alert as stored when it is sent.
type delivery struct {
	job   store.Job
	alert alert.Alert
}

// sender is one output's way of sending.
type sender interface {
	// send delivers ds in order and returns how many it delivered; when
	// that is fewer than len(ds), err says why ds[n] failed (a
	// *sendError when it is permanent or gives a Retry-After). Error
	// texts hold no URL or secret.
	send(ctx context.Context, ds []delivery) (n int, err error)
	// close releases connections; the runner calls it once, at the end.
	close() error
}

// maintainer is a sender with periodic work of its own: Alertmanager's
// re-sends of firing alerts.
type maintainer interface {
	// start prepares the periodic work (once, before the first round).
	start(ctx context.Context, now time.Time) error
	// maintain does it, and returns the number of alerts it posted; it is
	// called every interval, and after a failure until it succeeds.
	maintain(ctx context.Context, now time.Time) (int, error)
	interval() time.Duration
	active() int
}

// sendError is a failed send that is permanent (the output refused the
// delivery: retrying would fail the same way) or that names its own
// retry delay.
type sendError struct {
	msg        string
	permanent  bool
	retryAfter time.Duration
	err        error // the cause, when an Output gave one
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.err }

func permanent(format string, args ...any) error {
	return &sendError{msg: fmt.Sprintf(format, args...), permanent: true}
}

// runner owns one output: its goroutine sends the output's jobs in order.
type runner struct {
	d      *Dispatcher
	name   string
	typ    string
	target string
	min    string
	out    sender
	// accepts reports whether the output takes an alert (by level, or as
	// an extra Output decides).
	accepts func(*alert.Alert) bool
	wake    chan struct{}
	log     *slog.Logger

	// sent holds when each alert was last delivered, to space out its
	// updates (Options.UpdateInterval); only the goroutine uses it.
	sent map[string]time.Time

	mu          sync.Mutex
	state       string
	lastErr     string
	lastErrAt   time.Time
	lastSuccess time.Time
	nextAt      time.Time
	delivered   int64
	retried     int64
}

func newRunner(d *Dispatcher, name, target string, s sender) *runner {
	typ := outputType(name)
	return &runner{
		d: d, name: name, typ: typ, target: target, min: d.opts.minLevelOf(typ), out: s,
		accepts: func(a *alert.Alert) bool { return d.opts.Accepts(name, a) },
		wake:    make(chan struct{}, 1),
		sent:    map[string]time.Time{},
		log:     d.log.With("component", "notify", "output", name),
		state:   "idle",
	}
}

func (r *runner) status() OutputStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := OutputStatus{
		Name: r.name, Type: r.typ, Target: r.target, MinLevel: r.min, State: r.state,
		Delivered: r.delivered, Retried: r.retried,
		LastError: r.lastErr, LastErrorAt: r.lastErrAt, LastSuccess: r.lastSuccess,
	}
	if r.state == "retrying" {
		s.NextAttempt = r.nextAt
	}
	if m, ok := r.out.(maintainer); ok {
		s.Active = m.active()
	}
	return s
}

func (r *runner) succeeded(n int) {
	r.mu.Lock()
	was := r.state
	r.state, r.lastSuccess = "ok", time.Now().UTC()
	r.delivered += int64(n)
	r.mu.Unlock()
	r.d.metrics.delivered.WithLabelValues(r.name).Add(float64(n))
	if was == "retrying" {
		r.log.Info("output back")
	}
}

// failed records a failed attempt; it logs when the output goes from
// working to failing, not at every retry.
func (r *runner) failed(err error, next time.Time, retried bool) {
	r.mu.Lock()
	was := r.state
	r.state, r.lastErr, r.lastErrAt, r.nextAt = "retrying", err.Error(), time.Now().UTC(), next
	if retried {
		r.retried++
	}
	r.mu.Unlock()
	if retried {
		r.d.metrics.retried.WithLabelValues(r.name).Inc()
	}
	if was != "retrying" {
		r.log.Warn("output failing, retrying with backoff", "err", err)
	}
}

// run is the output's goroutine.
func (r *runner) run(ctx context.Context) {
	m, _ := r.out.(maintainer)
	var resend <-chan time.Time
	if m != nil {
		if err := m.start(ctx, time.Now()); err != nil && ctx.Err() == nil {
			r.log.Warn("cannot list the alerts to keep firing", "err", err)
		}
		t := time.NewTicker(m.interval())
		defer t.Stop()
		resend = t.C
	}
	poll := time.NewTicker(r.d.opts.PollInterval)
	defer poll.Stop()
	fails := 0
	maintainNow := m != nil
	for {
		next, err := r.round(ctx)
		if err == nil && maintainNow {
			var posted int
			if posted, err = m.maintain(ctx, time.Now()); err != nil {
				err = fmt.Errorf("re-send firing alerts: %w", err)
			} else if posted > 0 {
				r.succeeded(0) // the output answered
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fails++
			if next.IsZero() { // not a delivery's failure: the outbox's, or a re-send's
				next = time.Now().Add(r.delay(err, fails))
				r.failed(err, next, false)
			}
			t := time.NewTimer(time.Until(next))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue // maintainNow stays: what failed is tried again
		}
		fails, maintainNow = 0, false
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-poll.C:
		case <-resend:
			maintainNow = true
		}
	}
}

// delay is the wait after the n-th failure in a row, or what the output
// asked for with Retry-After.
func (r *runner) delay(err error, n int) time.Duration {
	var se *sendError
	if errors.As(err, &se) && se.retryAfter > 0 {
		return min(se.retryAfter, maxRetryAfter)
	}
	return backoff(n, r.d.opts.MinBackoff, r.d.opts.MaxBackoff)
}

// backoff is the wait after the n-th failure in a row: doubling from lo
// to hi, with jitter (between half and all of it, never below lo).
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	d = d/2 + rand.N(d/2+1)
	return max(d, lo)
}

// round sends the due jobs until none is left, or until a send fails in a
// way worth retrying: it returns the error and, when a delivery failed,
// when to try it again (the backoff follows the job's attempts, so that
// it survives a restart).
func (r *runner) round(ctx context.Context) (time.Time, error) {
	ob := r.d.outbox
	for {
		jobs, err := ob.Due(ctx, r.name, batchSize, time.Now())
		if err != nil || len(jobs) == 0 {
			return time.Time{}, err
		}
		ds, skipped, later, err := r.load(ctx, jobs)
		if err != nil {
			return time.Time{}, err
		}
		if err := ob.Ack(ctx, skipped...); err != nil {
			return time.Time{}, err
		}
		if err := ob.Postpone(ctx, later...); err != nil {
			return time.Time{}, err
		}
		for len(ds) > 0 {
			n, err := r.out.send(ctx, ds)
			if n > 0 {
				acked := make([]store.Job, n)
				for i := range n {
					acked[i] = ds[i].job
				}
				if err := ob.Ack(ctx, acked...); err != nil {
					return time.Time{}, err
				}
				r.succeeded(n)
				r.markSent(ds[:n])
			}
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err() // shutting down: the job stays as it was
			}
			d := ds[n]
			var se *sendError
			if errors.As(err, &se) && se.permanent {
				if err := ob.Fail(ctx, d.job, err.Error()); err != nil {
					return time.Time{}, err
				}
				r.d.metrics.failed.WithLabelValues(r.name).Inc()
				r.log.Warn("delivery refused, not retrying", "alert_id", d.job.AlertID, "kind", d.job.Kind, "delivery", d.job.DeliveryID, "err", err)
				ds = ds[n+1:]
				continue
			}
			next := time.Now().Add(r.delay(err, d.job.Attempt+1))
			if err := ob.Retry(ctx, d.job, next, err.Error()); err != nil {
				return time.Time{}, err
			}
			r.failed(err, next, true)
			return next, err
		}
	}
}

// load reads the alerts of jobs. Jobs whose alert is gone (retention) or
// below the output's level (the level was raised since they were queued)
// are returned as skipped, to acknowledge without sending; updates that
// come too soon after the alert's last delivery are returned as later,
// with the NextAt to postpone them to.
func (r *runner) load(ctx context.Context, jobs []store.Job) (ds []delivery, skipped, later []store.Job, err error) {
	now := time.Now()
	for _, j := range jobs {
		if j.Kind == store.KindUpdated && r.d.opts.UpdateInterval > 0 {
			if next := r.sent[j.AlertID].Add(r.d.opts.UpdateInterval); next.After(now) {
				j.NextAt = next
				later = append(later, j)
				continue
			}
		}
		a, err := r.d.alerts.Get(ctx, j.AlertID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			r.log.Debug("alert gone before delivery", "alert_id", j.AlertID)
			skipped = append(skipped, j)
			continue
		case err != nil:
			return nil, nil, nil, err
		}
		if !r.accepts(&a) {
			skipped = append(skipped, j)
			continue
		}
		ds = append(ds, delivery{job: j, alert: a})
	}
	return ds, skipped, later, nil
}

// markSent records the deliveries of ds, and forgets those too old to
// matter when there are many.
func (r *runner) markSent(ds []delivery) {
	if r.d.opts.UpdateInterval <= 0 {
		return
	}
	now := time.Now()
	if len(r.sent) > 10000 {
		for id, t := range r.sent {
			if now.Sub(t) > r.d.opts.UpdateInterval {
				delete(r.sent, id)
			}
		}
	}
	for _, d := range ds {
		r.sent[d.job.AlertID] = now
	}
}
