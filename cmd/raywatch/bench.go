package main

// raywatch bench: one run that measures every speed claim raywatch makes,
// each beside a baseline measured in the same run on the same records, so
// that the ratios hold on a busy machine where absolute figures do not.

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
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"

	sigmago "github.com/raywatch/raywatch/engine/baseline"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// benchConfig is the configuration of raywatch bench.
type benchConfig struct {
	Records    int
	AttackRate float64
	RulesDir   string
	IOCs       int
	Clients    int
	Rate       int
	Latency    time.Duration
	JSON       string
	CPUProfile string
	MemProfile string
	Phases     string
	Seed       uint64
}

// benchRow is one line of the table: a measured figure and its baseline.
type benchRow struct {
	Name            string  `json:"name"`
	Records         int     `json:"records"`
	RecordsPerSec   float64 `json:"records_per_sec"`
	AllocsPerRecord float64 `json:"allocs_per_record"`
	Baseline        string  `json:"baseline,omitempty"`
	BaselinePerSec  float64 `json:"baseline_records_per_sec,omitempty"`
	BaselineAllocs  float64 `json:"baseline_allocs_per_record,omitempty"`
	Ratio           float64 `json:"ratio,omitempty"`
	Note            string  `json:"note,omitempty"`
}

// benchReport is what --json writes.
type benchReport struct {
	Started    time.Time      `json:"started"`
	GoMaxProcs int            `json:"gomaxprocs"`
	Records    int            `json:"records"`
	RecordSize int            `json:"record_bytes_avg"`
	AttackRate float64        `json:"attack_rate"`
	Rules      int            `json:"rules"`
	IOCs       int            `json:"iocs"`
	Rows       []benchRow     `json:"rows"`
	Latency    *latencyReport `json:"latency,omitempty"`
}

