package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/raywatch/raywatch/engine/baseline"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// benchRules are the built-in rules plus the SigmaHQ web rules.
func benchRules(b *testing.B) []rules.Rule {
	b.Helper()
	base, err := rules.Builtin()
	if err != nil {
		b.Fatal(err)
	}
	return rules.Merge(base, loadSigmaHQ(b))
}

var (
	benchUAs = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	}
	benchPaths = []string{"/", "/index.html", "/products/12345", "/api/v1/cart", "/static/js/app.9f8e7d.js", "/static/css/site.css", "/images/hero.webp", "/search", "/account/login", "/blog/2026/11/how-we-ship"}
	benchQuery = []string{"", "", "", "?q=red+shoes&page=2", "?utm_source=newsletter&utm_medium=email", "?id=42", "?v=3"}
)

// benignRecord is a typical 1 KB Cloudflare http_requests record.
func benignRecord(rng *rand.Rand, i int) map[string]any {
	path := benchPaths[rng.IntN(len(benchPaths))]
	uri := path + benchQuery[rng.IntN(len(benchQuery))]
	return map[string]any{
		"CacheCacheStatus":        "hit",
		"CacheResponseBytes":      40000 + rng.IntN(20000),
		"CacheResponseStatus":     200,
		"ClientASN":               13335 + rng.IntN(50000),
		"ClientCountry":           "de",
		"ClientDeviceType":        "desktop",
		"ClientIP":                fmt.Sprintf("198.51.100.%d", rng.IntN(250)+1),
		"ClientIPClass":           "noRecord",
		"ClientRequestBytes":      900 + rng.IntN(800),
		"ClientRequestHost":       "shop.example.com",
		"ClientRequestMethod":     []string{"GET", "GET", "GET", "POST"}[rng.IntN(4)],
		"ClientRequestPath":       path,
		"ClientRequestProtocol":   "HTTP/2",
		"ClientRequestReferer":    "https://shop.example.com/",
		"ClientRequestScheme":     "https",
		"ClientRequestSource":     "eyeball",
		"ClientRequestURI":        uri,
		"ClientRequestUserAgent":  benchUAs[rng.IntN(len(benchUAs))],
		"ClientSSLCipher":         "AEAD-AES128-GCM-SHA256",
		"ClientSSLProtocol":       "TLSv1.3",
		"ClientSrcPort":           40000 + rng.IntN(20000),
		"ClientTCPRTTMs":          10 + rng.IntN(50),
		"ClientXRequestedWith":    "",
		"EdgeColoCode":            "FRA",
		"EdgeColoID":              29,
		"EdgeEndTimestamp":        1764115200200000000 + int64(i)*1000000,
		"EdgePathingOp":           "wl",
		"EdgePathingSrc":          "macro",
		"EdgePathingStatus":       "nr",
		"EdgeRateLimitAction":     "",
		"EdgeRateLimitID":         0,
		"EdgeRequestHost":         "shop.example.com",
		"EdgeResponseBytes":       3000 + rng.IntN(60000),
		"EdgeResponseContentType": "text/html",
		"EdgeResponseStatus":      []int{200, 200, 200, 304, 404}[rng.IntN(5)],
		"EdgeServerIP":            "",
		"EdgeStartTimestamp":      1764115200000000000 + int64(i)*1000000,
		"OriginIP":                "192.0.2.10",
		"OriginResponseStatus":    200,
		"OriginResponseTime":      12000000 + rng.IntN(1000000),
		"RayID":                   fmt.Sprintf("8e%014x", i),
		"SecurityLevel":           "med",
		"WAFAction":               "unknown",
		"WorkerSubrequest":        false,
		"ZoneID":                  123456789,
	}
}

type benchEvent struct {
	ev   *normalize.Event
	flat map[string]any
	raw  []byte
}

// benchEvents returns n events, one in a thousand an attack built to fire
// a SigmaHQ rule.
func benchEvents(b *testing.B, n int) ([]benchEvent, int) {
	b.Helper()
	rs := loadSigmaHQ(b)
	m := rules.DefaultMapping()
	norm := normalize.New(normalize.Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	var out []benchEvent
	attacks, size := 0, 0
	for i := 0; i < n; i++ {
		rec := benignRecord(rng, i)
		if i%1000 == 999 {
			p, err := planRule(rs[rng.IntN(len(rs))], m)
			if err == nil {
				rec = p.record()
				rec["RayID"] = fmt.Sprintf("8e%014x", i)
				attacks++
			}
		}
		raw, _ := json.Marshal(rec)
		size += len(raw)
		ev, err := norm.Normalize("http_requests", raw)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, benchEvent{ev: ev, flat: ev.FlatMap(), raw: raw})
	}
	b.Logf("%d events, %d attacks, %d bytes a record on average", n, attacks, size/n)
	return out, attacks
}

