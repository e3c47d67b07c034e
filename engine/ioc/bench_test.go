package ioc

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/raywatch/raywatch/normalize"
)

// The benchmark feed: 1,000,000 indicators of the sizes the issue names,
// plus a few user-agents and JA3 hashes so that a lookup touches every type.
const (
	nIPv4   = 600_000
	nCIDR   = 50_000
	nDomain = 300_000
	nURL    = 50_000
	nUA     = 100
	nJA3    = 100
)

var tlds = []string{"com", "net", "org", "io", "ru", "cn", "info", "xyz", "top", "co.uk"}

func randLabel(r *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	b[0] = alphabet[r.IntN(26)]
	return string(b)
}

func randDomain(r *rand.Rand) string {
	d := randLabel(r, 6+r.IntN(10)) + "." + tlds[r.IntN(len(tlds))]
	if r.IntN(3) == 0 {
		d = randLabel(r, 3+r.IntN(5)) + "." + d
	}
	return d
}

// benchFeed holds a generated feed: its folder and the values in it.
type benchFeed struct {
	dir                     string
	ips, domains, urls, uas []string
	ja3s                    []string
}

// genFeed writes the 1M-indicator feed into dir: one plain-text file per
// type, as a feed downloader would lay them out.
func genFeed(tb testing.TB, dir string) *benchFeed {
	tb.Helper()
	return genFeedScaled(tb, dir, 1)
}

// genFeedScaled is genFeed with scale times as many addresses, ranges,
// domains and URLs.
func genFeedScaled(tb testing.TB, dir string, scale int) *benchFeed {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	f := &benchFeed{dir: dir}
	write := func(name string, n int, gen func(i int) string) []string {
		vals := make([]string, n)
		file, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		w := bufio.NewWriter(file)
		fmt.Fprintf(w, "# %s: %d indicators\n", name, n)
		for i := range n {
			vals[i] = gen(i)
			w.WriteString(vals[i])
			w.WriteByte('\n')
		}
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		if err := file.Close(); err != nil {
			tb.Fatal(err)
		}
		return vals
	}
	f.ips = write("ipv4.txt", nIPv4*scale, func(int) string {
		return netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}).String()
	})
	write("cidr.txt", nCIDR*scale, func(i int) string {
		if i%10 == 0 {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			for j := 4; j < 8; j++ {
				a[j] = byte(r.Uint32())
			}
			return netip.PrefixFrom(netip.AddrFrom16(a), 32+r.IntN(33)).Masked().String()
		}
		a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		return netip.PrefixFrom(a, 16+r.IntN(13)).Masked().String()
	})
	f.domains = write("domains.txt", nDomain*scale, func(int) string { return randDomain(r) })
	f.urls = write("urls.txt", nURL*scale, func(i int) string {
		u := "http://" + randDomain(r) + "/" + randLabel(r, 8) + "/" + randLabel(r, 6) + ".php"
		if i%2 == 0 {
			u += "?id=" + strconv.Itoa(r.IntN(1e6))
		}
		return u
	})
	f.uas = write("ua.txt", nUA, func(i int) string {
		return "ua:Mozilla/5.0 (Windows NT 10.0; Win64; x64) EvilKit/" + strconv.Itoa(i)
	})
	f.ja3s = write("ja3.txt", nJA3, func(int) string {
		return fmt.Sprintf("ja3:%016x%016x", r.Uint64(), r.Uint64())
	})
	return f
}

// benchEvents builds n http_requests events with fresh values: what a
// busy zone sends, where nearly nothing matches. Every fields a lookup
// reads is present.
func benchEvents(tb testing.TB, n int) []*normalize.Event {
	tb.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	norm := normalize.New(normalize.Options{})
	evs := make([]*normalize.Event, n)
	for i := range evs {
		ip := netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}).String()
		if i%4 == 0 {
			ip = fmt.Sprintf("2a02:%x:%x::%x", r.IntN(65536), r.IntN(65536), r.IntN(65536))
		}
		rec := fmt.Sprintf(`{"ClientIP":%q,"ClientRequestHost":"www.%s","ClientRequestURI":"/wp-content/themes/%s/style.css?ver=%d",`+
			`"ClientRequestReferer":"https://www.%s/blog/%s","ClientRequestUserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36",`+
			`"JA3Hash":"%016x%016x","EdgeStartTimestamp":"2025-01-01T00:00:00Z"}`,
			ip, randDomain(r), randLabel(r, 6), r.IntN(100), randDomain(r), randLabel(r, 10), 100+r.IntN(30), r.Uint64(), r.Uint64())
		ev, err := norm.Normalize("http_requests", []byte(rec))
		if err != nil {
			tb.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

var benchNow = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// BenchmarkLoad1M loads the 1M-indicator folder: read, parse, index.
func BenchmarkLoad1M(b *testing.B) {
	feed := genFeed(b, b.TempDir())
	b.ResetTimer()
	for b.Loop() {
		set, _, err := LoadDir(feed.dir, benchNow)
		if err != nil {
			b.Fatal(err)
		}
		if set.Len() != nIPv4+nCIDR+nDomain+nURL+nUA+nJA3 {
			b.Fatalf("Len = %d", set.Len())
		}
	}
}

// BenchmarkBaselineMapLoad1M builds a map[string]struct{} of the same 1M
// lines read from the same files: the floor for a string set.
func BenchmarkBaselineMapLoad1M(b *testing.B) {
	feed := genFeed(b, b.TempDir())
	b.ResetTimer()
	for b.Loop() {
		m := baselineMap(b, feed.dir)
		if len(m) < 990_000 {
			b.Fatalf("len = %d", len(m))
		}
	}
}

func baselineMap(tb testing.TB, dir string) map[string]struct{} {
	m := make(map[string]struct{})
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
				m[line] = struct{}{}
			}
		}
	}
	return m
}