// latencyReport is the latency phase of a bench report.
type latencyReport struct {
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

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var bc benchConfig
	fs := flag.NewFlagSet("raywatch bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&bc.Records, "records", 200_000, "http_requests records generated (the whole-path run posts them all)")
	fs.Float64Var(&bc.AttackRate, "attack-rate", 0.001, "fraction of records that are attacks (built-in rules' user-agents, IOC hits, SigmaHQ-style paths)")
	fs.StringVar(&bc.RulesDir, "rules-dir", "", "Sigma rules loaded on top of the built-in ones (for example SigmaHQ's)")
	fs.IntVar(&bc.IOCs, "iocs", 100_000, "indicators generated for the intelligence-feed rule (0 for none)")
	fs.IntVar(&bc.Clients, "clients", 4, "concurrent HTTP clients posting gzip'd 1,000-record batches")
	fs.IntVar(&bc.Rate, "rate", 50_000, "records/s offered in the latency phase")
	fs.DurationVar(&bc.Latency, "latency-duration", 10*time.Second, "length of the latency phase (RSS is reported at its start and end: run 10m for a soak)")
	fs.StringVar(&bc.JSON, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&bc.CPUProfile, "cpuprofile", "", "write a CPU profile from the first phase measured to the end (with --phases http alone it leaves out the server's start) to this file")
	fs.StringVar(&bc.MemProfile, "memprofile", "", "write a heap profile (what is live, and what was allocated) to this file while the server still runs, after its last phase (and to FILE.1 to FILE.10 during the latency phase)")
	fs.StringVar(&bc.Phases, "phases", "normalize,engine,ioc,scan,http,latency", "phases to run")
	fs.Uint64Var(&bc.Seed, "seed", 1, "seed of the generated traffic")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || bc.Records < 1000 || bc.Clients < 1 || bc.Rate < 1000 {
		fmt.Fprintln(stderr, "raywatch bench: --records and --rate must be at least 1000, --clients at least 1, and no arguments")
		return errUsage
	}
	phase := map[string]bool{}
	for _, p := range splitList(bc.Phases) {
		phase[p] = true
	}
	say := func(format string, a ...any) { fmt.Fprintf(stderr, "raywatch bench: "+format+"\n", a...) }

	work, err := os.MkdirTemp("", "raywatch-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	gen := newTrafficGen(bc.Seed, bc.AttackRate)
	iocDir := ""
	if bc.IOCs > 0 {
		iocDir = filepath.Join(work, "iocs")
		if err := gen.writeIOCs(iocDir, bc.IOCs); err != nil {
			return err
		}
	}
	say("generating %d records (attack rate %g) and %d indicators", bc.Records, bc.AttackRate, bc.IOCs)
	raws := make([][]byte, bc.Records)
	size := 0
	for i := range raws {
		raws[i] = gen.record(i)
		size += len(raws[i])
	}
	cfg := Config{RulesDir: bc.RulesDir, MaxGroups: 10000, Dataset: "auto"}
	var set *ioc.Set
	if iocDir != "" {
		t0 := time.Now()
		s, _, err := ioc.LoadDir(iocDir, time.Now())
		if err != nil {
			return err
		}
		set = s
		cfg.iocSet = func() *ioc.Set { return set }
		say("%d indicators loaded in %v", set.Len(), time.Since(t0).Round(time.Millisecond))
	}
	eng, problems, err := newEngine(cfg)
	if err != nil {
		return err
	}
	for _, p := range problems {
		say("rule skipped: %v", p)
	}
	rep := benchReport{Started: time.Now().UTC(), GoMaxProcs: runtime.GOMAXPROCS(0), Records: bc.Records,
		RecordSize: size / len(raws), AttackRate: bc.AttackRate, Rules: len(eng.Rules()), IOCs: bc.IOCs}
	say("%d rules, records of %d bytes on average", rep.Rules, rep.RecordSize)
	norm := normalize.New(normalize.Options{})
	var bodies [][]byte
	if phase["http"] || phase["latency"] {
		bodies = benchBodies(raws)
	}
	// The profile starts with the first phase measured, after the setup:
	// with --phases http (or latency) it leaves out the server's start too.
	var prof *os.File
	startProfile := func() error {
		if bc.CPUProfile == "" || prof != nil {
			return nil
		}
		f, err := os.Create(bc.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		prof = f
		return nil
	}
	defer func() {
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
	}()

	if phase["normalize"] || phase["engine"] || phase["ioc"] || phase["scan"] {
		if err := startProfile(); err != nil {
			return err
		}
	}
	if phase["normalize"] {
		say("normalize")
		row := benchRow{Name: "normalize (NormalizeInto, 1 goroutine)", Records: len(raws), Baseline: "encoding/json into map"}
		var ev normalize.Event
		row.RecordsPerSec, row.AllocsPerRecord = measure(len(raws), func(i int) {
			if err := norm.NormalizeInto(&ev, "http_requests", raws[i]); err != nil {
				panic(err)
			}
		})
		row.BaselinePerSec, row.BaselineAllocs = measure(len(raws), func(i int) {
			var m map[string]any
			if err := json.Unmarshal(raws[i], &m); err != nil {
				panic(err)
			}
		})
		rep.Rows = append(rep.Rows, row.withRatio())
	}

	// The engine and IOC phases match events normalized beforehand.
	var evs []*normalize.Event
	if phase["engine"] || phase["ioc"] {
		n := min(len(raws), 50_000)
		evs = make([]*normalize.Event, n)
		for i := range evs {
			if evs[i], err = norm.Normalize("http_requests", raws[i]); err != nil {
				return err
			}
		}
	}
	if phase["engine"] {
		say("engine")
		now := time.Now()
		row := benchRow{Name: fmt.Sprintf("engine Match (%d rules + IOCs, 1 goroutine)", rep.Rules), Records: len(evs)}
		alerts := 0
		row.RecordsPerSec, row.AllocsPerRecord = measure(len(evs), func(i int) { alerts += len(eng.Match(evs[i], "bench", now)) })
		row.Note = fmt.Sprintf("%d alerts", alerts)
		base, n, err := sigmaBaseline(cfg.RulesDir, evs)
		if err != nil {
			return err
		}
		row.Baseline = fmt.Sprintf("sigma-go ForRule per rule (%d rules)", n)
		row.BaselinePerSec, row.BaselineAllocs = base.perSec, base.allocs
		rep.Rows = append(rep.Rows, row.withRatio())
	}
	if phase["ioc"] && set != nil {
		say("ioc")
		row := benchRow{Name: fmt.Sprintf("IOC set Match (%d indicators)", set.Len()), Records: len(evs), Baseline: "map lookup of IP and host"}
		var dst []ioc.Hit
		row.RecordsPerSec, row.AllocsPerRecord = measure(len(evs), func(i int) { dst = set.Match(evs[i], dst[:0]) })
		plain := gen.iocMap()
		hits := 0
		row.BaselinePerSec, row.BaselineAllocs = measure(len(evs), func(i int) {
			ip, _ := evs[i].String("source.ip")
			host, _ := evs[i].String("url.domain")
			if _, ok := plain[ip]; ok {
				hits++
			}
			if _, ok := plain[host]; ok {
				hits++
			}
		})
		row.Note = "the IOC set also matches CIDRs, parent domains, URLs, user-agents and JA3"
		rep.Rows = append(rep.Rows, row.withRatio())
	}
	if phase["scan"] {
		say("scan")
		f, err := os.CreateTemp("", "raywatch-bench-*.ndjson")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		bw := bufio.NewWriter(f)
		for _, r := range raws {
			bw.Write(r)
			bw.WriteByte('\n')
		}
		if err := errors.Join(bw.Flush(), f.Close()); err != nil {
			return fmt.Errorf("write the scan file: %w", err)
		}
		sc := scanner{d: detector{norm: norm, eng: eng, dataset: "auto"}, now: time.Now()}
		row := benchRow{Name: fmt.Sprintf("raywatch scan of a file (%d workers)", runtime.GOMAXPROCS(0)), Records: len(raws),
			Baseline: "encoding/json Decoder of the file into maps"}
		var res scanResult
		var scanErr error
		row.RecordsPerSec, row.AllocsPerRecord = measureOnce(len(raws), func() {
			res, scanErr = sc.run(ctx, []string{f.Name()}, nil, io.Discard)
		})
		if scanErr != nil {
			return scanErr
		}
		row.BaselinePerSec, row.BaselineAllocs = measureOnce(len(raws), func() {
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
		rep.Rows = append(rep.Rows, row.withRatio())
	}
	jsonRate := 0.0
	for _, r := range rep.Rows {
		if strings.HasPrefix(r.Name, "normalize") {
			jsonRate = r.BaselinePerSec
		}
	}
	if phase["http"] || phase["latency"] {
		if err := benchServe(ctx, bc, gen, bodies, iocDir, jsonRate, phase, &rep, say, startProfile); err != nil {
			return err
		}
	}
	printBench(stdout, &rep)
	if bc.JSON != "" {
		b, err := json.MarshalIndent(&rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(bc.JSON, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}

func (r benchRow) withRatio() benchRow {
	if r.BaselinePerSec > 0 {
		r.Ratio = r.RecordsPerSec / r.BaselinePerSec
	}
	return r
}

// measure calls fn(i) for i in [0, n) and returns the calls per second
// and the allocations per call.
func measure(n int, fn func(i int)) (perSec, allocs float64) {
	return measureOnce(n, func() {
		for i := range n {
			fn(i)
		}
	})
}

// measureOnce runs fn, which handles n records, and returns records per
// second and allocations per record.
func measureOnce(n int, fn func()) (perSec, allocs float64) {
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	fn()
	el := time.Since(t0)
	runtime.ReadMemStats(&m1)
	return float64(n) / el.Seconds(), float64(m1.Mallocs-m0.Mallocs) / float64(n)
}

type baseline struct{ perSec, allocs float64 }

// sigmaBaseline evaluates the same rules with sigma-go's per-rule evaluator
// (ForRule, the field mapping given as a sigma-go config) on the events'
// flat maps. It returns the rate and the number of rules sigma-go parsed.
func sigmaBaseline(rulesDir string, evs []*normalize.Event) (baseline, int, error) {
	rs, _, err := loadRules(rulesDir)
	if err != nil {
		return baseline{}, 0, err
	}
	evals, _ := sigmago.SigmaGoEvaluators(rs, rules.DefaultMapping())
	// sigma-go is slow: a few thousand events make the figure.
	n := min(len(evs), 5000)
	flats := make([]map[string]any, n)
	for i := range flats {
		flats[i] = evs[i].FlatMap()
	}
	ctx := context.Background()
	perSec, allocs := measure(n, func(i int) {
		for _, ev := range evals {
			_, _ = ev.Matches(ctx, flats[i])
		}
	})
	return baseline{perSec, allocs}, len(evals), nil
}

// benchServe runs raywatch serve in this process on loopback and measures
// the whole path (HTTP intake, spool, normalize, engine, store, hub), then
// the latency from a batch's 2xx to its alert on a websocket at a fixed
// offered rate.
// benchBatchRecords is the size of the batches the whole-path and
// latency phases post.
const benchBatchRecords = 1000

// benchBodies gzips the records into batches once: 999 records each, made
// unique at posting (the intake drops a batch it has seen) by a second gzip
// member holding one marker record of its own. Records reused from batch
// to batch are processed in full (the store counts a record once per
// alert).
func benchBodies(raws [][]byte) [][]byte {
	var bodies [][]byte
	for i := 0; i+benchBatchRecords <= len(raws); i += benchBatchRecords {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
		for _, r := range raws[i : i+benchBatchRecords-1] {
			zw.Write(r)
			zw.Write([]byte{'\n'})
		}
		zw.Close()
		bodies = append(bodies, b.Bytes())
	}
	return bodies
}

func benchServe(ctx context.Context, bc benchConfig, gen *trafficGen, bodies [][]byte, iocDir string, jsonRate float64, phase map[string]bool, rep *benchReport, say func(string, ...any), startProfile func() error) error {
	dataDir, err := os.MkdirTemp("", "raywatch-bench-data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	var cfg Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg.serveFlags(fs)
	args := []string{"--listen", addr, "--data-dir", dataDir, "--log-level", "warn", "--spool-max-bytes", strconv.Itoa(4 << 30)}
	if bc.RulesDir != "" {
		args = append(args, "--rules-dir", bc.RulesDir)
	}
	if iocDir != "" {
		args = append(args, "--ioc-dir", iocDir)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	const key = "bench-intake-key-0123456789abcdef"
	cfg.IntakeKeys = map[string]string{"bench": key}
	if err := cfg.Validate(); err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() {
		served <- serve(sctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), io.Discard)
	}()
	base := "http://" + addr
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: bc.Clients + 4}}
	if err := waitHTTP(ctx, client, base+"/healthz", served); err != nil {
		return err
	}

	if err := startProfile(); err != nil {
		return err
	}
	var seq atomic.Int64
	// The gzip writers of the marker members are reused: a new one
	// allocates about a megabyte, garbage that the server would pay for.
	var writers sync.Pool
	batch := func() ([]byte, int64) {
		n := seq.Add(1)
		var tail bytes.Buffer
		zw, _ := writers.Get().(*gzip.Writer)
		if zw == nil {
			zw, _ = gzip.NewWriterLevel(&tail, gzip.BestSpeed)
		} else {
			zw.Reset(&tail)
		}
		zw.Write(gen.marker(n))
		zw.Close()
		writers.Put(zw)
		b := bodies[int(n)%len(bodies)]
		return append(slices.Clip(b), tail.Bytes()...), n
	}
	post := func(body []byte) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/plain/batch", bytes.NewReader(body))
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("X-SEKOIAIO-INTAKE-KEY", key)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("intake answered %d", resp.StatusCode)
		}
		return nil
	}

	if phase["http"] {
		say("whole path: %d clients posting %d batches of %d records", bc.Clients, len(bodies), benchBatchRecords)

		processed0, err := scrapeCounter(client, base, "raywatch_records_processed_total")
		if err != nil {
			return err
		}
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		t0 := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		var postErr atomic.Value
		for range bc.Clients {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if int(i) >= len(bodies) || postErr.Load() != nil {
						return
					}
					body, _ := batch()
					for {
						err := post(body)
						if err == nil {
							break
						}
						if !strings.Contains(err.Error(), "429") && !strings.Contains(err.Error(), "503") {
							postErr.Store(err)
							return
						}
						time.Sleep(50 * time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		if err, _ := postErr.Load().(error); err != nil {
			return err
		}
		acked := time.Since(t0)
		total := float64(len(bodies) * benchBatchRecords)
		for {
			n, err := scrapeCounter(client, base, "raywatch_records_processed_total")
			if err != nil {
				return err
			}
			if n-processed0 >= total {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		el := time.Since(t0)
		runtime.ReadMemStats(&m1)

		row := benchRow{Name: fmt.Sprintf("whole path: HTTP intake on loopback, %d clients, gzip'd %d-record batches", bc.Clients, benchBatchRecords),
			Records: int(total), RecordsPerSec: total / el.Seconds(), AllocsPerRecord: float64(m1.Mallocs-m0.Mallocs) / total,
			Baseline: "encoding/json into map (1 goroutine)", BaselinePerSec: jsonRate,
			Note: fmt.Sprintf("intake acknowledged %.0f records/s; clients, server and profile share the machine", total/acked.Seconds())}
		rep.Rows = append(rep.Rows, row.withRatio())
	}

	if phase["latency"] {
		say("latency: %d records/s offered for %v", bc.Rate, bc.Latency)
		if err := benchLatency(ctx, bc, base, batch, post, rep); err != nil {
			return err
		}
	}
	if bc.MemProfile != "" {
		if err := writeHeapProfile(bc.MemProfile); err != nil {
			return err
		}
	}
	stop()
	if err := <-served; err != nil {
		return err
	}
	return nil
}

// benchLatency offers bc.Rate records/s for bc.Latency and measures the
// time from each batch's 2xx to its marker's alert on the websocket.
func benchLatency(ctx context.Context, bc benchConfig, base string, batch func() ([]byte, int64), post func([]byte) error, rep *benchReport) error {
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		return fmt.Errorf("websocket: %w", err)
	}
	defer ws.Close()
	var mu sync.Mutex
	acked := map[string]time.Time{}
	seen := map[string]time.Time{}
	go func() {
		for {
			_, msg, err := ws.ReadMessage()
			now := time.Now()
			if err != nil {
				return
			}
			// Only marker alerts matter: find the marker IP without
			// decoding the whole frame.
			i := bytes.Index(msg, []byte(`"ip":"10.`))
			if i < 0 {
				continue
			}
			rest := msg[i+6:]
			j := bytes.IndexByte(rest, '"')
			if j < 0 {
				continue
			}
			ip := string(rest[:j])
			mu.Lock()
			if _, ok := seen[ip]; !ok {
				seen[ip] = now
			}
			mu.Unlock()
		}
	}()
	perSec := float64(bc.Rate) / 1000
	interval := time.Duration(float64(time.Second) / perSec)
	// Start from a collected heap, without the garbage of the setup.
	debug.FreeOSMemory()
	rss0 := rssMiB()
	var rssSamples, anonSamples, fileSamples, heapSamples []float64
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		tick := time.NewTicker(bc.Latency / 10)
		defer tick.Stop()
		for range 10 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			rssSamples = append(rssSamples, rssMiB())
			anonSamples = append(anonSamples, procStatusMiB("RssAnon:"))
			fileSamples = append(fileSamples, procStatusMiB("RssFile:"))
			heapSamples = append(heapSamples, liveHeapMiB())
			if bc.MemProfile != "" {
				// For a leak hunt: go tool pprof -base FILE.1 FILE.10.
				_ = writeHeapProfile(fmt.Sprintf("%s.%d", bc.MemProfile, len(rssSamples)))
			}
		}
	}()
	t0 := time.Now()
	deadline := t0.Add(bc.Latency)
	var wg sync.WaitGroup
	sent := 0
	sem := make(chan struct{}, bc.Clients*4)
	var failures atomic.Int64
	for tick := t0; tick.Before(deadline); tick = tick.Add(interval) {
		if d := time.Until(tick); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			break
		}
		body, n := batch()
		ip := markerIP(n)
		sent++
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := post(body); err != nil {
				failures.Add(1)
				return
			}
			now := time.Now()
			mu.Lock()
			acked[ip] = now
			mu.Unlock()
		})
	}
	wg.Wait()
	offeredFor := time.Since(t0)
	// Wait for the last alerts (bounded).
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		done := 0
		for ip := range acked {
			if _, ok := seen[ip]; ok {
				done++
			}
		}
		mu.Unlock()
		if done == len(acked) {
			break
		}
	}
	rss1 := rssMiB()
	<-sampleDone
	mu.Lock()
	var lat []time.Duration
	for ip, t := range acked {
		if s, ok := seen[ip]; ok {
			lat = append(lat, max(0, s.Sub(t)))
		}
	}
	mu.Unlock()
	if len(lat) == 0 {
		return errors.New("latency: no marker alert reached the websocket")
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))]) / float64(time.Millisecond)
	}
	rep.Latency = &latencyReport{bc.Rate, float64(len(acked)*1000) / offeredFor.Seconds(), sent, len(lat), q(.5), q(.99), float64(lat[len(lat)-1]) / float64(time.Millisecond), rss0, rss1, offeredFor.Seconds(), rssSamples, anonSamples, fileSamples, heapSamples}
	if f := failures.Load(); f > 0 {
		return fmt.Errorf("latency: %d of %d batches refused", f, sent)
	}
	return nil
}

