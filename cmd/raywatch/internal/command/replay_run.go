package command

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/replay"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/store"
)

// replayStoreLockTimeout is how long replay --data-dir waits for the
// store's lock (raywatch serve holds it while it runs).
const replayStoreLockTimeout = 100 * time.Millisecond

// replayer runs the objects of a replay plan through the pipeline, one
// object at a time, in the plan's order: [replay.Plan.Run] hands each
// object to feed, which gives it to the pipeline as one batch and returns
// once the batch's last chunk has been put out (written, committed or
// counted), so that the object is recorded as finished only then.
type replayer struct {
	f      *replayFlags
	plan   *replay.Plan
	rng    replay.Range
	key    string
	stderr io.Writer
	start  time.Time

	out   *bufio.Writer // stdout mode
	st    *store.Store  // --data-dir
	stats *replay.Stats // --stats

	batches chan *pipeline.Batch
	// current is the object feed handed to the pipeline last, and
	// unreadable counts the objects it never saw: both belong to Plan.Run's
	// goroutine.
	current    string
	unreadable int

	// Counted by the sink, from the pipeline's one sink goroutine; read
	// once the pipeline has stopped.
	res     pipeline.ScanResult
	skipped int
	stored  int
}

// replayBatch is a batch's Value: where its object's outcome goes.
type replayBatch struct {
	obj   replay.Object
	tally pipeline.Tally
	done  chan error
}

// runReplay opens the plan, runs it and prints the summary.
func runReplay(ctx context.Context, f *replayFlags, sources []string, rng replay.Range, eng *engine.Engine, stdout, stderr io.Writer) error {
	key, stateFile, err := replayState(f, sources, rng)
	if err != nil {
		return err
	}
	r := &replayer{f: f, rng: rng, key: key, stderr: stderr, batches: make(chan *pipeline.Batch)}
	switch f.mode() {
	case "stats":
		r.stats = replay.NewStats(0)
	case "data-dir":
		if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
			return fmt.Errorf("create data folder: %w", err)
		}
		r.st, err = store.Open(filepath.Join(f.dataDir, "alerts.db"), store.Options{Timeout: replayStoreLockTimeout, GroupWindow: f.cfg.GroupWindow})
		if err != nil {
			return err
		}
		defer r.st.Close()
	default:
		r.out = bufio.NewWriterSize(stdout, 64<<10)
	}
	r.plan, err = replay.Open(ctx, sources, replay.Options{
		Range: rng, Workers: f.downloads, S3Endpoint: f.endpoint, TempDir: f.tempDir,
		StateFile: stateFile, StateKey: key, Resume: f.resume,
		Progress:      func(p replay.Progress) { fmt.Fprintf(stderr, "raywatch %s\n", p) },
		OnObjectError: r.objectError,
	})
	if err != nil {
		return err
	}
	defer r.plan.Close()
	fmt.Fprintf(stderr, "raywatch replay: %d objects to read, %d left out by their names' time, %d finished by an earlier run\n",
		len(r.plan.Objects()), r.plan.Pruned(), r.plan.Resumed())
	runErr := r.run(ctx, eng)
	if err := r.plan.Close(); runErr == nil && err != nil {
		runErr = fmt.Errorf("close replay state: %w", err)
	}
	return r.finish(ctx, runErr, stdout)
}

// run runs the pipeline beside Plan.Run and returns the first error of
// either.
func (r *replayer) run(ctx context.Context, eng *engine.Engine) error {
	opts := pipeline.Options{
		Detector: &pipeline.Detector{Normalizer: normalize.New(normalize.Options{}), Engine: eng, Dataset: r.f.cfg.Dataset},
		Workers:  r.f.cfg.Workers,
		OnEvent: func(_ *pipeline.Chunk, ev *normalize.Event) error {
			if !r.rng.Contains(ev.Time) {
				return pipeline.ErrSkip
			}
			return nil
		},
	}
	if r.out != nil {
		opts.Encode = pipeline.EncodeAlerts
	}
	p := pipeline.New(opts)
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	pipeDone := make(chan struct{})
	var pipeErr error
	r.start = time.Now()
	go func() {
		defer close(pipeDone)
		pipeErr = p.Run(pctx, r, r.sink)
	}()
	planErr := r.plan.Run(ctx, func(obj replay.Object, body io.Reader) error { return r.feed(obj, body, pipeDone, &pipeErr) })
	close(r.batches)
	<-pipeDone
	r.res.Elapsed = time.Since(r.start)
	if planErr != nil {
		return planErr
	}
	return pipeErr
}