// BenchmarkMatch1M looks up one event against the 1M indicators, every
// type (the client IP in the address maps and the range table, the host
// and the referrer's host with their parent domains, the URL and the
// referrer as URLs, the user-agent, the JA3 hash). "miss" events carry
// fresh values (the common case: no hit), "hit" events one listed value
// each. With "hot", 128 events repeat, so that the events and the parts of
// the indexes they touch stay in the CPU caches; with "cold", 8192 events
// (some 30 MB of events and random places in the indexes) come from
// memory each time. The baseline does the same with one field and one
// lookup in a map[string]struct{} of the same 1M strings.
func BenchmarkMatch1M(b *testing.B) {
	feed := genFeed(b, b.TempDir())
	set, _, err := LoadDir(feed.dir, benchNow)
	if err != nil {
		b.Fatal(err)
	}
	base := baselineMap(b, feed.dir)
	const nCold = 8192
	miss := benchEvents(b, nCold)
	hit := hitEvents(b, feed, nCold)
	runtime.GC()
	for _, pool := range []struct {
		name string
		n    int
	}{{"hot", 128}, {"cold", nCold}} {
		for _, c := range []struct {
			name string
			evs  []*normalize.Event
		}{{"miss", miss[:pool.n]}, {"hit", hit[:pool.n]}} {
			b.Run(pool.name+"/"+c.name, func(b *testing.B) {
				dst := make([]Hit, 0, 16)
				hits, i := 0, 0
				cpu := startThreadCPU()
				for b.Loop() {
					dst = set.Match(c.evs[i&(pool.n-1)], dst[:0])
					hits += len(dst)
					i++
				}
				cpu.report(b, i)
				b.ReportMetric(float64(hits)/float64(i), "hits/event")
			})
		}
		b.Run(pool.name+"/baseline-map", func(b *testing.B) {
			evs := miss[:pool.n]
			hits, i := 0, 0
			cpu := startThreadCPU()
			for b.Loop() {
				host, _ := evs[i&(pool.n-1)].String("destination.address")
				if _, ok := base[host]; ok {
					hits++
				}
				i++
			}
			cpu.report(b, i)
		})
	}
}

// hitEvents builds events that each hit one indicator of the feed.
func hitEvents(tb testing.TB, feed *benchFeed, n int) []*normalize.Event {
	r := rand.New(rand.NewPCG(5, 6))
	norm := normalize.New(normalize.Options{})
	evs := make([]*normalize.Event, n)
	for i := range evs {
		ip, host, uri, ua := "192.0.2.1", "www.example.com", "/", "curl/8"
		switch i % 4 {
		case 0:
			ip = feed.ips[r.IntN(len(feed.ips))]
		case 1:
			host = "cdn." + feed.domains[r.IntN(len(feed.domains))]
		case 2:
			h, rest, _ := splitURL(feed.urls[r.IntN(len(feed.urls))])
			host, uri = h, rest
		case 3:
			ua = strings.TrimPrefix(feed.uas[r.IntN(len(feed.uas))], "ua:")
		}
		rec := fmt.Sprintf(`{"ClientIP":%q,"ClientRequestHost":%q,"ClientRequestURI":%q,"ClientRequestUserAgent":%q}`, ip, host, uri, ua)
		ev, err := norm.Normalize("http_requests", []byte(rec))
		if err != nil {
			tb.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

// threadCPU measures the CPU time of the benchmark's own thread, which on
// a machine shared with other work is steadier than the wall clock that
// ns/op reports.
type threadCPU struct{ start time.Duration }

func startThreadCPU() threadCPU {
	runtime.LockOSThread()
	return threadCPU{threadCPUTime()}
}

// report adds cpu-ns/op and unlocks the thread.
func (c threadCPU) report(b *testing.B, n int) {
	d := threadCPUTime() - c.start
	runtime.UnlockOSThread()
	if n > 0 && d > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(n), "cpu-ns/op")
	}
}

func threadCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMemory1M reports what the loaded 1M-indicator set keeps: the
// live heap after a GC, and the growth of the process's resident memory
// (after returning freed memory to the OS) and of its peak, against the
// same for a map[string]struct{} of the same strings. Run each
// sub-benchmark in a process of its own with -benchtime 1x
// (-bench 'Memory1M/set', then 'Memory1M/map'): the peak is per process.
func BenchmarkMemory1M(b *testing.B) {
	feed := genFeed(b, b.TempDir())
	for _, c := range []struct {
		name string
		load func() any
	}{
		{"set", func() any {
			set, _, err := LoadDir(feed.dir, benchNow)
			if err != nil {
				b.Fatal(err)
			}
			return set
		}},
		{"map", func() any { return baselineMap(b, feed.dir) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				heap0, rss0, _ := memNow(b)
				start := time.Now()
				v := c.load()
				d := time.Since(start)
				heap1, rss1, hwm := memNow(b)
				runtime.KeepAlive(v)
				b.ReportMetric(float64(heap1-heap0)/(1<<20), "heap-MB")
				b.ReportMetric(float64(rss1-rss0)/(1<<20), "rss-MB")
				b.ReportMetric(float64(hwm-rss0)/(1<<20), "peak-rss-MB")
				b.ReportMetric(d.Seconds(), "load-s")
			}
		})
	}
}