func waitHTTP(ctx context.Context, c *http.Client, url string, served <-chan error) error {
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-served:
			return fmt.Errorf("serve stopped: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return errors.New("serve did not become ready")
}

// scrapeCounter reads one counter from /metrics.
func scrapeCounter(c *http.Client, base, name string) (float64, error) {
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, sc.Err()
}

// rssMiB is the resident set size of this process.
func rssMiB() float64 { return procStatusMiB("VmRSS:") }

// procStatusMiB reads a kB field of /proc/self/status (0 where there is
// none): VmRSS, or its parts RssAnon (the heap and stacks) and RssFile
// (mapped files, such as the bbolt database).
func procStatusMiB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func printBench(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "raywatch bench: %d records of %d bytes, attack rate %g, %d rules, %d IOCs, GOMAXPROCS %d\n\n",
		rep.Records, rep.RecordSize, rep.AttackRate, rep.Rules, rep.IOCs, rep.GoMaxProcs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\trecords/s\tallocs/rec\tbaseline\tbaseline rec/s\tbaseline allocs/rec\tratio")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%s\t%.0f\t%.1f\t%.2fx\n", r.Name, r.RecordsPerSec, r.AllocsPerRecord, r.Baseline, r.BaselinePerSec, r.BaselineAllocs, r.Ratio)
	}
	tw.Flush()
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Name, r.Note)
		}
	}
	if l := rep.Latency; l != nil {
		fmt.Fprintf(w, "\n2xx -> alert on the websocket at %d records/s offered (%.0f achieved) over %.0fs: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d of %d batches seen)\n",
			l.OfferedPerSec, l.AchievedPerSec, l.Seconds, l.P50ms, l.P99ms, l.MaxMs, l.Seen, l.Batches)
		fmt.Fprintf(w, "RSS: %.0f MiB at the start of the latency phase, %.0f MiB at its end\n", l.RSSStartMiB, l.RSSEndMiB)
		fmt.Fprintf(w, "RSS every tenth of the phase (MiB): %s\n", joinFloats(l.RSSMiB))
		fmt.Fprintf(w, "  of which anonymous (heap, stacks): %s\n", joinFloats(l.RSSAnonMiB))
		fmt.Fprintf(w, "  of which mapped files (the bbolt database): %s\n", joinFloats(l.RSSFileMiB))
		fmt.Fprintf(w, "live heap at the last collection, same times (MiB): %s\n", joinFloats(l.HeapMiB))
	}
}

