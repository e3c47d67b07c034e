package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// MaxReportedErrors bounds the malformed-record messages kept per batch
// for the logs, and printed by scan.
const MaxReportedErrors = 10

// MaxRejectsPerBatch bounds the malformed records of one batch kept in the
// store for inspection; the rest are only counted.
const MaxRejectsPerBatch = 100

// maxCommitGroup bounds the processed batches committed in one
// transaction.
const maxCommitGroup = 32

// Spool is the part of the store's spool the [SpoolWorker] reads.
type Spool interface {
	Next(ctx context.Context) (*store.SpooledBatch, error)
	Open(b *store.SpooledBatch) (io.ReadCloser, error)
	Decoded(b *store.SpooledBatch) ([]byte, bool)
	Remove(b *store.SpooledBatch) error
	Retry(b *store.SpooledBatch)
}

// Committer is the part of the store that the [SpoolWorker] and the Kafka
// consumer write to.
type Committer interface {
	BatchDone(id string) (bool, error)
	Commit(ctx context.Context, b store.Batch) ([]alert.Alert, error)
	CommitAll(ctx context.Context, bs []store.Batch) ([][]alert.Alert, error)
}

// Publisher receives the alerts a commit changed (the dashboards' hub).
type Publisher interface {
	Publish(alerts []alert.Alert)
}

// Metrics count what the pipeline processed.
type Metrics struct {
	Batches   *prometheus.CounterVec // by result
	Records   prometheus.Counter
	Malformed prometheus.Counter
	Latency   prometheus.Histogram
	// FieldErrors counts the fields left out of records that were
	// otherwise processed, by dataset and field (the record's top-level
	// key, so that the labels are Logpush's field names).
	FieldErrors *prometheus.CounterVec
}

// NewMetrics registers the pipeline's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_batches_processed_total",
			Help: "Spooled batches processed, by result (committed, replayed_done, retry).",
		}, []string{"result"}),
		Records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_records_processed_total",
			Help: "Records processed from the spool, malformed ones included.",
		}),
		Malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_records_rejected_total",
			Help: "Malformed records (not JSON, not a known dataset, too long, over the batch limit).",
		}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raywatch_batch_latency_seconds",
			Help:    "Time from a batch's acknowledgement (2xx) to its alerts being committed.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		FieldErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_records_field_errors_total",
			Help: "Fields left out of records that were otherwise processed (a value of the wrong type or format), by dataset and field.",
		}, []string{"dataset", "field"}),
	}
	reg.MustRegister(m.Batches, m.Records, m.Malformed, m.Latency, m.FieldErrors)
	return m
}

// CountFields adds the field errors of t to the FieldErrors counter.
func (m *Metrics) CountFields(t *Tally) {
	for k, n := range t.FieldErrors {
		m.FieldErrors.WithLabelValues(k.Dataset, k.Field).Add(float64(n))
	}
}

// FieldKey names a field of a dataset, as Tally counts field errors.
type FieldKey struct {
	Dataset string
	// Field is the record's top-level key.
	Field string
}

// TopField returns the top-level key of a field error's field
// ("Metadata" for "Metadata.zone_tag"): keys inside objects are the
// sender's, and would make the metric's labels unbounded.
func TopField(field string) string {
	if i := strings.IndexByte(field, '.'); i >= 0 {
		field = field[:i]
	}
	if field == "" {
		return "unknown"
	}
	return field
}

// Tally sums up the chunks of one batch (or of one Kafka poll).
type Tally struct {
	Records   int
	Malformed int
	Alerts    []alert.Alert
	Rejects   []store.Reject
	// Errors are the first MaxReportedErrors malformed records, for logs.
	Errors []string
	// FieldRecords counts the records that lost fields (and were still
	// detected); FieldErrors counts those fields by dataset and field.
	FieldRecords int
	FieldErrors  map[FieldKey]int
	// FieldMessages are the first MaxReportedErrors field errors, for logs.
	FieldMessages []string
}

// Add counts c in. A batch that could not be opened counts as one
// malformed record, number 0.
func (t *Tally) Add(c *Chunk) {
	b := c.Batch
	bad := c.Bad
	if c.Err != nil {
		bad = []BadRecord{{N: 0, Err: c.Err}}
	}
	t.Records += c.Records
	t.Alerts = append(t.Alerts, c.Alerts...)
	for _, r := range bad {
		t.Malformed++
		if len(t.Errors) < MaxReportedErrors {
			t.Errors = append(t.Errors, fmt.Sprintf("record %d: %v", r.N, r.Err))
		}
		if len(t.Rejects) < MaxRejectsPerBatch {
			t.Rejects = append(t.Rejects, store.Reject{
				Time: b.Received, Intake: b.Intake, Batch: b.ID, Record: r.N, Reason: r.Err.Error(), Line: r.Line,
			})
		}
	}
	t.addFields(c)
}

