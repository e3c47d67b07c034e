// Package bench is `raywatch bench`: one run that measures every speed
// claim raywatch makes, each beside a baseline measured in the same run on
// the same records, so that the ratios hold on a busy machine where
// absolute figures do not.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
)

// Config is the configuration of a bench run.
type Config struct {
	Records    int
	AttackRate float64
	RulesDir   string
	IOCs       int
	Clients    int
	Rate       int
	Latency    time.Duration
	// Outage is how long the webhook phase's receiver is down after its
	// latency measurement; 0 skips that part.
	Outage     time.Duration
	CPUProfile string
	MemProfile string
	// Trace is where the whole-path phase writes an execution trace
	// (go tool trace): where goroutines wait, which a CPU profile does not
	// show.
	Trace string
	// Phases are the phases to run: normalize, engine, ioc, scan, http,
	// latency, webhook.
	Phases []string
	Seed   uint64
}

// Row is one line of the table: a measured figure and its baseline.
type Row struct {
	Name            string  `json:"name"`
	Records         int     `json:"records"`
	RecordsPerSec   float64 `json:"records_per_sec"`
	AllocsPerRecord float64 `json:"allocs_per_record"`
	Baseline        string  `json:"baseline,omitempty"`
	BaselinePerSec  float64 `json:"baseline_records_per_sec,omitempty"`
	BaselineAllocs  float64 `json:"baseline_allocs_per_record,omitempty"`
	Ratio           float64 `json:"ratio,omitempty"`
	// CPUMicrosPerRecord is the CPU time (user and system) the whole
	// process spent per record during the phase: steadier than the wall
	// clock on a shared machine.
	CPUMicrosPerRecord float64 `json:"cpu_us_per_record,omitempty"`
	Note               string  `json:"note,omitempty"`
}

// Report is the result of a run, as --json writes it.
type Report struct {
	Started    time.Time      `json:"started"`
	GoMaxProcs int            `json:"gomaxprocs"`
	Records    int            `json:"records"`
	RecordSize int            `json:"record_bytes_avg"`
	AttackRate float64        `json:"attack_rate"`
	Rules      int            `json:"rules"`
	IOCs       int            `json:"iocs"`
	Rows       []Row          `json:"rows"`
	Latency    *LatencyReport `json:"latency,omitempty"`
	Webhook    *WebhookReport `json:"webhook,omitempty"`
}

// LatencyReport is the latency phase of a report.
type LatencyReport struct {
	OfferedPerSec  int     `json:"offered_records_per_sec"`
	AchievedPerSec float64 `json:"achieved_records_per_sec"`
	Batches        int     `json:"batches"`
	Seen           int     `json:"alerts_seen"`
	P50ms          float64 `json:"p50_ms"`
	P99ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	RSSStartMiB    float64 `json:"rss_start_mib"`
	RSSEndMiB      float64 `json:"rss_end_mib"`
	Seconds        float64 `json:"seconds"`
	// RSSMiB samples the RSS every tenth of the phase; HeapMiB the live
	// Go heap as of the last collection at the same times.
	RSSMiB     []float64 `json:"rss_mib"`
	RSSAnonMiB []float64 `json:"rss_anon_mib"`
	RSSFileMiB []float64 `json:"rss_file_mib"`
	HeapMiB    []float64 `json:"heap_mib"`
}

func (r Row) withRatio() Row {
	if r.BaselinePerSec > 0 {
		r.Ratio = r.RecordsPerSec / r.BaselinePerSec
	}
	return r
}

// run is one bench run's state.
type run struct {
	cfg    Config
	phase  map[string]bool
	say    func(format string, a ...any)
	work   string // temporary folder
	gen    *traffic.Generator
	raws   [][]byte
	iocDir string
	set    *ioc.Set
	eng    *engine.Engine
	norm   *normalize.Normalizer
	rep    *Report
	prof   *os.File
	hook   *hookSink // the webhook phase's receiver
}

// Run runs the phases of cfg and returns the report; progress lines go to
// progress. It runs raywatch serve in this process for the http and
// latency phases, on loopback.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	r := &run{cfg: cfg, phase: map[string]bool{}, norm: normalize.New(normalize.Options{})}
	for _, p := range cfg.Phases {
		r.phase[p] = true
	}
	r.say = func(format string, a ...any) { fmt.Fprintf(progress, "raywatch bench: "+format+"\n", a...) }
	work, err := os.MkdirTemp("", "raywatch-bench-")
	if err != nil {
		return nil, err
	}
	r.work = work
	defer os.RemoveAll(work)
	defer r.stopProfile()
	if err := r.setup(); err != nil {
		return nil, err
	}
	if r.phase["normalize"] || r.phase["engine"] || r.phase["ioc"] || r.phase["scan"] {
		if err := r.startProfile(); err != nil {
			return nil, err
		}
	}
	if err := r.matchPhases(); err != nil {
		return nil, err
	}
	if r.phase["scan"] {
		if err := r.scanPhase(ctx); err != nil {
			return nil, err
		}
	}
	if r.phase["http"] || r.phase["latency"] || r.phase["webhook"] {
		if err := r.servePhases(ctx); err != nil {
			return nil, err
		}
	}
	return r.rep, nil
}