// Next implements pipeline.Source: the objects feed hands over.
func (r *replayer) Next(ctx context.Context) (*pipeline.Batch, error) {
	select {
	case b, ok := <-r.batches:
		if !ok {
			return nil, io.EOF
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// feed gives one object to the pipeline and waits until its last chunk is
// put out. It runs in Plan.Run's goroutine.
func (r *replayer) feed(obj replay.Object, body io.Reader, pipeDone <-chan struct{}, pipeErr *error) error {
	r.current = obj.Name
	received := obj.Start
	if received.IsZero() {
		received = r.start
	}
	rb := &replayBatch{obj: obj, done: make(chan error, 1)}
	b := &pipeline.Batch{
		ID: obj.Name, Intake: r.f.intake, Received: received, Decoded: true, Value: rb,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(body), nil },
	}
	select {
	case r.batches <- b:
	case <-pipeDone:
		return pipelineStopped(*pipeErr)
	}
	select {
	case err := <-rb.done:
		return err
	case <-pipeDone:
		return pipelineStopped(*pipeErr)
	}
}

func pipelineStopped(err error) error {
	if err == nil {
		err = errors.New("pipeline stopped")
	}
	return err
}

// sink puts out each chunk: alerts to stdout, into the tally of its object
// (--data-dir) or into the stats; when the object's last chunk is out, its
// outcome goes back to feed.
func (r *replayer) sink(ctx context.Context, c *pipeline.Chunk) error {
	rb := c.Batch.Value.(*replayBatch)
	if c.Err != nil { // the body is given as is: only a bug gets here
		r.res.Unreadable++
		rb.done <- fmt.Errorf("%s: %w", rb.obj.Name, c.Err)
		return nil
	}
	r.res.Records += c.Records
	r.skipped += c.Skipped
	r.res.Alerts += len(c.Alerts)
	r.plan.AddRecords(c.Records)
	for _, bad := range c.Bad {
		r.res.Malformed++
		if r.res.Malformed <= pipeline.MaxReportedErrors {
			fmt.Fprintf(r.stderr, "raywatch replay: %s: record %d: %v\n", rb.obj.Name, bad.N, bad.Err)
		}
	}
	switch {
	case r.out != nil:
		if _, err := r.out.Write(c.Out.Bytes()); err != nil {
			return fmt.Errorf("write alerts: %w", err)
		}
	case r.st != nil:
		rb.tally.Add(c)
	case r.stats != nil:
		for _, a := range c.Alerts {
			if a.Rule.ID == r.f.rule {
				r.stats.Add(a)
			}
		}
	}
	if !c.Last {
		return nil
	}
	err := r.objectDone(ctx, rb)
	rb.done <- err
	return err
}

// objectDone puts out what an object produced before it is recorded as
// finished: the alerts flushed to stdout, or committed to the store.
func (r *replayer) objectDone(ctx context.Context, rb *replayBatch) error {
	if r.out != nil {
		if err := r.out.Flush(); err != nil {
			return fmt.Errorf("write alerts: %w", err)
		}
	}
	if r.st == nil {
		return nil
	}
	for i := range rb.tally.Alerts {
		rb.tally.Alerts[i].Replayed = true
	}
	// The batch id makes the commit idempotent for these arguments.
	changed, err := r.st.Commit(ctx, store.Batch{ID: "replay/" + r.key + "/" + rb.obj.Name, Alerts: rb.tally.Alerts, Rejects: rb.tally.Rejects})
	if err != nil {
		return err
	}
	r.stored += len(changed)
	return nil
}

// objectError reports an object that could not be read whole. One the
// pipeline never saw counts as unreadable; one cut short was read up to
// the error, which the pipeline counted as a malformed record.
func (r *replayer) objectError(obj replay.Object, err error) {
	if obj.Name != r.current {
		r.unreadable++
		fmt.Fprintf(r.stderr, "raywatch replay: %s: %v\n", obj.Name, err)
		return
	}
	fmt.Fprintf(r.stderr, "raywatch replay: %s: read up to an error: %v\n", obj.Name, err)
}

// finish prints the summary (and the stats) and returns the command's
// outcome.
func (r *replayer) finish(ctx context.Context, runErr error, stdout io.Writer) error {
	res := r.res
	res.Files = len(r.plan.Objects())
	res.Unreadable += r.unreadable
	fmt.Fprintf(r.stderr, "raywatch replay: %d records in %d objects, %d outside the time range, %d alerts, %d malformed, %d objects not read whole, %.2fs\n",
		res.Records, res.Files, r.skipped, res.Alerts, res.Malformed, len(r.plan.Failures()), res.Elapsed.Seconds())
	if res.Malformed > pipeline.MaxReportedErrors {
		fmt.Fprintf(r.stderr, "raywatch replay: (only the first %d malformed records were shown)\n", pipeline.MaxReportedErrors)
	}
	if r.st != nil {
		fmt.Fprintf(r.stderr, "raywatch replay: %d alerts created or grown in %s\n", r.stored, r.f.dataDir)
	}
	if runErr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after %d of %d objects: run the same command with --resume to continue", r.plan.Progress().Objects, res.Files)
		}
		return runErr
	}
	if r.stats != nil {
		if err := r.writeStats(stdout); err != nil {
			return err
		}
	}
	if code := res.ExitCode(); code != 0 {
		return exitError(code)
	}
	return nil
}

func (r *replayer) writeStats(w io.Writer) error {
	if r.f.asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r.stats.Report())
	}
	return r.stats.WriteTable(w)
}