// addFields counts the field errors of c in, each kept as a reject
// ("field dropped: ...") within the batch's bound.
func (t *Tally) addFields(c *Chunk) {
	b := c.Batch
	for _, f := range c.Fields {
		t.FieldRecords++
		for _, fe := range f.Errs {
			if t.FieldErrors == nil {
				t.FieldErrors = map[FieldKey]int{}
			}
			t.FieldErrors[FieldKey{Dataset: f.Dataset, Field: TopField(fe.Field)}]++
			if len(t.FieldMessages) < MaxReportedErrors {
				t.FieldMessages = append(t.FieldMessages, fmt.Sprintf("record %d: %v", f.N, fe))
			}
			if len(t.Rejects) < MaxRejectsPerBatch {
				t.Rejects = append(t.Rejects, store.Reject{
					Time: b.Received, Intake: b.Intake, Batch: b.ID, Record: f.N, Reason: "field dropped: " + fe.Error(), Line: f.Line,
				})
			}
		}
	}
}

// SpoolWorker processes the spooled batches of the HTTP intake: detect,
// commit to the store, publish to the dashboards, and only then remove the
// batch from the spool. Its fields are set before Run.
type SpoolWorker struct {
	Pipeline *Pipeline
	Spool    Spool
	Store    Committer
	Hub      Publisher
	Log      *slog.Logger
	Metrics  *Metrics
	// Activity, if set, hears of each batch taken from the spool (when
	// each intake last delivered).
	Activity func(intake string, received time.Time)
	// AlertsOut, if set, publishes the per-record alerts of a batch (to
	// Kafka's alerts topic) before they are committed to the store; an
	// error keeps the batch for a retry.
	AlertsOut func(ctx context.Context, alerts []alert.Alert) error
	// Archive, if set, keeps each batch once its alerts are committed (the
	// batch archive of retro-hunts), with its body as received. It is
	// called from one goroutine of Run's own, so that the committer never
	// waits for the archive's disk, and before the batch leaves the spool:
	// a batch committed but not archived when raywatch stops is archived at
	// the next start. An error is logged; it never fails the batch.
	Archive func(b *store.SpooledBatch, body io.Reader) error

	archiveQ chan *store.SpooledBatch
}

// archiveQueue bounds the committed batches waiting for the archive;
// beyond it the committer waits, and the spool fills up.
const archiveQueue = 2 * maxCommitGroup

// batchResult is a processed batch waiting for its commit.
type batchResult struct {
	b *store.SpooledBatch
	Tally
}

// Run processes batches until the spool is drained or closed, or ctx ends
// (a batch in progress then stays in the spool for the next start). The
// pipeline's workers detect; one committer writes what they found to the
// store, several batches per transaction, so that no worker waits for the
// disk. Run returns once both have stopped.
func (w *SpoolWorker) Run(ctx context.Context) {
	// Detected batches wait here while the committer writes the ones
	// before them; the committer takes those waiting (up to
	// maxCommitGroup) into its next transaction.
	results := make(chan *batchResult, 4*w.Pipeline.opts.Workers)
	var committer, archiver sync.WaitGroup
	if w.Archive != nil {
		w.archiveQ = make(chan *store.SpooledBatch, archiveQueue)
		archiver.Go(func() { w.archiveLoop(ctx) })
	}
	committer.Go(func() { w.commitLoop(ctx, results) })
	var cur *batchResult
	_ = w.Pipeline.Run(ctx, spoolSource{w}, func(ctx context.Context, c *Chunk) error {
		sb := c.Batch.Value.(*store.SpooledBatch)
		if c.Err != nil {
			w.retryLater(ctx, sb, c.Err)
			return nil
		}
		if cur == nil || cur.b != sb {
			cur = &batchResult{b: sb}
		}
		cur.Add(c)
		if !c.Last {
			return nil
		}
		r := cur
		cur = nil
		w.complete(ctx, r, results)
		return nil
	})
	close(results)
	committer.Wait()
	if w.archiveQ != nil {
		close(w.archiveQ)
		archiver.Wait()
	}
}

// complete publishes a detected batch's alerts to Kafka when asked, and
// hands it to the committer.
func (w *SpoolWorker) complete(ctx context.Context, r *batchResult, results chan<- *batchResult) {
	// Alerts go to Kafka before the batch is marked done in the store: a
	// failure in between publishes them again on the retry, which the
	// alert IDs make harmless, where the other order could lose them.
	if w.AlertsOut != nil && len(r.Alerts) > 0 {
		if err := w.AlertsOut(ctx, r.Alerts); err != nil {
			if ctx.Err() == nil {
				w.retryLater(ctx, r.b, fmt.Errorf("publish alerts of batch %s: %w", r.b.ID, err))
			}
			return
		}
	}
	select {
	case results <- r:
	case <-ctx.Done():
	}
}

// spoolSource gives the pipeline the spool's batches, removing those a
// previous run committed but did not remove.
type spoolSource struct{ w *SpoolWorker }