// memNow collects garbage, returns freed memory to the OS, and reports the
// live heap, the resident set and its high-water mark, in bytes.
func memNow(tb testing.TB) (heap, rss, hwm int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skip("no /proc/self/status")
	}
	field := func(name string) int64 {
		for line := range strings.Lines(string(status)) {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				return n << 10
			}
		}
		return 0
	}
	return int64(ms.HeapAlloc), field("VmRSS"), field("VmHWM")
}

// BenchmarkMatchDuringReload measures the latency of single event lookups
// while the 1M-indicator folder is reloaded again and again in another
// goroutine (every file re-read, a new set built and swapped in), against
// the same lookups with no reload. The machine has two cores: the reload
// takes one, and its garbage collection competes with the lookups.
func BenchmarkMatchDuringReload(b *testing.B) {
	feed := genFeed(b, b.TempDir())
	w, err := NewWatcher(feed.dir, Options{Now: func() time.Time { return benchNow }})
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(b, 4096)
	measure := func(b *testing.B, reloading bool) {
		var stop atomic.Bool
		var reloads atomic.Int64
		var wg sync.WaitGroup
		if reloading {
			wg.Go(func() {
				for !stop.Load() {
					if err := w.Reload(); err != nil {
						b.Error(err)
						return
					}
					reloads.Add(1)
				}
			})
		}
		lat := make([]time.Duration, 0, 1<<20)
		dst := make([]Hit, 0, 16)
		i := 0
		for b.Loop() {
			t0 := time.Now()
			dst = w.Current().Match(evs[i&4095], dst[:0])
			lat = append(lat, time.Since(t0))
			i++
		}
		stop.Store(true)
		wg.Wait()
		slices.Sort(lat)
		q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) }
		b.ReportMetric(q(0.5), "p50-ns")
		b.ReportMetric(q(0.99), "p99-ns")
		b.ReportMetric(q(0.9999), "p99.99-ns")
		b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
		if reloading {
			b.ReportMetric(float64(reloads.Load()), "reloads")
		}
	}
	b.Run("idle", func(b *testing.B) { measure(b, false) })
	b.Run("reloading", func(b *testing.B) { measure(b, true) })
}

// BenchmarkLoadSTIX100k loads one STIX bundle of 100,000 indicator
// objects (half addresses, half domains), for the throughput of the STIX
// reader, which decodes one object at a time.
func BenchmarkLoadSTIX100k(b *testing.B) {
	dir := b.TempDir()
	r := rand.New(rand.NewPCG(7, 8))
	file, err := os.Create(filepath.Join(dir, "bundle.json"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(file)
	w.WriteString(`{"type":"bundle","id":"bundle--1","objects":[`)
	for i := range 100_000 {
		if i > 0 {
			w.WriteString(",\n")
		}
		pattern := "[domain-name:value = '" + randDomain(r) + "']"
		if i%2 == 0 {
			pattern = "[ipv4-addr:value = '" + netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}).String() + "']"
		}
		fmt.Fprintf(w, `{"type":"indicator","spec_version":"2.1","id":"indicator--%08d-0000-4000-8000-000000000000","created":"2024-01-01T00:00:00Z","modified":"2024-01-01T00:00:00Z",`+
			`"name":"feed item %d","confidence":70,"indicator_types":["malicious-activity"],"pattern":%q,"pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}`, i, i, pattern)
	}
	w.WriteString("]}\n")
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := file.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		set, _, err := LoadDir(dir, benchNow)
		if err != nil {
			b.Fatal(err)
		}
		if set.Len() != 100_000 {
			b.Fatalf("Len = %d", set.Len())
		}
	}
}
