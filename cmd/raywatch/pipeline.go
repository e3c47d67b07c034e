package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/web"
)

// maxReportedErrors bounds the malformed-record messages kept per batch.
const maxReportedErrors = 10

// maxRejectsPerBatch bounds the malformed records of one batch kept in the
// store for inspection; the rest are only counted.
const maxRejectsPerBatch = 100

// maxRejectLine is how much of a malformed record is kept.
const maxRejectLine = 1024

// detector turns raw records into alerts: normalize, then match.
type detector struct {
	norm    *normalize.Normalizer
	eng     *engine.Engine
	dataset string
}

// batchStats counts what a batch held.
type batchStats struct {
	Records   int
	Malformed int
	Errors    []string
}

func (s *batchStats) malformed(where string, err error) {
	s.Malformed++
	if len(s.Errors) < maxReportedErrors {
		s.Errors = append(s.Errors, fmt.Sprintf("%s: %v", where, err))
	}
}

// detectRecord normalizes one record into ev, which the caller owns and
// reuses from record to record (one per goroutine), and returns its
// alerts. dataset overrides the detector's when not empty. The alerts keep
// ev's Doc, which stays valid after ev is reused.
func (d *detector) detectRecord(ev *normalize.Event, dataset string, raw []byte, intake string, now time.Time) ([]alert.Alert, error) {
	if dataset == "" {
		dataset = d.dataset
	}
	if err := d.norm.NormalizeInto(ev, dataset, raw); err != nil {
		return nil, err
	}
	alerts := d.eng.Match(ev, intake, now)
	if key := dedupeKey(ev); key != ev.Key {
		for i := range alerts {
			alerts[i].RecordKey = key
			alerts[i].ID = alert.AlertID(ev.Time, alerts[i].Rule.ID, key)
		}
	}
	return alerts, nil
}

// dedupeKey is the key that identifies a record across Logpush retries: the
// RayID (normalize's Event.Key), except for firewall_events, where one
// request yields several events: RayID, RuleID, Source and MatchIndex.
func dedupeKey(ev *normalize.Event) string {
	if ev.Dataset != "firewall_events" {
		return ev.Key
	}
	ray, ok := ev.String("cloudflare.RayID")
	if !ok || ray == "" {
		return ev.Key
	}
	rule, _ := ev.String("cloudflare.RuleID")
	src, _ := ev.String("cloudflare.Source")
	idx, _ := ev.String("cloudflare.MatchIndex")
	return ray + "/" + rule + "/" + src + "/" + idx
}

// pipeline processes spooled batches: detect, commit to the store, publish
// to the dashboards, and only then remove the batch from the spool.
type pipeline struct {
	detector
	store      *store.Store
	spool      *store.Spool
	hub        *web.Hub
	log        *slog.Logger
	maxLine    int
	maxRecords int
	metrics    *pipelineMetrics
	// coverage records which Logpush fields each intake's records carry;
	// activity when each intake last delivered. Both may be nil.
	coverage *FieldCoverage
	activity *intakeActivity
	// alertsOut, if set, publishes the per-record alerts of a batch (to
	// Kafka's alerts topic) before they are committed to the store; an
	// error keeps the batch for a retry.
	alertsOut func(ctx context.Context, alerts []alert.Alert) error
}

type pipelineMetrics struct {
	batches   *prometheus.CounterVec // by result
	records   prometheus.Counter
	malformed prometheus.Counter
	latency   prometheus.Histogram
}

func newPipelineMetrics(reg prometheus.Registerer) *pipelineMetrics {
	m := &pipelineMetrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_batches_processed_total",
			Help: "Spooled batches processed, by result (committed, replayed_done, retry).",
		}, []string{"result"}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_records_processed_total",
			Help: "Records processed from the spool, malformed ones included.",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_records_rejected_total",
			Help: "Malformed records (not JSON, not a known dataset, too long, over the batch limit).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raywatch_batch_latency_seconds",
			Help:    "Time from a batch's acknowledgement (2xx) to its alerts being committed.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
	}
	reg.MustRegister(m.batches, m.records, m.malformed, m.latency)
	return m
}

