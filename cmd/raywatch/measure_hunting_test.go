package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/store/archive"
)

// The figures of docs/hunting.md. A measurement, not a check: it runs only
// with RAYWATCH_MEASURE_HUNTING=1, without -race (minutes, and a few GB of
// disk in $TMPDIR). RAYWATCH_MEASURE_REPLAY_RECORDS (default 1,000,000)
// and RAYWATCH_MEASURE_ARCHIVE_RECORDS (default 10,000,000) set the sizes.
//
//	RAYWATCH_MEASURE_HUNTING=1 go test -run TestMeasureHunting -v -timeout 60m ./cmd/raywatch/
func TestMeasureHunting(t *testing.T) {
	if os.Getenv("RAYWATCH_MEASURE_HUNTING") == "" {
		t.Skip("a measurement: set RAYWATCH_MEASURE_HUNTING=1 to run it")
	}
	if raceEnabled {
		t.Skip("a measurement: run it without -race")
	}
	t.Run("replay", measureReplay)
	t.Run("retro", measureRetro)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// genBodies renders records [from, from+n) of the traffic generator (1 %
// attacks) as gzip'd NDJSON bodies of per records each, on two
// goroutines; extra, if set, replaces record i by what it returns.
func genBodies(from, n, per, level int, extra func(i int) []byte) [][]byte {
	out := make([][]byte, (n+per-1)/per)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			g := traffic.New(uint64(w + 1))
			for b := w; b < len(out); b += 2 {
				var buf bytes.Buffer
				zw, _ := gzip.NewWriterLevel(&buf, level)
				for i := from + b*per; i < min(from+(b+1)*per, from+n); i++ {
					rec := g.Record(i, 0.01)
					if extra != nil {
						if x := extra(i); x != nil {
							rec = x
						}
					}
					zw.Write(rec)
					zw.Write([]byte{'\n'})
				}
				zw.Close()
				out[b] = buf.Bytes()
			}
		})
	}
	wg.Wait()
	return out
}

