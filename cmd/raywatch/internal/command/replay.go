package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/replay"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/rules"
)

const replayUsage = `Usage: raywatch replay [flags] SOURCE...

Runs archived Cloudflare Logpush objects through the same pipeline as the
intake. SOURCE is a folder (walked), a file, or s3://BUCKET/PREFIX on S3,
R2, GCS's S3 interface or MinIO (--s3-endpoint or AWS_ENDPOINT_URL;
credentials from the usual AWS_* variables or shared configuration).

Logpush names its objects YYYYMMDD/<start>_<end>_<id>.log.gz: objects
whose names fall outside --from/--to are never downloaded, and of those
read only the records whose own time is in the range are matched.

Output, in record order within each object:
  default          alerts as JSON lines on stdout, as raywatch scan prints them
  --data-dir DIR   alerts added to the raywatch store in DIR (marked
                   "replayed"), for the dashboard; stop raywatch serve on
                   DIR first, it holds the store
  --rule ID --stats
                   how often the rule would have fired: alerts per day and
                   top source addresses and domains; nothing is stored

A progress line goes to stderr every few seconds. Each object finished is
recorded (--state); interrupted, the same command with --resume continues
after the last object it finished.

T is RFC 3339 (2026-01-05T12:00:00Z), a date (2026-01-05: --from its
start, --to its end, UTC), or a time ago (36h, 7d).

Exit status (as raywatch scan's):
  0  every object and record was read
  1  some records were malformed, or some object could not be read whole
  2  nothing could be read

Flags:
`

// replayFlags are replay's command line.
type replayFlags struct {
	cfg       app.Config
	from, to  string
	dataDir   string
	rule      string
	stats     bool
	asJSON    bool
	resume    bool
	stateFile string
	endpoint  string
	downloads int
	intake    string
	tempDir   string
}

func (f *replayFlags) register(fs *flag.FlagSet) {
	c := &f.cfg
	fs.StringVar(&f.from, "from", "", "replay records from this time on (T: RFC 3339, YYYY-MM-DD or a time ago such as 7d)")
	fs.StringVar(&f.to, "to", "", "replay records up to this time (T as for --from; a date means its end)")
	fs.StringVar(&c.RulesDir, "rules-dir", getenv.Or("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	fs.StringVar(&c.IOCDir, "ioc-dir", getenv.Or("RAYWATCH_IOC_DIR", ""), "folder of IOC files for the intelligence-feed rule (RAYWATCH_IOC_DIR)")
	fs.StringVar(&c.Dataset, "dataset", getenv.Or("RAYWATCH_DATASET", "auto"), "Logpush dataset of the records, or auto to recognise it (RAYWATCH_DATASET)")
	c.RuleFlags(fs, getenv)
	// No RAYWATCH_DATA_DIR here: the variable set for serve must not turn
	// a replay to stdout into one into the store.
	fs.StringVar(&f.dataDir, "data-dir", "", "add the alerts to the raywatch store in this folder (marked replayed) instead of printing them")
	fs.DurationVar(&c.GroupWindow, "group-window", getenv.Duration("RAYWATCH_GROUP_WINDOW", time.Hour), "with --data-dir: the store's grouping window, as serve's --group-window (RAYWATCH_GROUP_WINDOW)")
	fs.StringVar(&f.rule, "rule", "", "replay only this rule (its id)")
	fs.BoolVar(&f.stats, "stats", false, "with --rule: print how often the rule would have fired (per day, top entities) instead of the alerts")
	fs.BoolVar(&f.asJSON, "json", false, "with --stats: print the figures as JSON")
	fs.BoolVar(&f.resume, "resume", false, "skip the objects an interrupted run of the same command finished")
	fs.StringVar(&f.stateFile, "state", "", "file recording the objects finished (default: in --data-dir, else in the user cache folder)")
	fs.StringVar(&f.endpoint, "s3-endpoint", getenv.Or("RAYWATCH_S3_ENDPOINT", ""), "S3 API endpoint URL for s3:// sources (R2: https://ACCOUNT.r2.cloudflarestorage.com; default AWS_ENDPOINT_URL, else AWS S3) (RAYWATCH_S3_ENDPOINT)")
	fs.IntVar(&f.downloads, "downloads", replay.DefaultWorkers, "objects downloaded at once (each to a temporary file)")
	fs.IntVar(&c.Workers, "workers", int(getenv.Int("RAYWATCH_WORKERS", int64(runtime.GOMAXPROCS(0)))), "goroutines detecting records at once; alerts keep the records' order (RAYWATCH_WORKERS)")
	fs.StringVar(&f.intake, "intake", "replay", "intake name the alerts carry")
	fs.StringVar(&f.tempDir, "temp-dir", "", "folder for downloaded objects until they are read (default the system's)")
}

// mode names where the alerts go.
func (f *replayFlags) mode() string {
	switch {
	case f.stats:
		return "stats"
	case f.dataDir != "":
		return "data-dir"
	}
	return "stdout"
}

// check validates the flags against each other; the errors name the flag.
func (f *replayFlags) check() error {
	var errs []error
	if f.stats && f.rule == "" {
		errs = append(errs, errors.New("--stats needs --rule ID: the figures are those of one rule"))
	}
	if f.stats && f.dataDir != "" {
		errs = append(errs, errors.New("--stats stores nothing: leave out --data-dir"))
	}
	if f.stats && (f.resume || f.stateFile != "") {
		errs = append(errs, errors.New("--stats counts in memory: a resumed run would count only the objects left; leave out --resume and --state"))
	}
	if f.asJSON && !f.stats {
		errs = append(errs, errors.New("--json goes with --stats"))
	}
	if f.downloads < 1 || f.cfg.Workers < 1 {
		errs = append(errs, errors.New("--downloads and --workers must be at least 1"))
	}
	if f.cfg.GroupWindow < 0 {
		errs = append(errs, errors.New("--group-window cannot be negative"))
	}
	if err := pipeline.ValidDataset(f.cfg.Dataset); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// replayCmd replays archived Logpush objects and exits with the status
// replayUsage documents.
func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f replayFlags
	fs := flag.NewFlagSet("raywatch replay", flag.ContinueOnError)
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), replayUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "raywatch replay: no SOURCE given (a folder, a file or s3://BUCKET/PREFIX)\nrun 'raywatch replay -h' for its flags")
		return errUsage
	}
	rng, err := f.timeRange(time.Now().UTC())
	if err = errors.Join(err, f.check()); err != nil {
		fmt.Fprintf(stderr, "raywatch replay: %v\nrun 'raywatch replay -h' for its flags\n", err)
		return errUsage
	}
	stderr = &lockedWriter{w: stderr}
	eng, err := replayEngine(&f, stderr)
	if err != nil {
		return err
	}
	return runReplay(ctx, &f, fs.Args(), rng, eng, stdout, stderr)
}

