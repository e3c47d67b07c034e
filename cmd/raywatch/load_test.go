package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestLoad measures the intake: several clients post 1,000-record gzip
// batches on loopback; it reports the records per second accepted and
// processed, and the latency from a batch's 2xx to its alert reaching a
// websocket client (so committed, then published). It also times the 2xx
// for one 100 MB batch. It runs only with RAYWATCH_LOAD=1, and should run
// without -race:
//
//	RAYWATCH_LOAD=1 go test -run TestLoad -v ./cmd/raywatch
//
// RAYWATCH_LOAD_CLIENTS (4) and RAYWATCH_LOAD_SECONDS (20) tune it;
// RAYWATCH_LOAD_RATE (batches/s over all clients, default unlimited) holds
// the offered load below what detection sustains, to measure latency
// without a backlog. It asserts nothing about speed.
func TestLoad(t *testing.T) {
	if os.Getenv("RAYWATCH_LOAD") != "1" {
		t.Skip("set RAYWATCH_LOAD=1 to measure the intake")
	}
	clients := envIntOr("RAYWATCH_LOAD_CLIENTS", 4)
	seconds := envIntOr("RAYWATCH_LOAD_SECONDS", 20)
	rate := envIntOr("RAYWATCH_LOAD_RATE", 0)
	const key = "load-intake-key-0123456789"
	const perBatch = 1000

	// One marker record per batch, from a source IP of its own, makes one
	// new alert that identifies the batch.
	const pool = 800
	bodies := make([][]byte, pool)
	var gzBytes, plainBytes int
	for b := range bodies {
		raw := genBatch(b, perBatch-1, 0)
		marker := fmt.Sprintf(`{"ClientIP":"10.%d.%d.%d","ClientRequestHost":"m.example.com","ClientRequestMethod":"GET","ClientRequestURI":"/","ClientRequestUserAgent":"Lemon-Duck-load-MARK","EdgeStartTimestamp":%d,"RayID":"feed%012x"}`+"\n",
			b>>16&255, b>>8&255, b&255, int64(1795500000000000000)+int64(b)*1e9, b)
		raw = append(raw, marker...)
		plainBytes += len(raw)
		bodies[b] = gzipBytes(t, raw)
		gzBytes += len(bodies[b])
	}
	t.Logf("batches: %d records, %d bytes gzip'd (%d plain) on average", perBatch, gzBytes/pool, plainBytes/pool)

	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(in.base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	var mu sync.Mutex
	acked := map[string]time.Time{} // marker IP -> 2xx time
	seen := map[string]time.Time{}  // marker IP -> alert on the websocket
	go func() {
		for {
			_, msg, err := ws.ReadMessage()
			now := time.Now()
			if err != nil {
				return
			}
			var m struct {
				Alert struct {
					Event struct {
						Source struct {
							IP string `json:"ip"`
						} `json:"source"`
					} `json:"event"`
				} `json:"alert"`
			}
			if json.Unmarshal(msg, &m) == nil && strings.HasPrefix(m.Alert.Event.Source.IP, "10.") {
				mu.Lock()
				if _, ok := seen[m.Alert.Event.Source.IP]; !ok {
					seen[m.Alert.Event.Source.IP] = now
				}
				mu.Unlock()
			}
		}
	}()

	var next, done, failed atomic.Int64
	var answer []time.Duration
	start := time.Now()
	deadline := start.Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var tick <-chan time.Time
			if rate > 0 {
				tk := time.NewTicker(time.Duration(clients) * time.Second / time.Duration(rate))
				defer tk.Stop()
				tick = tk.C
			}
			for time.Now().Before(deadline) {
				if tick != nil {
					<-tick
				}
				b := int(next.Add(1) - 1)
				if b >= pool {
					return
				}
				t0 := time.Now()
				status, _, err := tryPost(in.base, key, bodies[b])
				t1 := time.Now()
				if err != nil || status != 200 {
					failed.Add(1)
					continue
				}
				done.Add(1)
				mu.Lock()
				acked[fmt.Sprintf("10.%d.%d.%d", b>>16&255, b>>8&255, b&255)] = t1
				answer = append(answer, t1.Sub(t0))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	intakeDur := time.Since(start)
	waitFor(t, 5*time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= len(acked)
	}, "every batch's alert on the websocket")
	allDur := time.Since(start)

	var lat []time.Duration
	mu.Lock()
	for ip, t1 := range acked {
		lat = append(lat, seen[ip].Sub(t1))
	}
	mu.Unlock()
	slices.Sort(lat)
	slices.Sort(answer)
	q := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	n := done.Load()
	t.Logf("offered rate: %d batches/s (0: as fast as the clients go)", rate)
	t.Logf("%d clients, %d batches (%d records) acknowledged in %v, %d refused", clients, n, n*perBatch, intakeDur.Round(time.Millisecond), failed.Load())
	t.Logf("intake: %.0f records/s acknowledged; answer p50 %v p99 %v", float64(n*perBatch)/intakeDur.Seconds(), q(answer, .5), q(answer, .99))
	t.Logf("end to end: %.0f records/s processed (last alert committed after %v)", float64(n*perBatch)/allDur.Seconds(), allDur.Round(time.Millisecond))
	t.Logf("2xx to alert on the websocket: p50 %v p99 %v max %v", q(lat, .5), q(lat, .99), lat[len(lat)-1])

	// One 100 MB batch (decompressed), gzip'd and plain.
	var big []byte
	for b := 10000; len(big) < 100<<20; b++ {
		big = append(big, genBatch(b, 1000, 0)...)
	}
	bigGz := gzipBytes(t, big)
	for _, c := range []struct {
		name string
		body []byte
		enc  string
	}{{"gzip", bigGz, "gzip"}, {"plain", big, ""}} {
		t0 := time.Now()
		status, body, err := tryPostEnc(in.base, key, c.body, c.enc)
		t.Logf("100 MB batch (%d records, %d bytes sent, %s): %d in %v %v %.80s", strings.Count(string(big), "\n"), len(c.body), c.name, status, time.Since(t0).Round(time.Millisecond), err, body)
		// Make the plain one a different batch.
		big = append(big, genBatch(99999, 1, 0)...)
	}
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

func envIntOr(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
