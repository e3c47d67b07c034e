// Package replay reads archived Cloudflare Logpush objects (a folder, a
// file, or s3://BUCKET/PREFIX on S3, R2, GCS's S3 interface or MinIO) for
// `raywatch replay`.
//
// It knows Logpush's layout for storage destinations: daily YYYYMMDD/
// folders of <start>_<end>_<id>.log.gz objects whose names carry their time
// range ([ParseName]). [Open] lists the sources and prunes, on the listing
// alone, the folders and objects outside the requested [Range]: they are
// never downloaded. [Plan.Run] then downloads several objects at once, each
// streamed to a temporary file (so memory stays bounded whatever the object
// sizes), and hands them to the caller one at a time in a fixed order, so
// that a replay's output is reproducible. A resume state file records each
// finished object; a replay run again with Options.Resume skips them.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raywatch/raywatch/normalize"
)

// DefaultWorkers is the number of objects fetched at once when
// Options.Workers is 0.
const DefaultWorkers = 4

// DefaultProgressEvery is how often Run reports progress when
// Options.ProgressEvery is 0.
const DefaultProgressEvery = 2 * time.Second

// fetchAttempts is how many times a download is tried.
const fetchAttempts = 3

// Options configure [Open]. The zero value reads everything, four objects
// at a time, without a resume state.
type Options struct {
	// Range selects objects by the time range in their names (objects
	// without one are always read). Records are not filtered by Run: the
	// caller applies [Range.Contains] to each record's own time.
	Range Range
	// Workers is how many objects are fetched at once, and so how many
	// temporary files of downloaded objects exist at most; 0 means
	// [DefaultWorkers].
	Workers int
	// S3Endpoint is the S3 API endpoint URL (R2, MinIO, GCS); "" uses the
	// AWS_ENDPOINT_URL the SDK reads, else AWS S3. A custom endpoint is
	// addressed path-style. Credentials come from the usual AWS
	// environment variables and shared configuration files.
	S3Endpoint string
	// S3Region is the signing region; "" uses AWS_REGION or the shared
	// configuration, else us-east-1 (which R2 takes for "auto").
	S3Region string
	// HTTPClient, if set, carries the S3 requests.
	HTTPClient *http.Client
	// TempDir holds downloaded objects until they are read; "" means
	// os.TempDir().
	TempDir string
	// StateFile, if set, records the objects finished (see [StatePath]);
	// StateKey identifies the arguments it belongs to (see [StateKey]).
	StateFile string
	StateKey  string
	// Resume skips the objects StateFile lists as finished. Without it a
	// replay starts the state over.
	Resume bool
	// Progress, if set, is called every ProgressEvery while Run runs and
	// once when it ends, from a goroutine of Run's; it must not block.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// OnObjectError, if set, is called from Run's goroutine for each object
	// that could not be read whole: a download that failed, a truncated or
	// corrupt .gz. Run goes on with the next object.
	OnObjectError func(obj Object, err error)
	// Logger receives a line per object error; default none.
	Logger *slog.Logger
}

// ObjectError is an object that could not be read whole.
type ObjectError struct {
	Object Object
	Err    error
	// Finished is true when the object was read up to the error (its first
	// records were processed) and recorded as finished: a resumed replay
	// does not read it again. A failed download is not finished.
	Finished bool
}

func (e *ObjectError) Error() string { return e.Object.Name + ": " + e.Err.Error() }

func (e *ObjectError) Unwrap() error { return e.Err }

// Plan is the list of objects a replay reads. Its methods other than
// [Plan.Run] are safe for concurrent use, also while Run runs.
type Plan struct {
	opts    Options
	objects []Object
	pruned  int
	resumed int
	state   *state
	total   int64

	ran     atomic.Bool
	start   time.Time
	done    atomic.Int64 // objects finished (including failed ones)
	bytes   atomic.Int64 // stored bytes read so far
	records atomic.Int64

	mu       sync.Mutex
	failures []*ObjectError
}

