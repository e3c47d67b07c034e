// Package pipeline is raywatch's one ingest core. Every way records come
// in (the HTTP intake's spool, Kafka, `raywatch scan` of files) hands
// batches to [Pipeline.Run], which splits each body into records, applies
// the limits, keeps malformed records for inspection, detects on chunks of
// records with several workers, and gives the results back in the order
// of the records to a [Sink] (a store commit, a Kafka offset commit, JSON
// lines on stdout).
package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules/alert"
)

// ChunkRecords is how many records of a batch a worker takes at a time:
// the records of one batch are detected by all workers at once, so that a
// batch's latency does not wait on one core.
const ChunkRecords = 128

// MaxRejectLine is how much of a malformed record's text is kept.
const MaxRejectLine = 1024

// ErrCommentLine is the reason given for a record that starts with '#'.
var ErrCommentLine = errors.New("comment line (a record starting with #); raywatch reads Logpush NDJSON, one JSON object a line")

// ErrSkip, returned (or wrapped) by [Options.OnEvent], drops the record:
// it is neither matched nor malformed, only counted in [Chunk.Skipped]
// (replay's --from/--to drop the records outside the range this way).
var ErrSkip = errors.New("record skipped")

// Batch is a unit of records for [Pipeline.Run]: one Logpush body and
// where it came from. Its fields are set by the [Source] and read-only
// after.
type Batch struct {
	// ID names the batch in messages and rejects: the spool's batch id, a
	// Kafka message's topic/partition/offset, a file name.
	ID     string
	Intake string
	// Dataset overrides the detector's dataset when not empty.
	Dataset string
	// Received stands in for a missing event time, so that processing the
	// batch again computes the same alerts.
	Received time.Time
	// Open returns the body as it was received; Run closes it. It is
	// called once, when the batch's turn comes.
	Open func() (io.ReadCloser, error)
	// Gzip says the body is gzip'd even without gzip's magic bytes (a
	// Content-Encoding header said so).
	Gzip bool
	// Decoded says the body is decompressed already: it is not sniffed.
	Decoded bool
	// MaxBytes bounds the decompressed body; 0 means no bound. Past it,
	// the rest of the body is one malformed record.
	MaxBytes int64
	// Value is the source's own (the spooled batch, the Kafka record).
	Value any
}

// Source gives [Pipeline.Run] its batches.
type Source interface {
	// Next returns the next batch. io.EOF ends Run without an error; any
	// other error ends it with that error. Next is called from one
	// goroutine.
	Next(ctx context.Context) (*Batch, error)
}

// BadRecord is a malformed record: its number in the batch (from 1), the
// reason, and the start of its text (empty when it was not read, for
// example a record over the size limit).
type BadRecord struct {
	N    int
	Err  error
	Line string
}

// FieldIssue is a record that was read, normalized and detected, but
// without some of its fields: values of the wrong type or format (see
// [normalize.FieldError]).
type FieldIssue struct {
	// N is the record's number in the batch (from 1).
	N int
	// Dataset is the dataset the record was decoded as.
	Dataset string
	Errs    []normalize.FieldError
	// Line is the start of the record's text.
	Line string
}

// Chunk is what detection made of consecutive records of one batch.
type Chunk struct {
	Batch *Batch
	// Records counts the chunk's records, malformed ones included.
	// Logpush's validation uploads are skipped and not counted.
	Records int
	// Skipped counts the records that OnEvent dropped with [ErrSkip].
	Skipped int
	// Alerts are the alerts of the records, in record order.
	Alerts []alert.Alert
	// Bad are the malformed records, in record order.
	Bad []BadRecord
	// Fields are the records that lost fields (and were still detected),
	// in record order.
	Fields []FieldIssue
	// Out holds what [Options.Encode] wrote.
	Out bytes.Buffer
	// Err is set when the batch could not be opened at all (a missing
	// file, a damaged gzip header): the chunk is the batch's only one,
	// with no records.
	Err error
	// Last marks the batch's last chunk: the batch was read to its end.
	Last bool

	ready chan struct{}
	buf   []byte
	items []item
}

// item is one record of a chunk: its bytes in the chunk's buf, or the
// reason the reader refused it.
type item struct {
	n        int
	off, end int
	err      error
}

// Sink receives the chunks of [Pipeline.Run] in the order of the batches
// and of their records, from one goroutine. The chunk is reused once Sink
// returns: copy what is kept (the Alerts and Bad slices may be kept). An
// error stops Run, which returns it.
type Sink func(ctx context.Context, c *Chunk) error

