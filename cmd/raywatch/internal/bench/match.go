package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/baseline"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// matchPhases runs the normalize, engine and ioc phases that are asked
// for. The engine and IOC phases are measured twice: on events just
// normalized, as a pipeline worker matches them ("hot"), and on events
// normalized beforehand ("cold": every event read is a cache miss).
func (r *run) matchPhases() error {
	if r.phase["normalize"] {
		r.normalizePhase()
	}
	if !r.phase["engine"] && !r.phase["ioc"] {
		return nil
	}
	evs := make([]*normalize.Event, min(len(r.raws), 50_000))
	for i := range evs {
		var err error
		if evs[i], err = r.norm.Normalize("http_requests", r.raws[i]); err != nil {
			return fmt.Errorf("normalize record %d: %w", i, err)
		}
	}
	if r.phase["engine"] {
		if err := r.enginePhase(evs); err != nil {
			return err
		}
	}
	if r.phase["ioc"] && r.set != nil {
		r.iocPhase(evs)
	}
	return nil
}

// normalizePhase measures NormalizeInto into one Event whose memory goes
// to the next record (Event.Reuse), as a pipeline worker does with the
// records that raise no alert.
func (r *run) normalizePhase() {
	r.say("normalize")
	raws := r.raws
	row := Row{Name: "normalize (NormalizeInto and Event.Reuse, as a worker; 1 goroutine)", Records: len(raws), Baseline: "encoding/json into map"}
	var ev normalize.Event
	row.RecordsPerSec, row.AllocsPerRecord = measure(len(raws), func(i int) {
		if err := r.norm.NormalizeInto(&ev, "http_requests", raws[i]); err != nil {
			panic(err)
		}
		ev.Reuse()
	})
	row.BaselinePerSec, row.BaselineAllocs = measure(len(raws), func(i int) {
		var m map[string]any
		if err := json.Unmarshal(raws[i], &m); err != nil {
			panic(err)
		}
	})
	r.rep.Rows = append(r.rep.Rows, row.withRatio())
}

// hot measures fn on events just normalized, as a pipeline worker runs it
// (the event still in the processor's caches): the records are normalized
// 64 at a time, untimed, then fn is timed over those 64. It returns fn's
// calls per second, the fastest of three passes over the records.
func (r *run) hot(fn func(ev *normalize.Event)) float64 {
	const block = 64
	evs := make([]normalize.Event, block)
	best := time.Duration(1 << 62)
	for range 3 {
		runtime.GC()
		var total time.Duration
		for start := 0; start < len(r.raws); start += block {
			n := min(block, len(r.raws)-start)
			for i := range n {
				evs[i].Reuse()
				if err := r.norm.NormalizeInto(&evs[i], "http_requests", r.raws[start+i]); err != nil {
					panic(err)
				}
			}
			t0 := time.Now()
			for i := range n {
				fn(&evs[i])
			}
			total += time.Since(t0)
		}
		best = min(best, total)
	}
	return float64(len(r.raws)) / best.Seconds()
}

func (r *run) enginePhase(evs []*normalize.Event) error {
	r.say("engine")
	now := time.Now()
	hot := Row{Name: fmt.Sprintf("engine Match (%d rules + IOCs, 1 goroutine), hot events", r.rep.Rules), Records: len(r.raws),
		Note: "each event just normalized, as a worker matches it (64 normalized, then matched)"}
	hot.RecordsPerSec = r.hot(func(ev *normalize.Event) { r.eng.Match(ev, "bench", now) })
	row := Row{Name: fmt.Sprintf("engine Match (%d rules + IOCs, 1 goroutine), cold events", r.rep.Rules), Records: len(evs)}
	alerts := 0
	row.RecordsPerSec, row.AllocsPerRecord = measure(len(evs), func(i int) { alerts += len(r.eng.Match(evs[i], "bench", now)) })
	row.Note = fmt.Sprintf("%d alerts; events normalized beforehand", alerts)
	base, n, err := sigmaBaseline(r.cfg.RulesDir, evs)
	if err != nil {
		return err
	}
	for _, rw := range []*Row{&hot, &row} {
		rw.Baseline = fmt.Sprintf("sigma-go ForRule per rule (%d rules)", n)
		rw.BaselinePerSec, rw.BaselineAllocs = base.perSec, base.allocs
		r.rep.Rows = append(r.rep.Rows, rw.withRatio())
	}
	return nil
}

func (r *run) iocPhase(evs []*normalize.Event) {
	r.say("ioc")
	name := fmt.Sprintf("IOC set Match (%d indicators)", r.set.Len())
	var dst []ioc.Hit
	hot := Row{Name: name + ", hot events", Records: len(r.raws), Baseline: "map lookup of IP and host",
		Note: "each event just normalized, as a worker matches it (64 normalized, then matched)"}
	hot.RecordsPerSec = r.hot(func(ev *normalize.Event) { dst = r.set.Match(ev, dst[:0]) })
	row := Row{Name: name + ", cold events", Records: len(evs), Baseline: "map lookup of IP and host"}
	row.RecordsPerSec, row.AllocsPerRecord = measure(len(evs), func(i int) { dst = r.set.Match(evs[i], dst[:0]) })
	plain := r.gen.IOCSet()
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
	hot.BaselinePerSec, hot.BaselineAllocs = row.BaselinePerSec, row.BaselineAllocs
	row.Note = "events normalized beforehand; the IOC set also matches CIDRs, parent domains, URLs, user-agents and JA3"
	r.rep.Rows = append(r.rep.Rows, hot.withRatio(), row.withRatio())
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

type rate struct{ perSec, allocs float64 }

// sigmaBaseline evaluates the same rules with sigma-go's per-rule evaluator
// (ForRule, the field mapping given as a sigma-go config) on the events'
// flat maps. It returns the rate and the number of rules sigma-go parsed.
func sigmaBaseline(rulesDir string, evs []*normalize.Event) (rate, int, error) {
	rs, _, err := engine.LoadRules(rulesDir)
	if err != nil {
		return rate{}, 0, err
	}
	evals, _ := baseline.SigmaGoEvaluators(rs, rules.DefaultMapping())
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
	return rate{perSec, allocs}, len(evals), nil
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