// trafficGen makes realistic http_requests records.
type trafficGen struct {
	rng    *rand.Rand
	attack float64
	iocIPs []string
	iocDom []string
}

func newTrafficGen(seed uint64, attack float64) *trafficGen {
	return &trafficGen{rng: rand.New(rand.NewPCG(seed, 2)), attack: attack}
}

var (
	genUAs = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		// Not Googlebot's exact user-agent: SigmaHQ's proxy_ua_frameworks
		// lists it (for proxy logs), so on web logs it fires on every
		// Googlebot request and --attack-rate would mean nothing.
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	}
	genPaths   = []string{"/", "/index.html", "/products/12345", "/api/v1/cart", "/static/js/app.9f8e7d.js", "/static/css/site.css", "/images/hero.webp", "/search", "/account/login", "/blog/2026/11/how-we-ship"}
	genQueries = []string{"", "", "", "?q=red+shoes&page=2", "?utm_source=newsletter&utm_medium=email", "?id=42", "?v=3"}
	genStatus  = []int{200, 200, 200, 304, 404}
	genMethods = []string{"GET", "GET", "GET", "POST"}
	// attackPaths are requests SigmaHQ's web rules look for.
	attackPaths = []string{"/index.php?page=../../../../etc/passwd", "/cgi-bin/.%2e/.%2e/.%2e/bin/sh", "/wp-admin/admin-ajax.php?action=revslider_show_image&img=../wp-config.php", "/?x=${jndi:ldap://203.0.113.9/a}", "/owa/auth/x.js", "/.git/config"}
)