// setup generates the records and the IOCs and compiles the rules.
func (r *run) setup() error {
	cfg := r.cfg
	r.gen = traffic.New(cfg.Seed)
	if cfg.IOCs > 0 {
		r.iocDir = filepath.Join(r.work, "iocs")
		if err := r.gen.WriteIOCs(r.iocDir, cfg.IOCs); err != nil {
			return err
		}
	}
	r.say("generating %d records (attack rate %g) and %d indicators", cfg.Records, cfg.AttackRate, cfg.IOCs)
	r.raws = make([][]byte, cfg.Records)
	size := 0
	for i := range r.raws {
		r.raws[i] = r.gen.Record(i, cfg.AttackRate)
		size += len(r.raws[i])
	}
	var iocSet func() *ioc.Set
	if r.iocDir != "" {
		t0 := time.Now()
		s, _, err := ioc.LoadDir(r.iocDir, time.Now())
		if err != nil {
			return err
		}
		r.set = s
		iocSet = func() *ioc.Set { return s }
		r.say("%d indicators loaded in %v", s.Len(), time.Since(t0).Round(time.Millisecond))
	}
	eng, problems, err := app.NewEngine(app.Config{RulesDir: cfg.RulesDir, MaxGroups: 10000, Dataset: "auto"}, iocSet)
	if err != nil {
		return err
	}
	for _, p := range problems {
		r.say("rule skipped: %v", p)
	}
	r.eng = eng
	r.rep = &Report{Started: time.Now().UTC(), GoMaxProcs: runtime.GOMAXPROCS(0), Records: cfg.Records,
		RecordSize: size / len(r.raws), AttackRate: cfg.AttackRate, Rules: len(eng.Rules()), IOCs: cfg.IOCs}
	r.say("%d rules, records of %d bytes on average", r.rep.Rules, r.rep.RecordSize)
	return nil
}

// startProfile starts the CPU profile, with the first phase measured,
// after the setup: with --phases http (or latency) it leaves out the
// server's start too.
func (r *run) startProfile() error {
	if r.cfg.CPUProfile == "" || r.prof != nil {
		return nil
	}
	f, err := os.Create(r.cfg.CPUProfile)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	r.prof = f
	return nil
}

func (r *run) stopProfile() {
	if r.prof != nil {
		pprof.StopCPUProfile()
		r.prof.Close()
	}
}

// jsonRate is the rate of the normalize phase's baseline (encoding/json
// into a map), the baseline of the whole path; 0 when it did not run.
func (r *run) jsonRate() float64 {
	for _, row := range r.rep.Rows {
		if strings.HasPrefix(row.Name, "normalize") {
			return row.BaselinePerSec
		}
	}
	return 0
}

// scanPhase measures raywatch scan of a file against encoding/json's
// Decoder of the same file.
func (r *run) scanPhase(ctx context.Context) error {
	r.say("scan")
	f, err := os.CreateTemp(r.work, "scan-*.ndjson")
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	for _, raw := range r.raws {
		bw.Write(raw)
		bw.WriteByte('\n')
	}
	if err := errors.Join(bw.Flush(), f.Close()); err != nil {
		return fmt.Errorf("write the scan file: %w", err)
	}
	p := pipeline.New(pipeline.Options{Detector: &pipeline.Detector{Normalizer: r.norm, Engine: r.eng, Dataset: "auto"}})
	row := Row{Name: fmt.Sprintf("raywatch scan of a file (%d workers)", runtime.GOMAXPROCS(0)), Records: len(r.raws),
		Baseline: "encoding/json Decoder of the file into maps"}
	var res pipeline.ScanResult
	var scanErr error
	row.RecordsPerSec, row.AllocsPerRecord = measureOnce(len(r.raws), func() {
		res, scanErr = p.Scan(ctx, &pipeline.Files{Names: []string{f.Name()}, Intake: "scan", Received: time.Now()}, io.Discard, pipeline.ScanReport{})
	})
	if scanErr != nil {
		return scanErr
	}
	row.BaselinePerSec, row.BaselineAllocs = measureOnce(len(r.raws), func() {
		in, err := os.Open(f.Name())
		if err != nil {
			scanErr = err
			return
		}
		defer in.Close()
		dec := json.NewDecoder(bufio.NewReaderSize(in, 64<<10))
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				return
			}
		}
	})
	if scanErr != nil {
		return scanErr
	}
	row.Note = fmt.Sprintf("%d alerts, %d malformed; dataset auto", res.Alerts, res.Malformed)
	r.rep.Rows = append(r.rep.Rows, row.withRatio())
	return nil
}