// maxCommitGroup bounds the processed batches committed in one
// transaction.
const maxCommitGroup = 32

// batchResult is a processed batch waiting for its commit.
type batchResult struct {
	b       *store.SpooledBatch
	st      batchStats
	alerts  []alert.Alert
	rejects []store.Reject
}

// pipelineChunkRecords is how many records of a batch a worker takes at a
// time: the records of one batch are detected by all workers at once, so
// that a batch's latency does not wait on one core.
const pipelineChunkRecords = 128

// recChunk is a run of consecutive records of a batch, copied out of the
// body.
type recChunk struct {
	job   *batchJob
	out   *chunkOut
	buf   []byte
	items []recItem
}

// recItem is one record of a chunk: its bytes in the chunk's buf, or the
// reason the reader refused it.
type recItem struct {
	n        int
	off, end int
	err      error
}

// chunkOut is what detection made of a chunk.
type chunkOut struct {
	alerts []alert.Alert
	bad    []badRecord
}

// badRecord is a malformed record: its number, the reason, and the start
// of its text.
type badRecord struct {
	n    int
	err  error
	line string
}

// batchJob is a batch being detected: the reader adds a chunk at a time;
// whichever goroutine finishes the last chunk assembles the result.
type batchJob struct {
	b       *store.SpooledBatch
	st      batchStats
	pending atomic.Int64 // chunks not yet detected, plus one while the reader splits
	mu      sync.Mutex
	outs    []*chunkOut // in record order
}

// run processes batches until the spool is drained or closed, or ctx
// ends (a batch in progress then stays in the spool for the next start).
// One reader splits batches into chunks of records; the workers detect
// them; one committer writes what they found to the store, several
// batches per transaction, so that no worker waits for the disk.
func (p *pipeline) run(ctx context.Context, workers int) {
	chunks := make(chan *recChunk, 2*workers)
	results := make(chan *batchResult, workers)
	free := make(chan *recChunk, 4*workers+2)
	var committer sync.WaitGroup
	committer.Go(func() { p.commitLoop(ctx, results) })
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { p.work(ctx, chunks, free, results) })
	}
	p.read(ctx, chunks, free, results)
	close(chunks)
	wg.Wait()
	close(results)
	committer.Wait()
}

// read takes batches from the spool and splits them into chunks for the
// workers.
func (p *pipeline) read(ctx context.Context, chunks chan<- *recChunk, free chan *recChunk, results chan<- *batchResult) {
	for {
		b, err := p.spool.Next(ctx)
		if err != nil {
			return
		}
		done, err := p.store.BatchDone(b.ID)
		if err == nil && done { // committed before a crash, not yet removed
			p.metrics.batches.WithLabelValues("replayed_done").Inc()
			err = p.spool.Remove(b)
			if err == nil {
				continue
			}
		}
		job := &batchJob{b: b}
		job.pending.Store(1)
		if err == nil {
			err = p.split(ctx, job, chunks, free)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.retryLater(ctx, b, err)
			continue
		}
		if job.pending.Add(-1) == 0 {
			p.complete(ctx, job, results)
		}
	}
}

