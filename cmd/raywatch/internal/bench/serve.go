package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
)

// batchRecords is the size of the batches the whole-path and latency
// phases post.
const batchRecords = 1000

// benchKey is the intake key of the in-process server.
const benchKey = "bench-intake-key-0123456789abcdef"

// bodies gzips the records into batches once: 999 records each, made
// unique at posting (the intake drops a batch it has seen) by a second
// gzip member holding one marker record of its own. Records reused from
// batch to batch are processed in full (the store counts a record once per
// alert).
func bodies(raws [][]byte) [][]byte {
	var out [][]byte
	for i := 0; i+batchRecords <= len(raws); i += batchRecords {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
		for _, r := range raws[i : i+batchRecords-1] {
			zw.Write(r)
			zw.Write([]byte{'\n'})
		}
		zw.Close()
		out = append(out, b.Bytes())
	}
	return out
}

// poster posts marked batches to the in-process server.
type poster struct {
	ctx    context.Context
	base   string
	client *http.Client
	// processed reads the server's raywatch_records_processed_total.
	processed func() float64
	bodies    [][]byte
	seq       atomic.Int64
	writers   sync.Pool // gzip writers of the marker members: a new one allocates about a megabyte
}

// batch returns the next batch, with its marker, and its number.
func (p *poster) batch() ([]byte, int64) {
	n := p.seq.Add(1)
	var tail bytes.Buffer
	zw, _ := p.writers.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(&tail, gzip.BestSpeed)
	} else {
		zw.Reset(&tail)
	}
	zw.Write(traffic.Marker(n))
	zw.Close()
	p.writers.Put(zw)
	b := p.bodies[int(n)%len(p.bodies)]
	return append(slices.Clip(b), tail.Bytes()...), n
}

// post sends one batch; an answer other than 200 is an error naming it.
func (p *poster) post(body []byte) error {
	req, _ := http.NewRequestWithContext(p.ctx, "POST", p.base+"/plain/batch", bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("X-SEKOIAIO-INTAKE-KEY", benchKey)
	resp, err := p.client.Do(req)
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

// servePhases runs raywatch serve in this process on loopback and
// measures the whole path (HTTP intake, spool, normalize, engine, store,
// hub), then the latency from a batch's 2xx to its alert on a websocket at
// a fixed offered rate, then to its alert at a webhook receiver (and what
// an outage of the receiver does).
func (r *run) servePhases(ctx context.Context) error {
	dataDir, err := os.MkdirTemp("", "raywatch-bench-data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	var cfg app.Config
	cfg.ServeFlags(flag.NewFlagSet("serve", flag.ContinueOnError), func(string) string { return "" })
	cfg.Listen, cfg.DataDir, cfg.LogLevel, cfg.SpoolMaxBytes = "127.0.0.1:0", dataDir, "warn", 4<<30
	cfg.RulesDir, cfg.IOCDir = r.cfg.RulesDir, r.iocDir
	cfg.IntakeKeys = map[string]string{"bench": benchKey}
	// Every batch's marker must raise a new alert, at 50 a second: the
	// runaway-rule guard would hold all but the first 100 a minute.
	cfg.Tuning.RuleAlertBudget = 0
	if r.phase["webhook"] {
		if err := r.withWebhook(&cfg); err != nil {
			return err
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- a.Run(sctx) }()
	p := &poster{ctx: ctx, base: "http://" + a.Addr().String(), bodies: bodies(r.raws), processed: a.RecordsProcessed,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: r.cfg.Clients + 4}}}
	// The serve phases come last, and they sample this process's memory:
	// what only the earlier phases needed (the records, the generator's
	// indicators, the engine and IOC set of the match phases: a second
	// copy of the server's) goes before they start.
	r.raws, r.gen, r.eng, r.set = nil, nil, nil, nil
	runtime.GC()
	if err := waitHTTP(ctx, p.client, p.base+"/healthz", served); err != nil {
		return err
	}
	if err := r.startProfile(); err != nil {
		return err
	}
	if r.phase["http"] {
		if err := r.httpPhase(p); err != nil {
			return err
		}
	}
	if r.phase["latency"] {
		r.say("latency: %d records/s offered for %v", r.cfg.Rate, r.cfg.Latency)
		if err := r.latencyPhase(ctx, p); err != nil {
			return err
		}
	}
	if r.phase["webhook"] {
		r.say("webhook: %d records/s offered for %v, 2xx to the webhook receiver", r.cfg.Rate, r.cfg.Latency)
		if err := r.webhookPhase(ctx, p); err != nil {
			return err
		}
	}
	if r.cfg.MemProfile != "" {
		if err := writeHeapProfile(r.cfg.MemProfile); err != nil {
			return err
		}
	}
	stop()
	return <-served
}

// httpPhase posts every batch with the clients and waits until the server
// has processed every record.
func (r *run) httpPhase(p *poster) error {
	r.say("whole path: %d clients posting %d batches of %d records", r.cfg.Clients, len(p.bodies), batchRecords)
	processed0 := p.processed()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	if r.cfg.Trace != "" {
		stopTrace, err := startTrace(r.cfg.Trace)
		if err != nil {
			return err
		}
		defer stopTrace()
	}
	cpu0 := cpuTime()
	t0 := time.Now()
	if err := r.postAll(p); err != nil {
		return err
	}
	acked := time.Since(t0)
	total := float64(len(p.bodies) * batchRecords)
	for p.processed()-processed0 < total {
		time.Sleep(2 * time.Millisecond) // polling the counter, in-process
	}
	el := time.Since(t0)
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&m1)
	row := Row{CPUMicrosPerRecord: float64(cpu.Microseconds()) / total,
		Name:    fmt.Sprintf("whole path: HTTP intake on loopback, %d clients, gzip'd %d-record batches", r.cfg.Clients, batchRecords),
		Records: int(total), RecordsPerSec: total / el.Seconds(), AllocsPerRecord: float64(m1.Mallocs-m0.Mallocs) / total,
		Baseline: "encoding/json into map (1 goroutine)", BaselinePerSec: r.jsonRate(),
		Note: fmt.Sprintf("intake acknowledged %.0f records/s; %.1f µs of CPU a record (clients, server and profile share the process)", total/acked.Seconds(), float64(cpu.Microseconds())/total)}
	r.rep.Rows = append(r.rep.Rows, row.withRatio())
	return nil
}

// startTrace starts an execution trace to path and returns its stop.
func startTrace(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("trace: %w", err)
	}
	return func() { trace.Stop(); f.Close() }, nil
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postAll posts every body once with the clients, retrying while the
// intake answers 429 or 503.
func (r *run) postAll(p *poster) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var postErr atomic.Value
	for range r.cfg.Clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if int(i) >= len(p.bodies) || postErr.Load() != nil {
					return
				}
				body, _ := p.batch()
				for {
					err := p.post(body)
					if err == nil {
						break
					}
					if !strings.Contains(err.Error(), "429") && !strings.Contains(err.Error(), "503") {
						postErr.Store(err)
						return
					}
					time.Sleep(50 * time.Millisecond) // the intake asked to come back later
				}
			}
		})
	}
	wg.Wait()
	if err, _ := postErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// waitHTTP polls url until it answers 200, serve stops or two minutes
// pass.
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