// BenchmarkEvaluate compares, on the same events, sigma-go's per-rule
// evaluator (ForRule for each rule, the field mapping given as a sigma-go
// config) with raywatch's engine. The figure is events/s (one core with
// -cpu 1).
func BenchmarkEvaluate(b *testing.B) {
	rs := benchRules(b)
	evs, _ := benchEvents(b, 8192)
	now := time.Now()

	b.Run("sigma-go-ForRule", func(b *testing.B) {
		evals, skipped := baseline.SigmaGoEvaluators(rs, rules.DefaultMapping())
		b.Logf("sigma-go: %d rules evaluated, %d rejected by its parser", len(evals), skipped)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		start, cpu0 := time.Now(), cpuTime()
		i := 0
		for b.Loop() {
			flat := evs[i%len(evs)].flat
			for _, ev := range evals {
				ev.Matches(ctx, flat)
			}
			i++
		}
		reportRates(b, i, start, cpu0)
	})

	for _, tc := range []struct {
		name string
		rs   []rules.Rule
	}{{"raywatch", rs}, {"raywatch-without-keyword-rules", withoutKeywords(rs)}} {
		b.Run(tc.name, func(b *testing.B) { benchEngine(b, tc.rs, evs, now) })
	}
}

// withoutKeywords drops the rules with keyword searches, which read every
// field of the event (Event.Range) and so show the cost of the event's
// flat view rather than the engine's.
func withoutKeywords(rs []rules.Rule) []rules.Rule {
	var out []rules.Rule
	for _, r := range rs {
		kw := false
		for _, s := range r.Detection.Searches {
			for _, m := range s.Maps {
				for _, fm := range m {
					kw = kw || fm.Field == ""
				}
			}
		}
		if !kw {
			out = append(out, r)
		}
	}
	return out
}

func benchEngine(b *testing.B, rs []rules.Rule, evs []benchEvent, now time.Time) {
	{
		e, err := engine.New(rs)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		start, cpu0 := time.Now(), cpuTime()
		i := 0
		for b.Loop() {
			e.Match(evs[i%len(evs)].ev, "bench", now)
			i++
		}
		reportRates(b, i, start, cpu0)
	}
}

// BenchmarkNormalizeMatch is a pipeline worker's work on a record:
// NormalizeInto a reused Event, then Match (then Event.Reuse when it
// raised no alert), which finds the event in the
// cache as it does in the pipeline (BenchmarkEvaluate matches events
// normalized long before). The records are those of BenchmarkEvaluate
// that raise no alert (a benign user-agent there matches "Exploit
// Framework User Agent"), plus its attacks: one in a thousand alerts.
func BenchmarkNormalizeMatch(b *testing.B) {
	rs := benchRules(b)
	evs, _ := benchEvents(b, 8192)
	e, err := engine.New(rs)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	var raws [][]byte
	for i, ev := range evs {
		if i%1000 == 999 || len(e.Match(ev.ev, "bench", now)) == 0 {
			raws = append(raws, ev.raw)
		}
	}
	norm := normalize.New(normalize.Options{})
	var ev normalize.Event
	b.ReportAllocs()
	start, cpu0 := time.Now(), cpuTime()
	i := 0
	for b.Loop() {
		if err := norm.NormalizeInto(&ev, "http_requests", raws[i%len(raws)]); err != nil {
			b.Fatal(err)
		}
		if len(e.Match(&ev, "bench", now)) == 0 {
			ev.Reuse() // as the pipeline does
		}
		i++
	}
	reportRates(b, i, start, cpu0)
}

// BenchmarkMatchHot matches one event over and over (caches warm).
func BenchmarkMatchHot(b *testing.B) {
	rs := benchRules(b)
	evs, _ := benchEvents(b, 16)
	e, err := engine.New(rs)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		e.Match(evs[0].ev, "bench", now)
	}
}

// BenchmarkRange measures iterating the values of pooled events.
func BenchmarkRange(b *testing.B) {
	evs, _ := benchEvents(b, 8192)
	i, n := 0, 0
	for b.Loop() {
		evs[i%len(evs)].ev.Range(func(f, v string) bool { n += len(v); return true })
		i++
	}
}

func BenchmarkRangeHot(b *testing.B) {
	evs, _ := benchEvents(b, 16)
	n, k := 0, 0
	evs[0].ev.Range(func(f, v string) bool { k++; return true })
	b.Logf("%d values", k)
	for b.Loop() {
		evs[0].ev.Range(func(f, v string) bool { n += len(v); return true })
	}
}

// cpuTime is the CPU time the process has used (user and system): on a
// machine shared with other work it measures cost better than the wall
// clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports events per wall-clock second and per CPU second.
func reportRates(b *testing.B, n int, start time.Time, cpu0 time.Duration) {
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(n)/cpu.Seconds(), "events/cpu-s")
	}
}
