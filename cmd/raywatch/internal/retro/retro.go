// Package retro runs retro-hunts over the batch archive (see
// store/archive): when the IOC set gains indicators, it searches the
// archived traffic for the new indicators only, and it can run one rule
// (a drop-in rule added later) over the same traffic. Matches become
// alerts marked Retro, with the event's own time.
//
// One [Hunter] goroutine runs the hunts one after another, at low
// priority: it yields the processor every few hundred records, pauses
// while the live pipeline says it is busy, and can be capped to a record
// rate. Alert IDs are deterministic (event time, rule, record key, and for
// an indicator hunt the indicator's match key), so that a hunt run again,
// for the same indicator added once more, commits nothing new: the store
// counts each record key once.
package retro

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store/archive"
)

// Hunt kinds.
const (
	KindIndicators = "indicators"
	KindRule       = "rule"
)

// Hunt states.
const (
	StateQueued   = "queued"
	StateRunning  = "running"
	StateDone     = "done"
	StateFailed   = "failed"
	StateCanceled = "canceled"
)

// Defaults of [Options].
const (
	DefaultPollEvery  = time.Second
	DefaultYieldEvery = 256
	DefaultHistory    = 50
	// sinkBatch is how many alerts are handed to the sink at once, at most.
	sinkBatch = 1000
	// busyPause is how long a hunt waits while the live pipeline is busy.
	busyPause = 20 * time.Millisecond
	// maxShownIndicators bounds the indicators a Status lists.
	maxShownIndicators = 20
)

// Archive is the archive a hunt reads; *archive.Archive is one.
type Archive interface {
	// Objects lists the objects received at or after since, oldest first.
	Objects(since time.Time) []archive.Object
	// Scan reads them (see archive.Archive.Scan).
	Scan(ctx context.Context, since time.Time, fn func(obj archive.Object, r io.Reader) error) error
}

// Options configure a [Hunter].
type Options struct {
	// Archive is read by every hunt; required.
	Archive Archive
	// Retention bounds how far back a hunt reads: objects received within
	// Retention before the hunt starts (the archive's own retention). 0
	// reads the whole archive.
	Retention time.Duration
	// Sink commits a hunt's alerts (to the store, then to the dashboards);
	// it is called from the Hunter's goroutine with at most 1000 alerts at a
	// time. An error fails the hunt. Required.
	Sink func(ctx context.Context, alerts []alert.Alert) error
	// IOC, if set, is polled every PollEvery: when it returns a new set,
	// the indicators it gained over the previous one ([ioc.Set.NewOnly])
	// are hunted. The set it returns when [New] is called is the baseline.
	IOC       func() *ioc.Set
	PollEvery time.Duration
	// IntelRule describes the intelligence-feed rule that indicator hunts
	// raise alerts of; the zero value means the built-in rule.
	IntelRule alert.RuleRef
	// Mapping maps rule fields for rule hunts; nil means the default.
	Mapping *rules.Mapping
	// Normalizer decodes archived records; nil means a new one.
	Normalizer *normalize.Normalizer
	// Dataset names the Logpush dataset of archived records; "" means
	// "auto" (recognised by their fields).
	Dataset string
	// Busy, if set, is asked before each chunk of records: while it
	// returns true (live batches are waiting), the hunt pauses.
	Busy func() bool
	// YieldEvery is how many records a hunt reads between yields of the
	// processor; 0 means DefaultYieldEvery.
	YieldEvery int
	// MaxRecordsPerSecond caps a hunt's pace; 0 means no cap.
	MaxRecordsPerSecond float64
	// History is how many finished hunts Status keeps; 0 means
	// DefaultHistory.
	History int
	// Now tells the time; default time.Now.
	Now func() time.Time
	// Logger receives a line per hunt and per unreadable object.
	Logger *slog.Logger
}