// Open lists the sources and returns the plan of the objects to read: every
// object of each source in name order (sources in argument order; an
// object listed by two sources is read once), except those ruled out by the
// range or, with Options.Resume, already finished. A source is a folder
// (walked recursively), a file, or s3://BUCKET/PREFIX. Hidden files and
// Logpush's ownership-challenge files are skipped.
//
// The caller must [Plan.Close] the plan once Run has returned (or if it
// does not call Run).
func Open(ctx context.Context, sources []string, opts Options) (*Plan, error) {
	if len(sources) == 0 {
		return nil, errors.New("no source to replay")
	}
	if err := opts.Range.Validate(); err != nil {
		return nil, err
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = DefaultProgressEvery
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Plan{opts: opts}
	var client s3API
	seen := map[string]bool{}
	for _, arg := range sources {
		src, err := p.source(ctx, arg, &client)
		if err != nil {
			return nil, err
		}
		var objs []Object
		if err := src.list(ctx, opts.Range, func(o Object) { objs = append(objs, o) }, &p.pruned); err != nil {
			return nil, fmt.Errorf("list %s: %w", arg, err)
		}
		sort.SliceStable(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })
		for _, o := range objs {
			if !seen[o.Name] {
				seen[o.Name] = true
				p.objects = append(p.objects, o)
			}
		}
	}
	if opts.StateFile != "" {
		st, err := openState(opts.StateFile, opts.StateKey, opts.Resume)
		if err != nil {
			return nil, err
		}
		p.state = st
		kept := p.objects[:0]
		for _, o := range p.objects {
			if st.done[o.Name] {
				p.resumed++
				continue
			}
			kept = append(kept, o)
		}
		p.objects = kept
	}
	for _, o := range p.objects {
		p.total += o.Size
	}
	return p, nil
}

// source returns the source of one argument, making the S3 client on first
// use.
func (p *Plan) source(ctx context.Context, arg string, client *s3API) (source, error) {
	if strings.HasPrefix(arg, "s3://") {
		bucket, prefix, err := parseS3(arg)
		if err != nil {
			return nil, err
		}
		if *client == nil {
			c, err := newS3Client(ctx, p.opts)
			if err != nil {
				return nil, err
			}
			*client = c
		}
		return &s3Source{client: *client, bucket: bucket, prefix: prefix}, nil
	}
	fi, err := os.Stat(arg)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", arg, err)
	}
	return &localSource{root: arg, dir: fi.IsDir()}, nil
}

// Objects returns the objects Run reads, in order.
func (p *Plan) Objects() []Object { return append([]Object(nil), p.objects...) }

// Pruned returns how many objects and daily folders the range ruled out
// on the listing.
func (p *Plan) Pruned() int { return p.pruned }

// Resumed returns how many objects were skipped as finished by an earlier
// run.
func (p *Plan) Resumed() int { return p.resumed }

// Failures returns the objects that could not be read whole so far.
func (p *Plan) Failures() []*ObjectError {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*ObjectError(nil), p.failures...)
}

// AddRecords adds n to the records counted in [Progress]; the caller's fn
// calls it as it reads records. It is safe for concurrent use.
func (p *Plan) AddRecords(n int) { p.records.Add(int64(n)) }

// Close closes the resume state. It must not be called while Run runs; it
// is safe to call more than once.
func (p *Plan) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.state.close()
	p.state = nil
	return err
}

// Run reads the objects in order. Up to Options.Workers objects are
// fetched ahead of the one being read (downloads go to temporary files,
// removed once read); fn is called for one object at a time, from Run's
// goroutine, with the object's bytes, gunzipped when they are gzip'd.
//
// When fn returns, the object counts as finished and is recorded in the
// resume state, so fn must have put out everything the object produced
// (written the alerts, committed them to a store) before it returns.
//
// An object that cannot be read whole (its download fails; it is truncated
// or corrupt gzip) does not stop Run: the error is reported to
// Options.OnObjectError and kept in [Plan.Failures], and Run goes on. The
// records fn read before the error stay processed, and such an object is
// recorded as finished; an object whose download failed is not. fn may
// return the read error it got or swallow it: Run tells read errors apart
// from fn's own. Any other error fn returns stops Run, which returns it;
// so does the end of ctx. Run may be called once.
func (p *Plan) Run(ctx context.Context, fn func(obj Object, r io.Reader) error) error {
	if p.ran.Swap(true) {
		return errors.New("replay plan already run")
	}
	p.start = time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	stopProgress := p.reportProgress(&wg)
	results := make([]chan fetched, len(p.objects))
	for i := range results {
		results[i] = make(chan fetched, 1)
	}
	window := make(chan struct{}, p.opts.Workers)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, obj := range p.objects {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] <- p.fetch(ctx, obj)
			}()
		}
	}()

	var runErr error
	for i, obj := range p.objects {
		var f fetched
		select {
		case f = <-results[i]:
		case <-ctx.Done():
			runErr = ctx.Err()
		}
		if runErr != nil {
			break
		}
		runErr = p.consume(ctx, obj, f, fn)
		f.cleanup()
		<-window
		if runErr != nil {
			break
		}
	}
	cancel()
	stopProgress()
	wg.Wait()
	for _, ch := range results {
		select {
		case f := <-ch:
			f.cleanup()
		default:
		}
	}
	if p.opts.Progress != nil {
		p.opts.Progress(p.Progress())
	}
	return runErr
}

