package cloudflare

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Poller polls the state of the Logpush jobs that deliver to this
// raywatch, every interval, backing off (up to 30 minutes) while the API
// fails. Report is safe for concurrent use with Run.
type Poller struct {
	client     *Client
	red        *Redactor
	opts       PollerOptions
	maxBackoff time.Duration
	log        *slog.Logger

	mu      sync.Mutex
	jobs    []JobStatus
	checked time.Time
	lastErr string
}

// PollerOptions configure a [Poller].
type PollerOptions struct {
	Credentials Credentials
	// Zone is the zone whose jobs are polled; "" means every zone the
	// credentials can read.
	Zone string
	// Keys maps the local intakes to their keys: a job that sends one of
	// them delivers to this raywatch. They are masked in every message.
	Keys map[string]string
	// LastBatch, if set, says when an intake last delivered a batch.
	LastBatch func(intake string) time.Time
	// Interval is the time between polls (default 2 minutes).
	Interval time.Duration
}

// NewPoller returns a poller when opts has Cloudflare API credentials,
// else nil (a nil *Poller reports the job health as disabled). A client
// that cannot be built is logged and disables the poller.
func NewPoller(opts PollerOptions, log *slog.Logger) *Poller {
	if !opts.Credentials.Set() {
		return nil
	}
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Minute
	}
	red := &Redactor{}
	for _, k := range opts.Keys {
		red.Add(k)
	}
	c, err := NewClient(opts.Credentials, red)
	if err != nil {
		log.Warn("Logpush job health disabled", "err", red.Replace(err.Error()))
		return nil
	}
	return &Poller{client: c, red: red, opts: opts, maxBackoff: 30 * time.Minute, log: log.With("component", "cloudflare")}
}

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		jobs, err := p.client.AllJobs(ctx, p.opts.Zone, p.opts.Keys)
		p.mu.Lock()
		p.checked = time.Now()
		if err != nil {
			p.lastErr = p.red.Replace(err.Error())
			wait = min(max(2*wait, p.opts.Interval), p.maxBackoff)
		} else {
			p.jobs, p.lastErr = jobs, ""
			wait = p.opts.Interval
		}
		p.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			p.log.Warn("poll Logpush jobs", "err", p.red.Replace(err.Error()), "retry_in", wait)
		}
	}
}

// JobView is one Logpush job as GET /api/v1/jobs shows it.
type JobView struct {
	JobStatus
	LastBatch time.Time `json:"last_batch,omitzero"`
	Warning   string    `json:"warning,omitempty"`
}

// Report is GET /api/v1/jobs: whether job health is on, when the jobs
// were last polled, the last error, and the jobs.
type Report struct {
	Enabled bool      `json:"enabled"`
	Checked time.Time `json:"checked"`
	Error   string    `json:"error"`
	Jobs    []JobView `json:"jobs"`
}

// Report returns the jobs as last polled, each with a warning when
// something is wrong. A nil Poller reports itself disabled.
func (p *Poller) Report() Report {
	if p == nil {
		return Report{Jobs: []JobView{}}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	views := make([]JobView, 0, len(p.jobs))
	now := time.Now()
	for _, j := range p.jobs {
		v := JobView{JobStatus: j}
		if j.Intake != "" && p.opts.LastBatch != nil {
			v.LastBatch = p.opts.LastBatch(j.Intake)
		}
		v.ErrorMessage = p.red.Replace(v.ErrorMessage)
		v.Warning = jobWarning(v, now)
		views = append(views, v)
	}
	return Report{Enabled: true, Checked: p.checked, Error: p.lastErr, Jobs: views}
}

// jobWarning says what is wrong with a job, or "".
func jobWarning(v JobView, now time.Time) string {
	interval := v.MaxUploadInterval
	if interval <= 0 {
		interval = 30 * time.Second // Logpush's default
	}
	// Allow three intervals plus Logpush's own delay before crying wolf.
	quiet := 3*interval + 2*time.Minute
	switch {
	case !v.Enabled:
		return fmt.Sprintf("job %d is disabled; `raywatch cloudflare connect` re-enables it", v.ID)
	case v.Failing():
		return fmt.Sprintf("job %d's last upload failed (%s)", v.ID, v.ErrorMessage)
	case v.Intake == "":
		return fmt.Sprintf("job %d sends a key that no intake of this raywatch has", v.ID)
	case !v.LastComplete.IsZero() && now.Sub(v.LastComplete) > quiet:
		return fmt.Sprintf("job %d has pushed nothing since %s", v.ID, v.LastComplete.UTC().Format(time.RFC3339))
	case v.LastBatch.IsZero() || now.Sub(v.LastBatch) > quiet:
		if !v.LastComplete.IsZero() && now.Sub(v.LastComplete) <= quiet {
			return fmt.Sprintf("Cloudflare says job %d delivered at %s, but no batch reached intake %q for over %s: check the destination host", v.ID, v.LastComplete.UTC().Format(time.RFC3339), v.Intake, quiet.Round(time.Second))
		}
	}
	return ""
}
