package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/raywatch/raywatch/normalize"
)

// Files is a [Source] of files: each file is one batch, read in the order
// given ("-" is stdin), gunzipped when it starts with gzip's magic bytes.
// A file that cannot be opened, or a folder, is a batch whose chunk has
// Err set; the files after it are still read.
type Files struct {
	Names []string
	Stdin io.Reader
	// Intake and Received are given to every batch: the alerts' intake,
	// and the time that stands in for a record without one.
	Intake   string
	Received time.Time
	next     int
}

// Next returns the next file's batch, io.EOF after the last.
func (f *Files) Next(context.Context) (*Batch, error) {
	if f.next >= len(f.Names) {
		return nil, io.EOF
	}
	name := f.Names[f.next]
	f.next++
	b := &Batch{ID: name, Intake: f.Intake, Received: f.Received}
	if name == "-" {
		b.ID = "stdin"
		b.Open = func() (io.ReadCloser, error) { return io.NopCloser(f.Stdin), nil }
		return b, nil
	}
	b.Open = func() (io.ReadCloser, error) {
		st, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			return nil, fmt.Errorf("%s is a directory; give the files in it (for example %s/*)", name, name)
		}
		return os.Open(name)
	}
	return b, nil
}

// ScanResult sums up a scan.
type ScanResult struct {
	// Files counts the inputs; Unreadable those that could not be read.
	Files, Unreadable int
	Records, Alerts   int
	Malformed         int
	// FieldRecords counts the records that lost fields (values of the
	// wrong type or format) and were still scanned, FieldErrors those
	// fields. They do not change the exit status.
	FieldRecords, FieldErrors int
	Elapsed                   time.Duration
}

// ScanReport receives what a scan meets, in the order of the input, from
// one goroutine; any of its functions may be nil.
type ScanReport struct {
	// Unreadable is called for an input that could not be opened.
	Unreadable func(name string, err error)
	// Malformed is called for a malformed record (where is "FILE: record
	// N"); n counts them from 1.
	Malformed func(n int, where string, err error)
	// FieldError is called for each field left out of a record that was
	// otherwise scanned (where is "FILE: record N"); n counts them from 1.
	FieldError func(n int, where string, fe normalize.FieldError)
	// Progress is called every ProgressEvery with the figures so far.
	Progress      func(res ScanResult)
	ProgressEvery time.Duration
}

// EncodeAlerts writes the chunk's alerts to its Out as JSON lines, the
// output of scan and replay; it is an [Options.Encode].
func EncodeAlerts(c *Chunk) error {
	enc := json.NewEncoder(&c.Out)
	enc.SetEscapeHTML(false)
	for i := range c.Alerts {
		if err := enc.Encode(&c.Alerts[i]); err != nil {
			return err
		}
	}
	return nil
}

// Scan runs the files through the pipeline with no store: what the
// workers write to each chunk's Out (by default the alerts as JSON lines)
// goes to out in the order of the records. It reports what it meets to
// rep. It returns when every file has been read,
// or out fails, or ctx ends.
func (p *Pipeline) Scan(ctx context.Context, src *Files, out io.Writer, rep ScanReport) (ScanResult, error) {
	start := time.Now()
	sp := *p
	if sp.opts.Encode == nil && sp.opts.OnEvent == nil {
		sp.opts.Encode = EncodeAlerts
	}
	res := ScanResult{Files: len(src.Names)}
	bw := bufio.NewWriterSize(out, 64<<10)
	lastReport := start
	err := sp.Run(ctx, src, func(ctx context.Context, c *Chunk) error {
		if c.Err != nil {
			res.Unreadable++
			if rep.Unreadable != nil {
				rep.Unreadable(c.Batch.ID, c.Err)
			}
			return nil
		}
		res.Records += c.Records
		res.Alerts += len(c.Alerts)
		for _, bad := range c.Bad {
			res.Malformed++
			if rep.Malformed != nil {
				rep.Malformed(res.Malformed, fmt.Sprintf("%s: record %d", c.Batch.ID, bad.N), bad.Err)
			}
		}
		res.addFields(c, rep.FieldError)
		if _, err := bw.Write(c.Out.Bytes()); err != nil {
			return fmt.Errorf("write alerts: %w", err)
		}
		if rep.Progress != nil && rep.ProgressEvery > 0 && time.Since(lastReport) >= rep.ProgressEvery {
			lastReport = time.Now()
			res.Elapsed = time.Since(start)
			rep.Progress(res)
		}
		return nil
	})
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write alerts: %w", ferr)
	}
	res.Elapsed = time.Since(start)
	return res, err
}

// addFields counts the field errors of c in, reporting each to report
// (which may be nil).
func (r *ScanResult) addFields(c *Chunk, report func(n int, where string, fe normalize.FieldError)) {
	for _, f := range c.Fields {
		r.FieldRecords++
		for _, fe := range f.Errs {
			r.FieldErrors++
			if report != nil {
				report(r.FieldErrors, fmt.Sprintf("%s: record %d", c.Batch.ID, f.N), fe)
			}
		}
	}
}

// ExitCode is the exit status of a scan, as `raywatch scan -h` documents
// it: 0 when every record was read, 1 when some were malformed or some
// input could not be read, 2 when nothing could be read (every record
// malformed, or no input readable).
func (r ScanResult) ExitCode() int {
	switch {
	case r.Unreadable == r.Files && r.Files > 0, r.Records > 0 && r.Malformed == r.Records:
		return 2
	case r.Malformed > 0 || r.Unreadable > 0:
		return 1
	}
	return 0
}