// Status describes one hunt, for the IOCs and Rules pages.
type Status struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Rule is the id of the rule hunted (a rule hunt) or of the
	// intelligence-feed rule.
	Rule string `json:"rule"`
	// Indicators counts the indicators hunted; Shown lists the first
	// ones ("type:value (file:line)").
	Indicators int       `json:"indicators,omitempty"`
	Shown      []string  `json:"shown,omitempty"`
	State      string    `json:"state"`
	Queued     time.Time `json:"queued"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	// Since and Until bound the received times of the objects read.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until"`
	// Objects and Bytes read so far, of the totals.
	Objects      int   `json:"objects"`
	ObjectsTotal int   `json:"objects_total"`
	Bytes        int64 `json:"bytes"`
	BytesTotal   int64 `json:"bytes_total"`
	Records      int64 `json:"records"`
	// Matches are the alerts raised (before the store's de-duplication).
	Matches int `json:"matches"`
	// Unreadable counts archived objects that could not be read whole;
	// Error is the last such error, or why the hunt failed.
	Unreadable int    `json:"unreadable,omitempty"`
	Error      string `json:"error,omitempty"`
}

// hunt is a queued or running hunt.
type hunt struct {
	st   Status
	inds []ioc.Indicator
	rule *rules.Rule
}

// Hunter runs retro-hunts one at a time in [Hunter.Run]'s goroutine. Its
// other methods are safe for concurrent use.
type Hunter struct {
	opts  Options
	log   *slog.Logger
	norm  *normalize.Normalizer
	intel alert.RuleRef

	mu      sync.Mutex
	queue   []*hunt
	current *hunt
	history []Status // finished, newest last
	seq     int
	wake    chan struct{}

	iocMu   sync.Mutex // serializes CheckIOC
	prevIOC *ioc.Set
}

// New returns a Hunter; [Hunter.Run] must run for hunts to happen.
func New(opts Options) (*Hunter, error) {
	if opts.Archive == nil || opts.Sink == nil {
		return nil, errors.New("retro: an archive and a sink are required")
	}
	if opts.PollEvery <= 0 {
		opts.PollEvery = DefaultPollEvery
	}
	if opts.YieldEvery <= 0 {
		opts.YieldEvery = DefaultYieldEvery
	}
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Dataset == "" {
		opts.Dataset = "auto"
	}
	h := &Hunter{opts: opts, log: opts.Logger, norm: opts.Normalizer, intel: opts.IntelRule, wake: make(chan struct{}, 1)}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.norm == nil {
		h.norm = normalize.New(normalize.Options{})
	}
	if opts.IOC != nil {
		h.prevIOC = opts.IOC()
	}
	if h.intel.ID == "" {
		ref, err := builtinIntel()
		if err != nil {
			return nil, err
		}
		h.intel = ref
	}
	return h, nil
}

func builtinIntel() (alert.RuleRef, error) {
	rs, err := rules.Builtin()
	if err != nil {
		return alert.RuleRef{}, err
	}
	for _, r := range rs {
		if r.ID == rules.IntelligenceFeedID {
			return alert.RuleRef{ID: r.ID, Title: r.Title, Level: r.Level, Tags: r.Tags, Description: r.Description, References: r.References}, nil
		}
	}
	return alert.RuleRef{}, errors.New("retro: no built-in intelligence-feed rule")
}

// HuntIndicators queues a hunt of inds over the archive and returns its
// id, or "" when inds is empty.
func (h *Hunter) HuntIndicators(inds []ioc.Indicator) string {
	if len(inds) == 0 {
		return ""
	}
	hu := &hunt{inds: slices.Clone(inds), st: Status{Kind: KindIndicators, Rule: h.intel.ID, Indicators: len(inds)}}
	for _, ind := range inds[:min(len(inds), maxShownIndicators)] {
		hu.st.Shown = append(hu.st.Shown, fmt.Sprintf("%s:%s (%s:%d)", ind.Type, ind.Value, ind.File, ind.Line))
	}
	return h.enqueue(hu)
}

// HuntRule queues a hunt of one rule over the archive and returns its id.
// It fails, queuing nothing, when the rule does not compile or is the
// intelligence-feed rule (whose matches come from indicator hunts).
func (h *Hunter) HuntRule(r rules.Rule) (string, error) {
	if r.ID == rules.IntelligenceFeedID {
		return "", errors.New("the intelligence-feed rule is hunted by indicator: add indicators to the IOC folder")
	}
	if r.Correlation != nil {
		return "", fmt.Errorf("rule %s is a correlation rule: retro-run the rules it correlates", r.ID)
	}
	if _, err := engine.NewWithOptions([]rules.Rule{r}, engine.Options{Mapping: h.opts.Mapping}); err != nil {
		return "", err
	}
	return h.enqueue(&hunt{rule: &r, st: Status{Kind: KindRule, Rule: r.ID}}), nil
}