// measureReplay compares replay of a folder of Logpush objects with scan
// of the same files, alternately, twice.
func measureReplay(t *testing.T) {
	n := envInt("RAYWATCH_MEASURE_REPLAY_RECORDS", 1_000_000)
	const objects = 200
	root := t.TempDir()
	start := traffic.BaseTime.UTC().Truncate(time.Hour)
	var files []string
	var size int64
	for i, body := range genBodies(0, n, (n+objects-1)/objects, gzip.DefaultCompression, nil) {
		s := start.Add(time.Duration(i) * time.Minute)
		p := filepath.Join(root, s.Format("20060102"), fmt.Sprintf("%s_%s_%08x.log.gz", s.Format("20060102T150405Z"), s.Add(time.Minute).Format("20060102T150405Z"), i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		size += int64(len(body))
	}
	t.Logf("%d records in %d objects, %.1f MB gzip'd", n, len(files), float64(size)/1e6)
	for round := range 2 {
		for _, c := range []struct {
			name string
			args []string
		}{
			{"scan", append([]string{"scan"}, files...)},
			{"replay", []string{"replay", "--state", filepath.Join(t.TempDir(), "state"), root}},
		} {
			t0 := time.Now()
			code, _, errOut := runBin(t, nil, c.args...)
			el := time.Since(t0)
			if code != 0 {
				t.Fatalf("%s = %d\n%s", c.name, code, errOut)
			}
			t.Logf("round %d: raywatch %-6s %8.0f records/s (%.1fs, process included)", round+1, c.name, float64(n)/el.Seconds(), el.Seconds())
		}
	}
}

// measureRetro builds an archive, serves it, and measures a retro-hunt of
// one new IPv4 address over it, then the intake's throughput without a
// hunt, with a hunt of a range running, and without again.
func measureRetro(t *testing.T) {
	n := envInt("RAYWATCH_MEASURE_ARCHIVE_RECORDS", 10_000_000)
	const per = 10_000
	dir := t.TempDir()
	arcDir, iocDir := filepath.Join(dir, "archive"), filepath.Join(dir, "iocs")
	if err := os.MkdirAll(iocDir, 0o755); err != nil {
		t.Fatal(err)
	}
	arc, err := archive.Open(archive.Options{Dir: arcDir})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	received := t0.Add(-6 * time.Hour)
	target := n / 2
	for from := 0; from < n; from += 100 * per { // 100 objects at a time in memory
		bodies := genBodies(from, min(100*per, n-from), per, gzip.DefaultCompression, func(i int) []byte {
			if i != target {
				return nil
			}
			return traffic.Render(nil, traffic.Request{IP: "100.64.7.7", Method: "GET", Host: "shop.example.com", URI: "/c2/checkin",
				UA: "curl/8.5.0", Status: 200, Time: traffic.BaseTime.Add(time.Duration(i) * time.Millisecond), RayID: "c2c2c2c2c2c2c2c2"})
		})
		for i, b := range bodies {
			if _, err := arc.Put(received.Add(time.Duration(from/per+i)*time.Second), "default", fmt.Sprintf("gen%06d", from/per+i), bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := arc.Stats()
	t.Logf("archive: %d records in %d objects, %.2f GB, built in %.0fs", n, st.Objects, float64(st.Bytes)/1e9, time.Since(t0).Seconds())

	const key = "measure-hunting-key-0123456789"
	in := startServe(t, filepath.Join(dir, "data"), "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_ARCHIVE_DIR="+arcDir,
		"RAYWATCH_ARCHIVE_MAX_BYTES=0", "RAYWATCH_IOC_DIR="+iocDir, "RAYWATCH_SPOOL_MAX_BYTES=4294967296")
	defer in.stop()
	if err := os.WriteFile(filepath.Join(iocDir, "one.txt"), []byte("100.64.7.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := waitHunt(t, in.base, 1)
	t.Logf("retro-hunt of one new IPv4 address over %d records: %.1fs (%.0f records/s), %d match(es)",
		h.Records, h.Finished.Sub(h.Started).Seconds(), float64(h.Records)/h.Finished.Sub(h.Started).Seconds(), h.Matches)

	p := newMeasurePoster(t, in.base, key)
	const batches = 300
	t.Logf("intake without a hunt: %.0f records/s", p.run(t, batches))
	if err := os.WriteFile(filepath.Join(iocDir, "range.txt"), []byte("100.64.0.0/16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { return lastHunt(t, in.base).State == "running" }, "the range hunt running")
	before := lastHunt(t, in.base).Records
	rate := p.run(t, batches)
	during := lastHunt(t, in.base)
	t.Logf("intake with a hunt of a range running: %.0f records/s (the hunt read %d records meanwhile, paused while batches waited)", rate, during.Records-before)
	h = waitHunt(t, in.base, 2)
	t.Logf("retro-hunt of the range over %d records: %.1fs, intake included", h.Records, h.Finished.Sub(h.Started).Seconds())
	t.Logf("intake without a hunt, again: %.0f records/s", p.run(t, batches))
}

// measureHunt is what the measurement reads of a hunt.
type measureHunt struct {
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Records  int64     `json:"records"`
	Matches  int       `json:"matches"`
}

func lastHunt(t *testing.T, base string) measureHunt {
	t.Helper()
	var rep struct {
		Hunts []measureHunt `json:"hunts"`
	}
	apiGet(t, base, "/api/v1/retro", &rep)
	if len(rep.Hunts) == 0 {
		return measureHunt{}
	}
	return rep.Hunts[0]
}

// waitHunt waits for the n-th hunt to finish and returns it.
func waitHunt(t *testing.T, base string, n int) measureHunt {
	t.Helper()
	var h measureHunt
	waitFor(t, 30*time.Minute, func() bool {
		var rep struct {
			Hunts []measureHunt `json:"hunts"`
		}
		apiGet(t, base, "/api/v1/retro", &rep)
		if len(rep.Hunts) < n || rep.Hunts[0].State != "done" {
			return false
		}
		h = rep.Hunts[0]
		return true
	}, fmt.Sprintf("hunt %d done", n))
	return h
}

// measurePoster posts 1,000-record batches, each made unique by a marker
// record, with four clients.
type measurePoster struct {
	base, key string
	bodies    [][]byte
	seq       atomic.Int64
	client    *http.Client
}

func newMeasurePoster(t *testing.T, base, key string) *measurePoster {
	return &measurePoster{base: base, key: key, bodies: genBodies(50_000_000, 100*999, 999, gzip.DefaultCompression, nil),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
}

// run posts batches and returns the records processed per second, from
// the first post to the last record processed.
func (p *measurePoster) run(t *testing.T, batches int) float64 {
	t.Helper()
	before := p.processed(t)
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for next.Add(1) <= int64(batches) {
				p.post(t)
			}
		})
	}
	wg.Wait()
	want := before + float64(batches*1000)
	waitFor(t, 10*time.Minute, func() bool { return p.processed(t) >= want }, "the batches processed")
	return float64(batches*1000) / time.Since(t0).Seconds()
}

func (p *measurePoster) post(t *testing.T) {
	n := p.seq.Add(1)
	var tail bytes.Buffer
	zw := gzip.NewWriter(&tail)
	zw.Write(traffic.Marker(n))
	zw.Close()
	body := append(bytes.Clone(p.bodies[int(n)%len(p.bodies)]), tail.Bytes()...)
	for {
		req, _ := http.NewRequest("POST", p.base+"/plain/batch", bytes.NewReader(body))
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("X-SEKOIAIO-INTAKE-KEY", p.key)
		resp, err := p.client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return
		}
		if resp.StatusCode != 429 && resp.StatusCode != 503 {
			t.Errorf("intake answered %d", resp.StatusCode)
			return
		}
		time.Sleep(50 * time.Millisecond) // the intake asked to come back later
	}
}

// processed reads raywatch_records_processed_total.
func (p *measurePoster) processed(t *testing.T) float64 {
	t.Helper()
	resp, err := p.client.Get(p.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "raywatch_records_processed_total "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
