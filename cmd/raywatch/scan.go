package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
)

// progressEvery is how often a long scan reports progress on stderr.
const progressEvery = 2 * time.Second

func validDataset(name string) error {
	if name == "auto" || name == "" || slices.Contains(normalize.Datasets, name) {
		return nil
	}
	return fmt.Errorf("--dataset %q: want auto or one of %v", name, normalize.Datasets)
}

// openInput opens a file argument ("-" is stdin), gunzipping it when it
// starts with gzip's magic bytes, whatever its name.
func openInput(name string, stdin io.Reader) (io.Reader, func() error, error) {
	var r io.Reader
	closeFn := func() error { return nil }
	if name == "-" {
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		r, closeFn = f, f.Close
	}
	br := bufio.NewReaderSize(r, 256<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			closeFn()
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() error { zr.Close(); return closeFn() }, nil
	}
	return br, closeFn, nil
}

// recordRef names a record for messages: its file's label and its number
// there. Formatting waits until a message needs it.
type recordRef struct {
	label string
	n     int
}

func (r recordRef) String() string { return fmt.Sprintf("%s: record %d", r.label, r.n) }

// eachRecord calls fn for each record of each file. Records that cannot be
// split out (overlong lines) are passed to bad. It stops at the first file
// that cannot be read.
func eachRecord(ctx context.Context, files []string, stdin io.Reader, bad func(where recordRef, err error), fn func(where recordRef, raw []byte)) error {
	for _, name := range files {
		r, closeFn, err := openInput(name, stdin)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		label := name
		if name == "-" {
			label = "stdin"
		}
		err = normalize.Split(r, normalize.SplitOptions{
			OnError: func(n int, err error) { bad(recordRef{label, n}, err) },
		}, func(n int, raw []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			fn(recordRef{label, n}, raw)
			return nil
		})
		closeFn()
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
	}
	return nil
}

func scanCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg Config
	fs := flag.NewFlagSet("raywatch scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.commonFlags(fs)
	fs.IntVar(&cfg.Workers, "workers", int(envInt("RAYWATCH_WORKERS", int64(runtime.GOMAXPROCS(0)))), "goroutines detecting records at once; alerts keep the records' order (RAYWATCH_WORKERS)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: raywatch scan [flags] FILE...   (NDJSON, .gz, or - for stdin)")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	if err := validDataset(cfg.Dataset); err != nil {
		return err
	}
	if cfg.IOCDir != "" {
		set, status, err := ioc.LoadDir(cfg.IOCDir, time.Now())
		if err != nil {
			return err
		}
		for _, st := range status {
			if st.LastError != "" {
				fmt.Fprintf(stderr, "raywatch scan: IOC file %s\n", st.LastError)
			}
			for _, le := range st.LineErrors {
				fmt.Fprintf(stderr, "raywatch scan: IOC line skipped: %v\n", le)
			}
		}
		fmt.Fprintf(stderr, "raywatch scan: %d indicators from %d files in %s\n", set.Len(), len(status), cfg.IOCDir)
		cfg.iocSet = func() *ioc.Set { return set }
	}
	eng, problems, err := newEngine(cfg)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "raywatch scan: rule skipped: %v\n", p)
	}
	sc := scanner{
		d:       detector{norm: normalize.New(normalize.Options{}), eng: eng, dataset: cfg.Dataset},
		workers: cfg.Workers,
		now:     time.Now(),
		stderr:  stderr,
	}
	res, err := sc.run(ctx, fs.Args(), stdin, stdout)
	fmt.Fprintf(stderr, "raywatch scan: %d records in %d files, %d alerts, %d malformed, %.2fs\n",
		res.Records, fs.NArg(), res.Alerts, res.Malformed, res.Elapsed.Seconds())
	if res.Malformed > maxReportedErrors {
		fmt.Fprintf(stderr, "raywatch scan: (only the first %d malformed records were shown)\n", maxReportedErrors)
	}
	return err
}

// scanner runs files through detection with several workers and writes
// the alerts, in the order of the records, as JSON lines.
type scanner struct {
	d       detector
	workers int // 0 means GOMAXPROCS
	now     time.Time
	stderr  io.Writer // progress and malformed records; nil for none
}

// scanResult sums up a scan.
type scanResult struct {
	Records, Alerts, Malformed int
	Elapsed                    time.Duration
}

// scanChunkRecords is how many records a worker takes at a time.
const scanChunkRecords = 256

// scanChunk is a run of consecutive records, copied out of the reader's
// buffer, and what detection made of them.
type scanChunk struct {
	seq   int
	buf   []byte       // the records' bytes
	items []scanItem   // in order
	out   bytes.Buffer // the alerts, as JSON lines
	ready chan struct{}
}

type scanItem struct {
	where    recordRef
	off, end int   // the record in buf
	err      error // set by the splitter (too long) or by detection
	alerts   int
}