func (h *Hunter) enqueue(hu *hunt) string {
	now := h.opts.Now().UTC()
	h.mu.Lock()
	h.seq++
	hu.st.ID = now.Format("20060102T150405Z") + "-" + strconv.Itoa(h.seq)
	hu.st.State = StateQueued
	hu.st.Queued = now
	// Objects received from now on are processed with the new indicator
	// or rule in place: the hunt reads what came before.
	hu.st.Until = now
	h.queue = append(h.queue, hu)
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	return hu.st.ID
}

// Status returns the hunts: running and queued ones first, then finished
// ones, newest first.
func (h *Hunter) Status() []Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Status
	if h.current != nil {
		out = append(out, h.current.st)
	}
	for _, hu := range h.queue {
		out = append(out, hu.st)
	}
	for i := len(h.history) - 1; i >= 0; i-- {
		out = append(out, h.history[i])
	}
	return out
}

// Run runs the queued hunts one after another, and calls
// [Hunter.CheckIOC] every Options.PollEvery, until ctx ends; it returns nil
// then. A hunt cut short by ctx ends as canceled.
func (h *Hunter) Run(ctx context.Context) error {
	var poll <-chan time.Time
	if h.opts.IOC != nil {
		t := time.NewTicker(h.opts.PollEvery)
		defer t.Stop()
		poll = t.C
	}
	for {
		if hu := h.next(); hu != nil {
			h.run(ctx, hu)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-h.wake:
		case <-poll:
			h.CheckIOC()
		}
	}
}

// CheckIOC compares the set Options.IOC returns with the one it saw last
// and queues a hunt of the indicators gained, returning its id ("" when
// none). The set at [New] is the baseline. Run calls it on its own;
// whoever swaps the IOC set may call it too, to start a hunt at once.
func (h *Hunter) CheckIOC() string {
	if h.opts.IOC == nil {
		return ""
	}
	h.iocMu.Lock()
	defer h.iocMu.Unlock()
	cur := h.opts.IOC()
	if cur == h.prevIOC {
		return ""
	}
	inds := cur.NewOnly(h.prevIOC)
	h.prevIOC = cur
	if len(inds) == 0 {
		return ""
	}
	id := h.HuntIndicators(inds)
	h.log.Info("IOC set gained indicators; retro-hunt queued", "hunt", id, "indicators", len(inds))
	return id
}

func (h *Hunter) next() *hunt {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queue) == 0 {
		return nil
	}
	hu := h.queue[0]
	h.queue = h.queue[1:]
	h.current = hu
	return hu
}

// update applies fn to the running hunt's status under the lock.
func (h *Hunter) update(hu *hunt, fn func(st *Status)) {
	h.mu.Lock()
	fn(&hu.st)
	h.mu.Unlock()
}

// run runs one hunt and files it in the history.
func (h *Hunter) run(ctx context.Context, hu *hunt) {
	start := h.opts.Now().UTC()
	var since time.Time
	if h.opts.Retention > 0 {
		since = start.Add(-h.opts.Retention)
	}
	var total int
	var bytesTotal int64
	for _, o := range h.opts.Archive.Objects(since) {
		if !o.Received.Before(hu.st.Until) {
			break
		}
		total++
		bytesTotal += o.Size
	}
	h.update(hu, func(st *Status) {
		st.State, st.Started, st.Since, st.ObjectsTotal, st.BytesTotal = StateRunning, start, since, total, bytesTotal
	})
	err := h.scan(ctx, hu, since)
	h.mu.Lock()
	hu.st.Finished = h.opts.Now().UTC()
	switch {
	case err == nil:
		hu.st.State = StateDone
	case ctx.Err() != nil:
		hu.st.State = StateCanceled
	default:
		hu.st.State, hu.st.Error = StateFailed, err.Error()
	}
	st := hu.st
	h.current = nil
	h.history = append(h.history, st)
	if len(h.history) > h.opts.History {
		h.history = slices.Delete(h.history, 0, len(h.history)-h.opts.History)
	}
	h.mu.Unlock()
	h.log.Info("retro-hunt finished", "hunt", st.ID, "kind", st.Kind, "rule", st.Rule, "state", st.State,
		"objects", st.Objects, "records", st.Records, "matches", st.Matches, "duration", st.Finished.Sub(st.Started), "err", st.Error)
}