// split reads one batch and sends its records to the workers in chunks.
// It returns an error, and sends nothing, if the batch cannot be opened,
// or ctx's error if ctx ends.
func (p *pipeline) split(ctx context.Context, job *batchJob, chunks chan<- *recChunk, free chan *recChunk) error {
	b := job.b
	var body io.Reader
	if dec, ok := p.spool.Decoded(b); ok {
		// The intake kept the decompressed body in memory.
		body = bytes.NewReader(dec)
	} else {
		rc, err := p.spool.Open(b)
		if err != nil {
			return err
		}
		defer rc.Close()
		br := bufio.NewReaderSize(rc, 256<<10)
		body = br
		if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
			zr, err := gzip.NewReader(br)
			if err != nil {
				return fmt.Errorf("batch %s: %w", b.ID, err)
			}
			defer zr.Close()
			body = zr
		}
	}
	if p.activity != nil {
		p.activity.saw(b.Intake, b.Received)
	}
	var c *recChunk
	send := func() error {
		if c == nil {
			return nil
		}
		job.pending.Add(1)
		select {
		case chunks <- c:
			c = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	add := func(it recItem, raw []byte) error {
		if c == nil {
			c = newRecChunk(free)
			c.job, c.out = job, &chunkOut{}
			job.mu.Lock()
			job.outs = append(job.outs, c.out)
			job.mu.Unlock()
		}
		it.off = len(c.buf)
		c.buf = append(c.buf, raw...)
		it.end = len(c.buf)
		c.items = append(c.items, it)
		if len(c.items) >= pipelineChunkRecords {
			return send()
		}
		return nil
	}
	st := &job.st
	var addErr error
	err := normalize.Split(body, normalize.SplitOptions{
		MaxLineBytes: p.maxLine,
		OnError: func(n int, err error) {
			st.Records++
			if addErr == nil {
				addErr = add(recItem{n: n, err: fmt.Errorf("%w: over %d bytes", normalize.ErrRecordTooLong, p.maxLine)}, nil)
			}
		},
	}, func(n int, raw []byte) error {
		if addErr != nil {
			return addErr
		}
		st.Records++
		if st.Records > p.maxRecords {
			return add(recItem{n: n, err: fmt.Errorf("over the limit of %d records per batch", p.maxRecords)}, nil)
		}
		return add(recItem{n: n}, raw)
	})
	if err == nil {
		err = addErr
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The intake checked the framing before the 2xx, so this is a
		// JSON array that breaks off, or damage on disk: keep what was
		// read, and say so.
		if aerr := add(recItem{n: st.Records + 1, err: fmt.Errorf("batch body unreadable after record %d: %w", st.Records, err)}, nil); aerr != nil {
			return aerr
		}
	}
	return send()
}

// newRecChunk takes a chunk from the free list, or makes one.
func newRecChunk(free chan *recChunk) *recChunk {
	select {
	case c := <-free:
		return c
	default:
		return &recChunk{buf: make([]byte, 0, 256<<10), items: make([]recItem, 0, pipelineChunkRecords)}
	}
}

// work detects chunks of records; the worker that finishes a batch's last
// chunk completes the batch.
func (p *pipeline) work(ctx context.Context, chunks <-chan *recChunk, free chan *recChunk, results chan<- *batchResult) {
	var ev normalize.Event
	for c := range chunks {
		job := c.job
		p.detectChunk(&ev, c)
		c.job, c.out = nil, nil
		c.buf, c.items = c.buf[:0], c.items[:0]
		select {
		case free <- c:
		default:
		}
		if job.pending.Add(-1) == 0 {
			p.complete(ctx, job, results)
		}
	}
}

// detectChunk runs the records of c through detection. A malformed
// record is kept for inspection; it never stops the batch.
func (p *pipeline) detectChunk(ev *normalize.Event, c *recChunk) {
	b, out := c.job.b, c.out
	for _, it := range c.items {
		raw := c.buf[it.off:it.end]
		if it.err != nil {
			out.bad = append(out.bad, badRecord{n: it.n, err: it.err})
			continue
		}
		if p.coverage != nil {
			p.coverage.ObserveJSON(b.Intake, raw)
		}
		// The batch's receive time stands in for a missing event time, so
		// that a replay computes the same alerts.
		as, err := p.detectRecord(ev, "", raw, b.Intake, b.Received)
		if err != nil {
			line := raw[:min(len(raw), maxRejectLine)]
			out.bad = append(out.bad, badRecord{n: it.n, err: err, line: strings.ToValidUTF8(string(line), "\uFFFD")})
			continue
		}
		out.alerts = append(out.alerts, as...)
	}
}

// complete assembles a detected batch, in record order, publishes its
// alerts to Kafka when asked, and hands it to the committer.
func (p *pipeline) complete(ctx context.Context, job *batchJob, results chan<- *batchResult) {
	b := job.b
	r := &batchResult{b: b, st: job.st}
	for _, out := range job.outs {
		r.alerts = append(r.alerts, out.alerts...)
		for _, bad := range out.bad {
			r.st.malformed(fmt.Sprintf("record %d", bad.n), bad.err)
			if len(r.rejects) < maxRejectsPerBatch {
				r.rejects = append(r.rejects, store.Reject{
					Time: b.Received, Intake: b.Intake, Batch: b.ID, Record: bad.n,
					Reason: bad.err.Error(), Line: bad.line,
				})
			}
		}
	}
	// Alerts go to Kafka before the batch is marked done in the store: a
	// failure in between publishes them again on the retry, which the
	// alert IDs make harmless, where the other order could lose them.
	if p.alertsOut != nil && len(r.alerts) > 0 {
		if err := p.alertsOut(ctx, r.alerts); err != nil {
			if ctx.Err() == nil {
				p.retryLater(ctx, b, fmt.Errorf("publish alerts of batch %s: %w", b.ID, err))
			}
			return
		}
	}
	select {
	case results <- r:
	case <-ctx.Done():
	}
}

// retryLater puts a batch that could not be processed back in the queue
// after a second.
func (p *pipeline) retryLater(ctx context.Context, b *store.SpooledBatch, err error) {
	p.metrics.batches.WithLabelValues("retry").Inc()
	p.log.Error("batch not processed; will retry", "batch", b.ID, "intake", b.Intake, "err", err)
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Second):
	}
	p.spool.Retry(b)
}