func (s spoolSource) Next(ctx context.Context) (*Batch, error) {
	w := s.w
	for {
		sb, err := w.Spool.Next(ctx)
		if err != nil {
			return nil, io.EOF // drained, closed, or ctx ended
		}
		done, err := w.Store.BatchDone(sb.ID)
		if err == nil && done { // committed before a crash, not yet removed
			w.Metrics.Batches.WithLabelValues("replayed_done").Inc()
			w.archive(sb)
			if err = w.Spool.Remove(sb); err == nil {
				continue
			}
		}
		if err != nil {
			w.retryLater(ctx, sb, err)
			continue
		}
		if w.Activity != nil {
			w.Activity(sb.Intake, sb.Received)
		}
		b := &Batch{ID: sb.ID, Intake: sb.Intake, Received: sb.Received, Value: sb}
		if dec, ok := w.Spool.Decoded(sb); ok {
			// The intake kept the decompressed body in memory.
			b.Decoded = true
			b.Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(dec)), nil }
		} else {
			b.Open = func() (io.ReadCloser, error) { return w.Spool.Open(sb) }
		}
		return b, nil
	}
}

// retryLater puts a batch that could not be processed back in the queue
// after a second.
func (w *SpoolWorker) retryLater(ctx context.Context, b *store.SpooledBatch, err error) {
	w.Metrics.Batches.WithLabelValues("retry").Inc()
	w.Log.Error("batch not processed; will retry", "batch", b.ID, "intake", b.Intake, "err", err)
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Second):
	}
	w.Spool.Retry(b)
}

// commitLoop commits the processed batches, taking whatever has queued up
// while the last transaction was on its way to the disk.
func (w *SpoolWorker) commitLoop(ctx context.Context, results <-chan *batchResult) {
	var group []*batchResult
	for r := range results {
		group = append(group[:0], r)
	more:
		for len(group) < maxCommitGroup {
			select {
			case r, ok := <-results:
				if !ok {
					break more
				}
				group = append(group, r)
			default:
				break more
			}
		}
		w.commit(ctx, group)
		clear(group)
	}
}

// commit writes a group of processed batches in one transaction, then
// publishes their alerts and removes them from the spool. If the
// transaction fails, each batch is committed on its own, so that one bad
// batch does not hold back the others; a batch that still fails is
// retried later.
func (w *SpoolWorker) commit(ctx context.Context, group []*batchResult) {
	bs := make([]store.Batch, len(group))
	for i, r := range group {
		bs[i] = store.Batch{ID: r.b.ID, Alerts: r.Alerts, Rejects: r.Rejects}
	}
	changed, err := w.Store.CommitAll(ctx, bs)
	if err != nil {
		if ctx.Err() != nil {
			return // the batches stay in the spool for the next start
		}
		if len(group) > 1 {
			for _, r := range group {
				w.commit(ctx, []*batchResult{r})
			}
			return
		}
		w.retryLater(ctx, group[0].b, err)
		return
	}
	for i, r := range group {
		w.finish(r, changed[i])
	}
}

// finish publishes a committed batch and removes it from the spool.
func (w *SpoolWorker) finish(r *batchResult, changed []alert.Alert) {
	b := r.b
	w.Hub.Publish(changed)
	w.Metrics.Latency.Observe(time.Since(b.Received).Seconds())
	w.Metrics.Records.Add(float64(r.Records))
	w.Metrics.Malformed.Add(float64(r.Malformed))
	w.Metrics.Batches.WithLabelValues("committed").Inc()
	w.Metrics.CountFields(&r.Tally)
	if r.Malformed > 0 {
		w.Log.Warn("malformed records in batch", "batch", b.ID, "intake", b.Intake, "records", r.Records, "malformed", r.Malformed, "first_errors", r.Errors)
	}
	if r.FieldRecords > 0 {
		w.Log.Warn("fields left out of records in batch; the records were processed without them", "batch", b.ID, "intake", b.Intake,
			"records", r.FieldRecords, "first_errors", r.FieldMessages)
	}
	w.Log.Debug("batch processed", "batch", b.ID, "intake", b.Intake, "records", r.Records, "alerts", len(r.Alerts), "changed", len(changed))
	if w.archiveQ != nil {
		w.archiveQ <- b // the archiver removes it
		return
	}
	w.remove(b)
}

// remove takes a committed batch out of the spool.
func (w *SpoolWorker) remove(b *store.SpooledBatch) {
	if err := w.Spool.Remove(b); err != nil {
		// Committed: a replay of the file finds the batch done.
		w.Log.Error("spool", "batch", b.ID, "err", err)
	}
}

// archiveLoop archives the committed batches, then removes them from the
// spool, until the queue is closed. Once ctx ends it leaves the rest in
// the spool: the next start archives them (see spoolSource).
func (w *SpoolWorker) archiveLoop(ctx context.Context) {
	for b := range w.archiveQ {
		if ctx.Err() != nil {
			continue
		}
		w.archive(b)
		w.remove(b)
	}
}

// archive hands a committed batch's body to Archive, logging a failure.
func (w *SpoolWorker) archive(b *store.SpooledBatch) {
	if w.Archive == nil {
		return
	}
	body, err := w.Spool.Open(b)
	if err == nil {
		err = w.Archive(b, body)
		body.Close()
	}
	if err != nil {
		w.Log.Error("batch not archived", "batch", b.ID, "intake", b.Intake, "err", err)
	}
}