var errUntil = errors.New("reached the hunt's end")

// scan reads the archive for one hunt.
func (h *Hunter) scan(ctx context.Context, hu *hunt, since time.Time) error {
	m, err := h.matcher(hu)
	if err != nil {
		return err
	}
	p := pacer{h: h, ctx: ctx, start: time.Now()}
	var pending []alert.Alert
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		err := h.opts.Sink(ctx, pending)
		pending = nil // the sink may keep the slice
		if err != nil {
			return fmt.Errorf("%w: %w", errSink, err)
		}
		return nil
	}
	var ev normalize.Event
	err = h.opts.Archive.Scan(ctx, since, func(obj archive.Object, r io.Reader) error {
		if !obj.Received.Before(hu.st.Until) {
			return errUntil
		}
		var records int64
		readErr := normalize.Split(r, normalize.SplitOptions{OnError: func(int, error) {}}, func(_ int, raw []byte) error {
			records++
			if err := p.tick(); err != nil {
				return err
			}
			if !m.wants(raw) {
				return nil
			}
			if err := h.norm.NormalizeInto(&ev, h.opts.Dataset, raw); err != nil {
				return nil // counted by the live pipeline when it was received
			}
			n := len(pending)
			pending = m.match(&ev, obj, pending)
			if len(pending) > n {
				h.update(hu, func(st *Status) { st.Matches += len(pending) - n })
			}
			if len(pending) >= sinkBatch {
				return flush()
			}
			return nil
		})
		h.update(hu, func(st *Status) {
			st.Objects++
			st.Bytes += obj.Size
			st.Records += records
		})
		if readErr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(readErr, errSink) {
				return readErr
			}
			h.log.Warn("retro-hunt: archived object not read whole", "object", obj.Name, "err", readErr)
			h.update(hu, func(st *Status) { st.Unreadable++; st.Error = obj.Name + ": " + readErr.Error() })
		}
		return flush()
	})
	if errors.Is(err, errUntil) {
		err = nil
	}
	if err != nil {
		return err
	}
	return flush()
}

// errSink marks a sink failure inside a record callback.
var errSink = errors.New("commit retro alerts")

// pacer keeps a hunt's pace low: it yields the processor every YieldEvery
// records, waits while the live pipeline is busy, and holds the record
// rate under its cap.
type pacer struct {
	h     *Hunter
	ctx   context.Context
	n     int64
	start time.Time
}

func (p *pacer) tick() error {
	p.n++
	if p.n%int64(p.h.opts.YieldEvery) != 0 {
		return nil
	}
	runtime.Gosched()
	if err := p.ctx.Err(); err != nil {
		return err
	}
	for p.h.opts.Busy != nil && p.h.opts.Busy() {
		if err := sleep(p.ctx, busyPause); err != nil {
			return err
		}
	}
	if rate := p.h.opts.MaxRecordsPerSecond; rate > 0 {
		due := p.start.Add(time.Duration(float64(p.n) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			return sleep(p.ctx, d)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recordKey identifies a record across Logpush retries exactly as the
// live pipeline does ([pipeline.DedupeKey]), so that the store counts a
// record the live pipeline alerted on once.
func recordKey(ev *normalize.Event) string { return pipeline.DedupeKey(ev) }

// eventTime is the time an alert of ev carries: its own, else when its
// batch was received.
func eventTime(ev *normalize.Event, obj archive.Object) time.Time {
	if ev.Time.IsZero() {
		return obj.Received.UTC()
	}
	return ev.Time
}

// bytesContainsFold reports whether b holds needle (lower case ASCII),
// ignoring ASCII case.
func bytesContainsFold(b, needle []byte) bool {
	if len(needle) == 0 {
		return true
	}
	c0 := needle[0]
	up := c0
	if 'a' <= c0 && c0 <= 'z' {
		up = c0 - 'a' + 'A'
	}
	for i := 0; i+len(needle) <= len(b); {
		j := bytes.IndexByte(b[i:], c0)
		if up != c0 {
			if k := bytes.IndexByte(b[i:], up); k >= 0 && (j < 0 || k < j) {
				j = k
			}
		}
		if j < 0 || i+j+len(needle) > len(b) {
			return false
		}
		if bytes.EqualFold(b[i+j:i+j+len(needle)], needle) {
			return true
		}
		i += j + 1
	}
	return false
}
