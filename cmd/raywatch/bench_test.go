package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/bench"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/command"
)

// TestBenchSmoke runs raywatch bench on 1,000 records so that the harness
// keeps working; it asserts nothing about speed.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every bench phase")
	}
	out := filepath.Join(t.TempDir(), "bench.json")
	traceFile := filepath.Join(t.TempDir(), "trace.out")
	var stdout, stderr bytes.Buffer
	code := command.Run(context.Background(), []string{"bench", "--records", "1000", "--iocs", "200", "--clients", "2",
		"--rate", "2000", "--latency-duration", "1s", "--attack-rate", "0.05", "--json", out, "--trace", traceFile}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("raywatch bench = %d\n%s", code, stderr.String())
	}
	for _, want := range []string{"normalize", "engine Match", "IOC set Match", "scan", "whole path", "2xx -> alert on the websocket", "RSS"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(traceFile); err != nil || fi.Size() == 0 {
		t.Errorf("--trace %s: %v; want an execution trace of the whole path", traceFile, err)
	}
	var rep bench.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	// normalize, engine hot and cold, IOC set hot and cold, scan, whole path.
	if len(rep.Rows) != 7 || rep.Latency == nil || rep.Latency.Seen == 0 {
		t.Errorf("JSON report = %s; want 7 rows and latency figures", b)
	}
	for _, r := range rep.Rows {
		if r.RecordsPerSec <= 0 || r.Ratio <= 0 {
			t.Errorf("row %q: %v records/s, ratio %v; want both positive", r.Name, r.RecordsPerSec, r.Ratio)
		}
		if strings.HasPrefix(r.Name, "whole path") && r.CPUMicrosPerRecord <= 0 {
			t.Errorf("row %q: %v µs of CPU a record; want it measured", r.Name, r.CPUMicrosPerRecord)
		}
	}
}