// record returns record i.
func (g *trafficGen) record(i int) []byte {
	r := g.rng
	ua := genUAs[r.IntN(len(genUAs))]
	method := genMethods[r.IntN(len(genMethods))]
	path := genPaths[r.IntN(len(genPaths))]
	uri := path + genQueries[r.IntN(len(genQueries))]
	ip := "198.51.100." + strconv.Itoa(r.IntN(250)+1)
	host := "shop.example.com"
	if r.Float64() < g.attack {
		switch r.IntN(5) {
		case 0:
			ua = "Lemon-Duck-" + string(rune('a'+r.IntN(26))) + "bc-XYZ"
		case 1:
			ua, method = "Mozilla/4.08 (Charon; Inferno)", "POST"
		case 2:
			if len(g.iocIPs) > 0 {
				ip = g.iocIPs[r.IntN(len(g.iocIPs))]
			}
		case 3:
			if len(g.iocDom) > 0 {
				host = g.iocDom[r.IntN(len(g.iocDom))]
			}
		default:
			uri = attackPaths[r.IntN(len(attackPaths))]
			path, _, _ = strings.Cut(uri, "?")
		}
	}
	ts := int64(1795500000000000000) + int64(i)*1_000_000
	b := make([]byte, 0, 1100)
	b = fmt.Appendf(b, `{"CacheCacheStatus":"hit","CacheResponseBytes":%d,"CacheResponseStatus":200,"ClientASN":%d,"ClientCountry":"de","ClientDeviceType":"desktop","ClientIP":%q,"ClientIPClass":"noRecord","ClientRequestBytes":%d,"ClientRequestHost":%q,"ClientRequestMethod":%q,"ClientRequestPath":%q,"ClientRequestProtocol":"HTTP/2","ClientRequestReferer":"https://shop.example.com/","ClientRequestScheme":"https","ClientRequestSource":"eyeball","ClientRequestURI":%q,"ClientRequestUserAgent":%q,"ClientSSLCipher":"AEAD-AES128-GCM-SHA256","ClientSSLProtocol":"TLSv1.3","ClientSrcPort":%d,"ClientTCPRTTMs":%d,"ClientXRequestedWith":"","EdgeColoCode":"FRA","EdgeColoID":29,"EdgeEndTimestamp":%d,"EdgePathingOp":"wl","EdgePathingSrc":"macro","EdgePathingStatus":"nr","EdgeRateLimitAction":"","EdgeRateLimitID":0,"EdgeRequestHost":%q,"EdgeResponseBytes":%d,"EdgeResponseContentType":"text/html","EdgeResponseStatus":%d,"EdgeServerIP":"","EdgeStartTimestamp":%d,"OriginIP":"192.0.2.10","OriginResponseStatus":200,"OriginResponseTime":%d,"RayID":"8e%014x","SecurityLevel":"med","WAFAction":"unknown","WorkerSubrequest":false,"ZoneID":123456789}`,
		40000+r.IntN(20000), 13335+r.IntN(50000), ip, 900+r.IntN(800), host, method, path, uri, ua,
		40000+r.IntN(20000), 10+r.IntN(50), ts+200_000_000, host, 3000+r.IntN(60000), genStatus[r.IntN(len(genStatus))], ts,
		12000000+r.IntN(1000000), i)
	return b
}