// commitLoop commits the results of the workers, taking whatever has
// queued up while the last transaction was on its way to the disk.
func (p *pipeline) commitLoop(ctx context.Context, results <-chan *batchResult) {
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
		p.commit(ctx, group)
		clear(group)
	}
}

// commit writes a group of processed batches in one transaction, then
// publishes their alerts and removes them from the spool. If the
// transaction fails, each batch is committed on its own, so that one bad
// batch does not hold back the others; a batch that still fails is
// retried later.
func (p *pipeline) commit(ctx context.Context, group []*batchResult) {
	bs := make([]store.Batch, len(group))
	for i, r := range group {
		bs[i] = store.Batch{ID: r.b.ID, Alerts: r.alerts, Rejects: r.rejects}
	}
	changed, err := p.store.CommitAll(ctx, bs)
	if err != nil {
		if ctx.Err() != nil {
			return // the batches stay in the spool for the next start
		}
		if len(group) > 1 {
			for _, r := range group {
				p.commit(ctx, []*batchResult{r})
			}
			return
		}
		p.retryLater(ctx, group[0].b, err)
		return
	}
	for i, r := range group {
		p.finish(r, changed[i])
	}
}

// finish publishes a committed batch and removes it from the spool.
func (p *pipeline) finish(r *batchResult, changed []alert.Alert) {
	b, st := r.b, &r.st
	p.hub.Publish(changed)
	p.metrics.latency.Observe(time.Since(b.Received).Seconds())
	p.metrics.records.Add(float64(st.Records))
	p.metrics.malformed.Add(float64(st.Malformed))
	p.metrics.batches.WithLabelValues("committed").Inc()
	if st.Malformed > 0 {
		p.log.Warn("malformed records in batch", "batch", b.ID, "intake", b.Intake, "records", st.Records, "malformed", st.Malformed, "first_errors", st.Errors)
	}
	p.log.Debug("batch processed", "batch", b.ID, "intake", b.Intake, "records", st.Records, "alerts", len(r.alerts), "changed", len(changed))
	if err := p.spool.Remove(b); err != nil {
		// Committed: a replay of the file finds the batch done.
		p.log.Error("spool", "batch", b.ID, "err", err)
	}
}

// alertSource adapts the store to web.AlertSource.
type alertSource struct {
	s     *store.Store
	spool *store.Spool
	rules web.RuleLister
}

func (a alertSource) ListAlerts(ctx context.Context, q web.AlertQuery) ([]alert.Alert, string, error) {
	return a.s.List(ctx, store.Query{
		Limit: q.Limit, Cursor: q.Cursor, Rule: q.Rule, Level: q.Level, Status: q.Status,
		Intake: q.Intake, From: q.From, To: q.To, Text: q.Text,
	})
}

func (a alertSource) GetAlert(ctx context.Context, id string) (alert.Alert, error) {
	return mapStoreErr(a.s.Get(ctx, id))
}