// run scans the files (stdin for "-") and writes the alerts to out.
// Malformed records are reported on stderr (the first maxReportedErrors of
// them), with progress every few seconds.
func (sc *scanner) run(ctx context.Context, files []string, stdin io.Reader, out io.Writer) (scanResult, error) {
	workers := sc.workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The reader fills chunks and hands each both to a worker and, in
	// order, to the writer; the writer waits for each to be ready.
	todo := make(chan *scanChunk, workers)
	ordered := make(chan *scanChunk, 2*workers)
	// Chunks go back to the reader once written: at most 3*workers+2 exist.
	free := make(chan *scanChunk, 3*workers+2)
	newChunk := func() *scanChunk {
		select {
		case c := <-free:
			c.buf, c.items = c.buf[:0], c.items[:0]
			c.out.Reset()
			return c
		default:
			return &scanChunk{buf: make([]byte, 0, 512<<10), items: make([]scanItem, 0, scanChunkRecords)}
		}
	}
	var readErr error
	go func() {
		defer close(todo)
		defer close(ordered)
		seq := 0
		c := newChunk()
		send := func() bool {
			c.seq, c.ready = seq, make(chan struct{})
			seq++
			select {
			case ordered <- c:
			case <-ctx.Done():
				return false
			}
			select {
			case todo <- c:
			case <-ctx.Done():
				return false
			}
			c = newChunk()
			return true
		}
		readErr = eachRecord(ctx, files, stdin, func(where recordRef, err error) {
			c.items = append(c.items, scanItem{where: where, err: err})
		}, func(where recordRef, raw []byte) {
			off := len(c.buf)
			c.buf = append(c.buf, raw...)
			c.items = append(c.items, scanItem{where: where, off: off, end: len(c.buf)})
			if len(c.items) >= scanChunkRecords {
				send()
			}
		})
		if len(c.items) > 0 {
			send()
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var ev normalize.Event
			for c := range todo {
				sc.detectChunk(&ev, c)
				close(c.ready)
			}
		})
	}

	var res scanResult
	bw := bufio.NewWriterSize(out, 64<<10)
	var writeErr error
	lastReport := start
	for c := range ordered {
		select {
		case <-c.ready:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		for _, it := range c.items {
			res.Records++
			res.Alerts += it.alerts
			if it.err != nil {
				res.Malformed++
				if res.Malformed <= maxReportedErrors && sc.stderr != nil {
					fmt.Fprintf(sc.stderr, "raywatch scan: %v: %v\n", it.where, it.err)
				}
			}
		}
		if _, err := bw.Write(c.out.Bytes()); err != nil && writeErr == nil {
			writeErr = err
			cancel()
		}
		select {
		case free <- c:
		default:
		}
		if sc.stderr != nil && time.Since(lastReport) >= progressEvery {
			lastReport = time.Now()
			fmt.Fprintf(sc.stderr, "raywatch scan: %d records, %d alerts, %.0f records/s\n",
				res.Records, res.Alerts, float64(res.Records)/time.Since(start).Seconds())
		}
	}
	cancel()
	for range ordered { // let the reader finish
	}
	wg.Wait()
	if err := bw.Flush(); writeErr == nil {
		writeErr = err
	}
	res.Elapsed = time.Since(start)
	switch {
	case readErr != nil && !errors.Is(readErr, context.Canceled):
		return res, readErr
	case writeErr != nil:
		return res, fmt.Errorf("write alerts: %w", writeErr)
	case readErr != nil:
		return res, readErr
	}
	return res, nil
}

// detectChunk runs the records of c through detection.
func (sc *scanner) detectChunk(ev *normalize.Event, c *scanChunk) {
	enc := json.NewEncoder(&c.out)
	enc.SetEscapeHTML(false)
	for i := range c.items {
		it := &c.items[i]
		if it.err != nil {
			continue
		}
		as, err := sc.d.detectRecord(ev, "", c.buf[it.off:it.end], "scan", sc.now)
		if err != nil {
			it.err = err
			continue
		}
		it.alerts = len(as)
		for j := range as {
			if err := enc.Encode(&as[j]); err != nil {
				it.err = fmt.Errorf("encode alert: %w", err)
			}
		}
	}
}

func normalizeCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("raywatch normalize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataset := fs.String("dataset", envOr("RAYWATCH_DATASET", "auto"), "Logpush dataset id, or auto to recognise it (RAYWATCH_DATASET)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: raywatch normalize [--dataset NAME] FILE...   (NDJSON, .gz, or - for stdin)")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	if err := validDataset(*dataset); err != nil {
		return err
	}
	norm := normalize.New(normalize.Options{})
	out := bufio.NewWriterSize(stdout, 64<<10)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	failed := 0
	bad := func(where recordRef, err error) {
		failed++
		fmt.Fprintf(stderr, "raywatch normalize: %s: %v\n", where, err)
	}
	var writeErr error
	err := eachRecord(ctx, fs.Args(), stdin, bad, func(where recordRef, raw []byte) {
		ev, err := norm.Normalize(*dataset, raw)
		if err != nil {
			bad(where, err)
			return
		}
		if err := enc.Encode(ev.Doc()); err != nil && writeErr == nil {
			writeErr = err
		}
	})
	if ferr := out.Flush(); writeErr == nil {
		writeErr = ferr
	}
	if err != nil {
		return err
	}
	if writeErr != nil {
		return fmt.Errorf("write: %w", writeErr)
	}
	if failed > 0 {
		return errReported
	}
	return nil
}