// Options configures a [Pipeline].
type Options struct {
	Detector *Detector
	// Workers is the number of goroutines detecting at once; 0 means
	// GOMAXPROCS.
	Workers int
	// MaxLineBytes bounds one record; a longer one is malformed. 0 means
	// normalize.DefaultMaxLineBytes.
	MaxLineBytes int
	// MaxRecords bounds the records of one batch; the records past it are
	// malformed. 0 means no bound.
	MaxRecords int
	// Observe, if set, sees every record that is not malformed before
	// detection (field coverage). It is called from several goroutines.
	Observe func(intake string, raw []byte)
	// Encode, if set, runs on each chunk once detected, in a worker, to
	// fill Chunk.Out (scan's JSON lines: [EncodeAlerts]).
	Encode func(c *Chunk) error
	// OnEvent, if set, sees each record's event once normalized, in a
	// worker, before matching; it may write to Chunk.Out (the normalize
	// command's ECS documents). An error makes the record malformed;
	// [ErrSkip] drops it instead.
	OnEvent func(c *Chunk, ev *normalize.Event) error
}

// Pipeline runs batches through detection. It holds only its options:
// Run may be called concurrently.
type Pipeline struct {
	opts Options
}

// New returns a pipeline; opts.Detector is required.
func New(opts Options) *Pipeline {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = normalize.DefaultMaxLineBytes
	}
	return &Pipeline{opts: opts}
}

// Options returns the pipeline's options, defaults filled in.
func (p *Pipeline) Options() Options { return p.opts }

// Run reads the batches of src until it ends, detects on their records and
// hands the results to sink in order. It returns when src is exhausted and
// every chunk has been given to sink, or at the first error of src or
// sink, or when ctx ends (then with ctx's error; the batch being read then
// has no Last chunk).
func (p *Pipeline) Run(parent context.Context, src Source, sink Sink) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	workers := p.opts.Workers
	todo := make(chan *Chunk, workers)
	// The reader may run 8 chunks per worker ahead of the oldest chunk
	// not yet handed to sink, so that the workers keep detecting while
	// sink waits (for a commit's fsync, behind SpoolWorker): with 2 per
	// worker they idled.
	ordered := make(chan *Chunk, 8*workers)
	free := make(chan *Chunk, 9*workers+2)
	r := &reader{p: p, ordered: ordered, todo: todo, free: free}
	var srcErr error
	go func() {
		defer close(todo)
		defer close(ordered)
		srcErr = r.run(ctx, src)
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var ev normalize.Event
			for c := range todo {
				p.detect(&ev, c)
				close(c.ready)
			}
		})
	}
	var sinkErr error
	for c := range ordered {
		select {
		case <-c.ready:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if err := sink(ctx, c); err != nil {
			sinkErr = err
			cancel()
			break
		}
		c.reset()
		select {
		case free <- c:
		default:
		}
	}
	cancel()
	for range ordered { // let the reader finish
	}
	wg.Wait()
	switch {
	case sinkErr != nil:
		return sinkErr
	case srcErr != nil && !errors.Is(srcErr, context.Canceled):
		return srcErr
	}
	return parent.Err()
}

// rejectLine is the start of a record's text as kept for inspection:
// at most MaxRejectLine bytes, valid UTF-8.
func rejectLine(raw []byte) string {
	return strings.ToValidUTF8(string(raw[:min(len(raw), MaxRejectLine)]), "\uFFFD")
}

// reset empties c for reuse. The alerts and bad records go with the sink.
func (c *Chunk) reset() {
	c.Batch, c.Records, c.Skipped, c.Alerts, c.Bad, c.Fields, c.Err, c.Last = nil, 0, 0, nil, nil, nil, nil, false
	c.Out.Reset()
	c.buf, c.items = c.buf[:0], c.items[:0]
}

// detect runs the records of c through detection. A malformed record is
// kept for inspection; it never stops the batch.
func (p *Pipeline) detect(ev *normalize.Event, c *Chunk) {
	b := c.Batch
	for _, it := range c.items {
		if it.err != nil {
			c.Bad = append(c.Bad, BadRecord{N: it.n, Err: it.err})
			continue
		}
		raw := c.buf[it.off:it.end]
		if p.opts.Observe != nil {
			p.opts.Observe(b.Intake, raw)
		}
		as, err := p.opts.Detector.detect(ev, b.Dataset, raw, b.Intake, b.Received, func(ev *normalize.Event) error {
			if p.opts.OnEvent == nil {
				return nil
			}
			return p.opts.OnEvent(c, ev)
		})
		if errors.Is(err, ErrSkip) {
			c.Skipped++
			continue
		}
		if err != nil {
			c.Bad = append(c.Bad, BadRecord{N: it.n, Err: err, Line: rejectLine(raw)})
			continue
		}
		c.Alerts = append(c.Alerts, as...)
		fes := ev.FieldErrors()
		if len(fes) > 0 {
			c.Fields = append(c.Fields, FieldIssue{N: it.n, Dataset: ev.Dataset, Errs: fes, Line: rejectLine(raw)})
		}
		if len(as) == 0 && len(fes) == 0 && p.opts.OnEvent == nil {
			// Nothing of the record is kept: the next one may be
			// written over its strings, and detection does not allocate.
			ev.Reuse()
		}
	}
	if p.opts.Encode != nil && c.Err == nil {
		if err := p.opts.Encode(c); err != nil && len(c.items) > 0 {
			c.Bad = append(c.Bad, BadRecord{N: c.items[0].n, Err: fmt.Errorf("encode alerts: %w", err)})
		}
	}
}