func (a alertSource) SetStatus(ctx context.Context, id, status, by string) (alert.Alert, error) {
	return mapStoreErr(a.s.SetStatus(ctx, id, status, by, time.Now()))
}

func mapStoreErr(al alert.Alert, err error) (alert.Alert, error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return alert.Alert{}, fmt.Errorf("%w: %v", web.ErrNotFound, err)
	case errors.Is(err, store.ErrBadStatus):
		return alert.Alert{}, fmt.Errorf("%w: %v", web.ErrBadRequest, err)
	}
	return al, err
}

// stats is the JSON of /api/v1/stats.
type stats struct {
	store.Stats
	Spool struct {
		Batches int   `json:"batches"`
		Bytes   int64 `json:"bytes"`
	} `json:"spool"`
}

func (a alertSource) Stats(ctx context.Context) (any, error) {
	st, err := a.s.Stats(ctx)
	if err != nil {
		return nil, err
	}
	if a.rules != nil {
		titles := map[string]string{}
		for _, r := range a.rules.Rules() {
			titles[r.ID] = r.Title
		}
		for i := range st.Rules {
			st.Rules[i].Title = titles[st.Rules[i].Rule]
		}
	}
	out := stats{Stats: st}
	out.Spool.Batches, out.Spool.Bytes = a.spool.Stats()
	return out, nil
}

func (a alertSource) Rejects(ctx context.Context, limit int) (any, error) {
	return a.s.Rejects(ctx, limit)
}

// spoolAdapter adapts the store's spool to web.Spool.
type spoolAdapter struct{ s *store.Spool }

func (a spoolAdapter) Begin(intake string) (web.SpoolWriter, error) {
	w, err := a.s.Begin(intake)
	if err != nil {
		return nil, busy(err)
	}
	return spoolWriter{w}, nil
}

type spoolWriter struct{ w *store.SpoolWriter }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	return n, busy(err)
}

func (w spoolWriter) Commit(id string, lines int) (bool, error) {
	dup, err := w.w.Commit(id, lines)
	return dup, busy(err)
}

func (w spoolWriter) Abort() { w.w.Abort() }

func (w spoolWriter) Decoded() io.Writer { return w.w.Decoded() }

// busy maps the spool's ErrSpoolFull to web.ErrBusy.
func busy(err error) error {
	if errors.Is(err, store.ErrSpoolFull) {
		return fmt.Errorf("%w: %v", web.ErrBusy, err)
	}
	return err
}

// storeCollector exports the store's counters on each scrape.
type storeCollector struct {
	s      *store.Store
	spool  *store.Spool
	alerts *prometheus.Desc
	events *prometheus.Desc
	stored *prometheus.Desc
	size   *prometheus.Desc
	depth  *prometheus.Desc
	bytes  *prometheus.Desc
}

func newStoreCollector(s *store.Store, sp *store.Spool) *storeCollector {
	return &storeCollector{
		s: s, spool: sp,
		alerts: prometheus.NewDesc("raywatch_rule_alerts_total", "Alerts created, by rule (grouped alerts count once).", []string{"rule"}, nil),
		events: prometheus.NewDesc("raywatch_rule_events_total", "Records counted into alerts, by rule.", []string{"rule"}, nil),
		stored: prometheus.NewDesc("raywatch_store_alerts", "Alerts in the store.", nil, nil),
		size:   prometheus.NewDesc("raywatch_store_bytes", "Size of the alert database file.", nil, nil),
		depth:  prometheus.NewDesc("raywatch_spool_batches", "Batches acknowledged and not yet processed.", nil, nil),
		bytes:  prometheus.NewDesc("raywatch_spool_bytes", "Bytes in the spool, batches being received included.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.alerts, c.events, c.stored, c.size, c.depth, c.bytes} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	n, b := c.spool.Stats()
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(b))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.s.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.stored, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.stored, prometheus.GaugeValue, float64(st.Alerts))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(st.Bytes))
	for _, r := range st.Rules {
		ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.CounterValue, float64(r.Alerts), r.Rule)
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(r.Events), r.Rule)
	}
}