// markerIP is the source IP of batch n's marker record.
func markerIP(n int64) string {
	return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
}

// marker returns the marker record of batch n: a Lemon Duck request from
// an IP of its own, so that it makes a new alert that names the batch.
func (g *trafficGen) marker(n int64) []byte {
	return fmt.Appendf(nil, `{"ClientIP":%q,"ClientRequestHost":"m.example.com","ClientRequestMethod":"GET","ClientRequestURI":"/","ClientRequestUserAgent":"Lemon-Duck-bench-MARK","EdgeStartTimestamp":%d,"RayID":"feed%012x"}`+"\n",
		markerIP(n), time.Now().UnixNano(), n)
}

// writeIOCs writes n indicators (70% IPv4 addresses, 30% domains) in a
// text feed in dir, and keeps them for the attacks and the baseline.
func (g *trafficGen) writeIOCs(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "bench.txt"))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := g.rng
	for i := range n {
		var v string
		if i%10 < 7 {
			first := byte(1 + r.IntN(222))
			if first == 10 || first == 198 || first == 203 || first == 192 {
				first = 45
			}
			v = netip.AddrFrom4([4]byte{first, byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}).String()
			g.iocIPs = append(g.iocIPs, v)
		} else {
			v = fmt.Sprintf("%x-%d.bad%d.example", r.Uint32(), i, i%97)
			g.iocDom = append(g.iocDom, v)
		}
		w.WriteString(v)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// iocMap reads the feed back into a plain map: the IOC baseline.
func (g *trafficGen) iocMap() map[string]struct{} {
	m := map[string]struct{}{}
	for _, v := range g.iocIPs {
		m[v] = struct{}{}
	}
	for _, v := range g.iocDom {
		m[v] = struct{}{}
	}
	return m
}

// writeHeapProfile writes the heap profile to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// liveHeapMiB returns the live Go heap as of the last collection.
func liveHeapMiB() float64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(s[0].Value.Uint64()) / (1 << 20)
}

func joinFloats(fs []float64) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strings.Join(parts, " ")
}