// timeRange reads --from and --to.
func (f *replayFlags) timeRange(now time.Time) (replay.Range, error) {
	var rng replay.Range
	var err error
	if rng.From, err = parseReplayTime(f.from, now, false); err != nil {
		return rng, fmt.Errorf("--from: %w", err)
	}
	if rng.To, err = parseReplayTime(f.to, now, true); err != nil {
		return rng, fmt.Errorf("--to: %w", err)
	}
	return rng, rng.Validate()
}

// parseReplayTime reads a --from or --to value: RFC 3339, a date (its
// start, or with end its last instant), or a duration ago ("36h", "7d").
// "" is the zero time (an open side).
func parseReplayTime(s string, now time.Time, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			t = t.Add(24*time.Hour - time.Nanosecond)
		}
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-01-05T12:00:00Z), a date (2026-01-05) or a time ago (36h, 7d)", s)
}

// replayEngine loads the rules and the IOC folder once; with --rule, only
// that rule is evaluated (with the rules a correlation refers to, and the
// filters).
func replayEngine(f *replayFlags, stderr io.Writer) (*engine.Engine, error) {
	cfg := f.cfg
	var iocSet func() *ioc.Set
	if cfg.IOCDir != "" {
		set, err := loadIOCs(cfg.IOCDir, stderr)
		if err != nil {
			return nil, err
		}
		iocSet = func() *ioc.Set { return set }
	}
	eng, problems, err := app.NewEngine(cfg, iocSet)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "raywatch replay: rule skipped: %v\n", p)
	}
	if f.rule == "" {
		return eng, nil
	}
	all := eng.Rules()
	i := slices.IndexFunc(all, func(st engine.RuleStatus) bool { return st.ID == f.rule })
	if i < 0 {
		return nil, fmt.Errorf("--rule %s: no loaded rule has this id (raywatch rules list shows them)", f.rule)
	}
	target := all[i].Rule
	if target.ID == rules.IntelligenceFeedID && cfg.IOCDir == "" {
		return nil, fmt.Errorf("--rule %s is the intelligence-feed rule: give the indicators with --ioc-dir", f.rule)
	}
	keep := map[string]bool{target.ID: true}
	if target.Correlation != nil {
		for _, ref := range target.Correlation.Rules {
			for _, st := range all {
				if st.ID == ref || st.Name != "" && st.Name == ref {
					keep[st.ID] = true
				}
			}
		}
	}
	var off []string
	for _, st := range all {
		if !keep[st.ID] && st.Kind() != rules.KindFilter {
			off = append(off, st.ID)
		}
	}
	cfg.DisableRules = strings.Join(append(off, cfg.DisableRules), ",")
	eng, _, err = app.NewEngine(cfg, iocSet)
	return eng, err
}

// replayState returns the resume state's key and file for the sources and
// flags: a replay run again with other arguments does not resume from it.
// With --stats there is no file.
func replayState(f *replayFlags, sources []string, rng replay.Range) (key, file string, err error) {
	abs := make([]string, len(sources))
	for i, s := range sources {
		abs[i] = s
		if !strings.HasPrefix(s, "s3://") {
			if a, err := filepath.Abs(s); err == nil {
				abs[i] = a
			}
		}
	}
	c := f.cfg
	key = replay.StateKey(abs, rng, "rules="+c.RulesDir, "ioc="+c.IOCDir, "dataset="+c.Dataset, "rule="+f.rule,
		"mode="+f.mode(), "data-dir="+f.dataDir, "disable="+c.DisableRules, "mapping="+c.FieldMapping, "intake="+f.intake)
	if f.stats {
		return key, "", nil // nothing to resume: the figures are in memory
	}
	if f.stateFile != "" {
		return key, f.stateFile, nil
	}
	dir := f.dataDir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", "", fmt.Errorf("no folder for the resume state (%v): give one with --state FILE", err)
		}
		dir = filepath.Join(cache, "raywatch")
	}
	return key, replay.StatePath(dir, key), nil
}

// lockedWriter serializes the writes of the progress reporter, the object
// errors and the malformed records to stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