// reportProgress starts the progress reporter, if any; the returned
// function stops it.
func (p *Plan) reportProgress(wg *sync.WaitGroup) func() {
	if p.opts.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.opts.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.opts.Progress(p.Progress())
			case <-stop:
				return
			}
		}
	}()
	return func() { close(stop) }
}

// fetched is an object made ready to read: a local path, or a downloaded
// temporary file.
type fetched struct {
	path string
	temp bool
	err  error
}

func (f fetched) cleanup() {
	if f.temp && f.path != "" {
		os.Remove(f.path)
	}
}

// fetch makes obj ready to read: nothing to do for a file; an S3 object is
// downloaded to a temporary file, with retries.
func (p *Plan) fetch(ctx context.Context, obj Object) fetched {
	if !obj.src.remote() {
		return fetched{path: obj.key}
	}
	var err error
	for attempt := range fetchAttempts {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * time.Second):
			case <-ctx.Done():
				return fetched{err: ctx.Err()}
			}
		}
		var path string
		if path, err = p.download(ctx, obj); err == nil {
			return fetched{path: path, temp: true}
		}
		if ctx.Err() != nil {
			return fetched{err: ctx.Err()}
		}
	}
	return fetched{err: fmt.Errorf("download: %w", err)}
}

// download copies obj to a new temporary file and returns its path.
func (p *Plan) download(ctx context.Context, obj Object) (string, error) {
	body, err := obj.src.open(ctx, obj)
	if err != nil {
		return "", err
	}
	defer body.Close()
	f, err := os.CreateTemp(p.opts.TempDir, "raywatch-replay-*.part")
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", err)
	}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && obj.Size > 0 && n != obj.Size {
		err = fmt.Errorf("got %d bytes of %d", n, obj.Size)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// consume hands one fetched object to fn. It returns an error only when
// Run must stop.
func (p *Plan) consume(ctx context.Context, obj Object, f fetched, fn func(Object, io.Reader) error) error {
	if f.err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.fail(obj, f.err, false)
		return nil
	}
	file, err := os.Open(f.path)
	if err != nil {
		p.fail(obj, err, false)
		return nil
	}
	defer file.Close()
	body, err := normalize.OpenBody(&countingReader{r: file, n: &p.bytes}, false)
	if err != nil {
		return p.fail(obj, err, true)
	}
	defer body.Close()
	er := &errReader{r: body}
	err = fn(obj, er)
	if er.err != nil && (err == nil || errors.Is(err, er.err)) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return p.fail(obj, er.err, true)
	}
	if err != nil {
		return err
	}
	p.done.Add(1)
	if p.state != nil {
		return p.state.finish(obj, nil)
	}
	return nil
}

// fail records an object error; a finished object is also recorded in the
// resume state, whose write error (if any) it returns.
func (p *Plan) fail(obj Object, err error, finished bool) error {
	oe := &ObjectError{Object: obj, Err: err, Finished: finished}
	p.mu.Lock()
	p.failures = append(p.failures, oe)
	p.mu.Unlock()
	p.done.Add(1)
	p.opts.Logger.Warn("replay object not read whole", "object", obj.Name, "err", err)
	if p.opts.OnObjectError != nil {
		p.opts.OnObjectError(obj, err)
	}
	if finished && p.state != nil {
		return p.state.finish(obj, err)
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// errReader remembers the first read error other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
