package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
)

const scanUsage = `Usage: raywatch scan [flags] FILE...

Runs Logpush records (NDJSON or a JSON array; gzip'd or not, whatever the
name; - for stdin) through the same pipeline as the intake, without a
store: alerts as JSON lines on stdout, in the order of the records;
malformed records, unreadable files, progress and a summary on stderr.

Exit status:
  0  every record was read
  1  some records were malformed, or some file could not be read
  2  nothing could be read: every record was malformed (not Cloudflare
     Logpush JSON, a binary file) or no file could be read

Flags:
`

// progressEvery is how often a long scan reports progress on stderr.
const progressEvery = 2 * time.Second

// scanCmd scans files and exits with the status scanUsage documents.
func scanCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg app.Config
	fs := flag.NewFlagSet("raywatch scan", flag.ContinueOnError)
	cfg.CommonFlags(fs, getenv)
	fs.IntVar(&cfg.Workers, "workers", int(getenv.Int("RAYWATCH_WORKERS", int64(runtime.GOMAXPROCS(0)))), "goroutines detecting records at once; alerts keep the records' order (RAYWATCH_WORKERS)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), scanUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "raywatch scan: no FILE given (- reads stdin)\nrun 'raywatch scan -h' for its flags")
		return errUsage
	}
	if err := pipeline.ValidDataset(cfg.Dataset); err != nil {
		return err
	}
	var iocSet func() *ioc.Set
	if cfg.IOCDir != "" {
		set, err := loadIOCs(cfg.IOCDir, stderr)
		if err != nil {
			return err
		}
		iocSet = func() *ioc.Set { return set }
	}
	eng, loaded, err := app.LoadEngine(cfg, iocSet)
	if err != nil {
		return err
	}
	for _, p := range loaded.Problems {
		fmt.Fprintf(stderr, "raywatch scan: rule skipped: %v\n", p)
	}
	for _, s := range loaded.Skipped {
		fmt.Fprintf(stderr, "raywatch scan: rule skipped: %s: %q (%s)\n", fileLine(s.File, s.Line), s.Title, s.Reason)
	}
	for _, r := range app.Unable(eng) {
		fmt.Fprintf(stderr, "raywatch scan: rule unable to fire, not evaluated: %s: %q: %s\n", fileLine(r.Health.File, r.Health.Line), r.Title, r.Health.Reason)
	}
	p := pipeline.New(pipeline.Options{
		Detector: &pipeline.Detector{Normalizer: normalize.New(normalize.Options{}), Engine: eng, Dataset: cfg.Dataset},
		Workers:  cfg.Workers,
	})
	src := &pipeline.Files{Names: fs.Args(), Stdin: stdin, Intake: "scan", Received: time.Now()}
	rep := scanReport("raywatch scan", stderr, pipeline.MaxReportedErrors)
	byField := map[string]int{}
	report := rep.FieldError
	rep.FieldError = func(n int, where string, fe normalize.FieldError) {
		byField[pipeline.TopField(fe.Field)]++
		report(n, where, fe)
	}
	res, err := p.Scan(ctx, src, stdout, rep)
	fmt.Fprintf(stderr, "raywatch scan: %d records in %d files, %d alerts, %d malformed, %.2fs\n",
		res.Records, res.Files, res.Alerts, res.Malformed, res.Elapsed.Seconds())
	if res.Malformed > pipeline.MaxReportedErrors {
		fmt.Fprintf(stderr, "raywatch scan: (only the first %d malformed records were shown)\n", pipeline.MaxReportedErrors)
	}
	fieldSummary("raywatch scan", res.FieldRecords, byField, stderr)
	if err != nil {
		return err
	}
	if code := res.ExitCode(); code != 0 {
		return exitError(code)
	}
	return nil
}

// scanReport prints what a scan meets on stderr: unreadable files as they
// come, the first max malformed records (all when max is 0), progress.
func scanReport(name string, stderr io.Writer, max int) pipeline.ScanReport {
	return pipeline.ScanReport{
		Unreadable: func(file string, err error) { fmt.Fprintf(stderr, "%s: %s: %v\n", name, file, err) },
		Malformed: func(n int, where string, err error) {
			if max == 0 || n <= max {
				fmt.Fprintf(stderr, "%s: %s: %v\n", name, where, err)
			}
		},
		FieldError: func(n int, where string, fe normalize.FieldError) {
			if max == 0 || n <= max {
				fmt.Fprintf(stderr, "%s: %s: field %q left out (%s); the rest of the record was read\n", name, where, fe.Field, fe.Reason)
			}
		},
		Progress: func(r pipeline.ScanResult) {
			fmt.Fprintf(stderr, "%s: %d records, %d alerts, %.0f records/s\n", name, r.Records, r.Alerts, float64(r.Records)/r.Elapsed.Seconds())
		},
		ProgressEvery: progressEvery,
	}
}

// fieldSummary says, after the scan's summary, which fields were left
// out of records that were otherwise scanned (records of them, counted
// by field), most frequent first.
func fieldSummary(name string, records int, byField map[string]int, stderr io.Writer) {
	if records == 0 {
		return
	}
	fields := make([]string, 0, len(byField))
	for f := range byField {
		fields = append(fields, f)
	}
	sort.Slice(fields, func(i, j int) bool {
		a, b := byField[fields[i]], byField[fields[j]]
		return a > b || a == b && fields[i] < fields[j]
	})
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = fmt.Sprintf("%s %d", f, byField[f])
	}
	fmt.Fprintf(stderr, "%s: %d records scanned without some of their fields (values of the wrong type or format; the records are not malformed): %s\n",
		name, records, strings.Join(parts, ", "))
}

// loadIOCs loads the IOC folder once, reporting broken files and lines.
func loadIOCs(dir string, stderr io.Writer) (*ioc.Set, error) {
	set, status, err := ioc.LoadDir(dir, time.Now())
	if err != nil {
		return nil, err
	}
	for _, st := range status {
		if st.LastError != "" {
			fmt.Fprintf(stderr, "raywatch scan: IOC file %s\n", st.LastError)
		}
		for _, le := range st.LineErrors {
			fmt.Fprintf(stderr, "raywatch scan: IOC line skipped: %v\n", le)
		}
	}
	fmt.Fprintf(stderr, "raywatch scan: %d indicators from %d files in %s\n", set.Len(), len(status), dir)
	return set, nil
}
