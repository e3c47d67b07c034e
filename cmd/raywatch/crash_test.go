package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tryPost posts a gzip'd batch and returns the status, or an error when the
// server did not answer (it was killed).
func tryPost(base, key string, gz []byte) (int, string, error) {
	return tryPostEnc(base, key, gz, "gzip")
}

// tryPostEnc posts body with the given Content-Encoding ("" for none).
func tryPostEnc(base, key string, body []byte, enc string) (int, string, error) {
	req, err := http.NewRequest("POST", base+"/plain/batch", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	req.Header.Set("X-SEKOIAIO-INTAKE-KEY", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestCrashLosesNothing posts batches from three clients, kills raywatch
// with SIGKILL after a random number of 2xx answers (requests still in
// flight), restarts it on the same data folder, re-sends what got no 2xx
// (as Logpush does) plus some that did, and checks that every record's
// alerts are there exactly once: the grouped counts equal those computed
// from `raywatch scan` of all the records.
func TestCrashLosesNothing(t *testing.T) {
	const key = "crash-intake-key-0123456789"
	const nBatches, perBatch = 40, 300
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	var plain bytes.Buffer
	bodies := make([][]byte, nBatches)
	for b := range bodies {
		raw := genBatch(b, perBatch, 50)
		plain.Write(raw)
		bodies[b] = gzipBytes(t, raw)
	}

	in := startServe(t, dir, "RAYWATCH_INTAKE_KEY="+key)
	killAfter := int32(3 + rng.IntN(nBatches/2))
	var acks, next atomic.Int32
	acked := make([]atomic.Bool, nBatches)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				b := int(next.Add(1) - 1)
				if b >= nBatches {
					return
				}
				status, _, err := tryPost(in.base, key, bodies[b])
				if err == nil && status == 200 {
					acked[b].Store(true)
					if acks.Add(1) == killAfter {
						in.cmd.Process.Kill()
					}
				}
			}
		})
	}
	wg.Wait()
	in.cmd.Process.Kill()
	<-in.exited
	t.Logf("killed after %d acknowledged batches of %d", acks.Load(), nBatches)
	if int(acks.Load()) == nBatches {
		t.Fatal("every batch was acknowledged before the kill; the test proves nothing")
	}

	again := startServe(t, dir, "RAYWATCH_INTAKE_KEY="+key)
	if m := regexpFind(again.log(), `msg="replaying spooled batches" batches=(\d+)`); m != "" {
		t.Logf("restart replays %s spooled batches", m)
	}
	retried := 0
	for b := range bodies {
		if acked[b].Load() && b%4 != 0 {
			continue
		}
		// Not acknowledged (or, for every fourth, acknowledged and sent
		// again anyway, as after a lost answer).
		retried++
		waitFor(t, 30*time.Second, func() bool {
			status, _, err := tryPost(again.base, key, bodies[b])
			return err == nil && status == 200
		}, fmt.Sprintf("batch %d accepted", b))
	}
	waitFor(t, 60*time.Second, func() bool { n, _ := apiStats(t, again.base, ""); return n == 0 }, "an empty spool")

	want := scanGroups(t, plain.Bytes())
	got := map[string]int{}
	for _, a := range allAlerts(t, again.base, "") {
		first, err := time.Parse(time.RFC3339Nano, a.FirstSeen)
		if err != nil {
			t.Fatal(err)
		}
		k := groupKey(a.Rule.ID, first, a.Event, time.Hour)
		if _, dup := got[k]; dup {
			t.Errorf("two alerts for group %s", k)
		}
		got[k] += a.Count
	}
	if len(got) != len(want) {
		t.Errorf("%d alerts; want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("group %s: count %d; want %d", k, got[k], n)
		}
	}
	t.Logf("%d groups of %d alerts checked after %d re-sent batches", len(want), sum(want), retried)
	if code := again.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// exitCode is the exit status of a finished command (0 for a nil
// error, -1 when it did not run to its end).
func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

func regexpFind(s, re string) string {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if len(m) < 2 {
		return ""
	}
	return m[1]
}

// scanGroups runs `raywatch scan` over records and groups its per-record
// alerts as the server does.
func scanGroups(t *testing.T, records []byte) map[string]int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "records.ndjson")
	if err := os.WriteFile(path, records, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binPath, "scan", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The records hold malformed lines on purpose: exit status 1.
	if err := cmd.Run(); exitCode(err) != 1 {
		t.Fatalf("scan: %v; want exit status 1 (some records malformed)\n%s", err, stderr.String())
	}
	want := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var a apiAlert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("scan output %q: %v", line, err)
		}
		first, err := time.Parse(time.RFC3339Nano, a.FirstSeen)
		if err != nil {
			t.Fatal(err)
		}
		want[groupKey(a.Rule.ID, first, a.Event, time.Hour)]++
	}
	return want
}
