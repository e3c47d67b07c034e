package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/raywatch/raywatch/engine/ioc"
	"io"
	"os"
	"slices"
	"time"

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

// eachRecord calls fn for each record of each file. Records that cannot be
// split out (overlong lines) are passed to bad. It stops at the first file
// that cannot be read.
func eachRecord(ctx context.Context, files []string, stdin io.Reader, bad func(where string, err error), fn func(where string, raw []byte)) error {
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
			OnError: func(n int, err error) { bad(fmt.Sprintf("%s: record %d", label, n), err) },
		}, func(n int, raw []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			fn(fmt.Sprintf("%s: record %d", label, n), raw)
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
	d := detector{norm: normalize.New(normalize.Options{}), eng: eng, dataset: cfg.Dataset}
	out := bufio.NewWriterSize(stdout, 64<<10)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	var st batchStats
	alerts := 0
	start := time.Now()
	lastReport := start
	now := time.Now()
	bad := func(where string, err error) {
		st.Malformed++
		if st.Malformed <= maxReportedErrors {
			fmt.Fprintf(stderr, "raywatch scan: %s: %v\n", where, err)
		}
	}
	var writeErr error
	var ev normalize.Event
	err = eachRecord(ctx, fs.Args(), stdin, bad, func(where string, raw []byte) {
		st.Records++
		as, err := d.detectRecord(&ev, "", raw, "scan", now)
		if err != nil {
			bad(where, err)
			return
		}
		for i := range as {
			alerts++
			if err := enc.Encode(&as[i]); err != nil && writeErr == nil {
				writeErr = err
			}
		}
		if st.Records%4096 == 0 && time.Since(lastReport) >= progressEvery {
			lastReport = time.Now()
			fmt.Fprintf(stderr, "raywatch scan: %d records, %d alerts, %.0f records/s\n",
				st.Records, alerts, float64(st.Records)/time.Since(start).Seconds())
		}
	})
	if ferr := out.Flush(); writeErr == nil {
		writeErr = ferr
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stderr, "raywatch scan: %d records in %d files, %d alerts, %d malformed, %.2fs\n",
		st.Records, fs.NArg(), alerts, st.Malformed, elapsed.Seconds())
	if st.Malformed > maxReportedErrors {
		fmt.Fprintf(stderr, "raywatch scan: (only the first %d malformed records were shown)\n", maxReportedErrors)
	}
	if err != nil {
		return err
	}
	if writeErr != nil {
		return fmt.Errorf("write alerts: %w", writeErr)
	}
	return nil
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
	bad := func(where string, err error) {
		failed++
		fmt.Fprintf(stderr, "raywatch normalize: %s: %v\n", where, err)
	}
	var writeErr error
	err := eachRecord(ctx, fs.Args(), stdin, bad, func(where string, raw []byte) {
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
