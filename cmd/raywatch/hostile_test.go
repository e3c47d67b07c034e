package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestHostileInput sends what a stranger or a broken sender might, and
// checks each documented answer, then that the server is still healthy and
// still processes a good batch.
func TestHostileInput(t *testing.T) {
	const key = "hostile-intake-key-0123456789"
	const token = "hostile-dashboard-token-0123456789"
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_DASHBOARD_TOKEN="+token,
		"RAYWATCH_SPOOL_MAX_BYTES=8388608", "RAYWATCH_MAX_DECOMPRESSED_BYTES=33554432")

	send := func(key string, body []byte, enc string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", in.base+"/plain/batch", bytes.NewReader(body))
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		if key != "" {
			req.Header.Set("X-SEKOIAIO-INTAKE-KEY", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("server did not answer: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	// A bomb of n MiB of zeros: one gzip member of 1 MiB (about 1 KiB)
	// repeated, which gunzips as one stream.
	bombBody := func(n int) []byte {
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		w.Write(make([]byte, 1<<20))
		w.Close()
		return bytes.Repeat(b.Bytes(), n)
	}
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(rand.IntN(256))
	}
	garbage[0] = 'x' // not gzip's magic
	good := genBatch(1000, 20, 0)
	tenth := genBatch(1001, 100, 10) // 10 malformed lines
	longLine := append(append([]byte(`{"RayID":"`), bytes.Repeat([]byte("A"), 10<<20)...), "\"}\n"...)
	longLine = append(longLine, genBatch(1002, 5, 0)...)
	badUTF8 := append([]byte(`{"ClientIP":"198.51.100.200","ClientRequestUserAgent":"Lemon-Duck-ab-cd","ClientRequestHost":"h\xff\xfe.example","EdgeStartTimestamp":1795500000000000000,"RayID":"ffff000000000001"}`), '\n')
	badUTF8 = append(badUTF8, "\xc3\x28 not json at all\n"...)
	array := []byte("[" + strings.Join(strings.Split(strings.TrimSpace(string(genBatch(1003, 10, 0))), "\n"), ",") + "]")

	tests := []struct {
		name       string
		key        string
		body       []byte
		enc        string
		wantStatus int
		wantBody   string
	}{
		{"missing key", "", gzipBytes(t, good), "gzip", 401, "missing intake key"},
		{"wrong key", key + "x", gzipBytes(t, good), "gzip", 401, "wrong intake key"},
		{"gzip bomb (1 GiB of zeros)", key, bombBody(1024), "gzip", 413, "decompressed"},
		{"truncated gzip", key, gzipBytes(t, good)[:200], "gzip", 400, "bad gzip"},
		{"garbage declared gzip", key, garbage, "gzip", 400, "bad gzip"},
		{"garbage, plain: every line malformed", key, garbage, "", 200, "accepted"},
		{"10 MB line among good ones", key, gzipBytes(t, longLine), "gzip", 200, `"accepted":6`},
		{"invalid UTF-8", key, badUTF8, "", 200, "accepted"},
		{"JSON array body", key, gzipBytes(t, array), "gzip", 200, "accepted"},
		{"every tenth line malformed", key, gzipBytes(t, tenth), "gzip", 200, `"accepted":100`},
		{"unknown encoding", key, good, "br", 415, "Content-Encoding"},
		{"over the spool budget (9 MB plain)", key, bytes.Repeat([]byte("A"), 9<<20), "", 429, "spool full"},
	}
	for _, tt := range tests {
		status, h, body := send(tt.key, tt.body, tt.enc)
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: %d %.200s; want %d with %q", tt.name, status, body, tt.wantStatus, tt.wantBody)
		}
		if status == 429 && h.Get("Retry-After") == "" {
			t.Errorf("%s: 429 without Retry-After", tt.name)
		}
	}

	// API, metrics and websocket without the token; websocket from a
	// foreign origin.
	for _, path := range []string{"/api/v1/alerts", "/api/v1/stats", "/api/v1/rejects", "/metrics", "/ws"} {
		resp, err := http.Get(in.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("GET %s without token = %d; want 401", path, resp.StatusCode)
		}
	}
	wsURL := "ws" + strings.TrimPrefix(in.base, "http") + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("websocket without token: %v; want 401", err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + token}, "Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("websocket from a foreign Origin: %v; want 403", err)
	}

	// Still healthy, and a good batch still makes its alerts.
	if status, _, _ := send(key, gzipBytes(t, good), "gzip"); status != 200 {
		t.Fatalf("good batch after the hostile ones = %d", status)
	}
	waitFor(t, 60*time.Second, func() bool { n, _ := apiStats(t, in.base, token); return n == 0 }, "an empty spool")
	var lemon int
	for _, a := range allAlerts(t, in.base, token) {
		if a.Rule.Title == "Lemon Duck User-Agent" {
			lemon += a.Count
		}
	}
	// Lemon Duck records: 3 in good, 14 in tenth (minus malformed), 1 in
	// longLine's good lines, 1 in the array, 1 in badUTF8 (if it parses).
	if lemon < 5 {
		t.Errorf("Lemon Duck records counted = %d; want the good lines of every batch processed", lemon)
	}
	rejects := rejectedRecords(t, in.base, token)
	reasons := fmt.Sprint(rejects)
	if !strings.Contains(reasons, "record too long") || len(rejects) < 11 {
		t.Errorf("rejects = %d records (%.300s); want the long line and the tenth lines", len(rejects), reasons)
	}
	resp, err := http.Get(in.base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after hostile input = %v, %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", in.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`raywatch_intake_rejected_batches_total{reason="decompressed_too_large"} 1`,
		`raywatch_intake_rejected_batches_total{reason="wrong_key"} 1`,
		`raywatch_intake_rejected_batches_total{reason="spool_full"} 1`,
		`raywatch_records_rejected_total`,
		`raywatch_batch_latency_seconds_bucket`,
		`raywatch_websocket_clients`,
		`raywatch_store_bytes`,
		`raywatch_spool_batches 0`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
	for _, secret := range []string{key, token} {
		if strings.Contains(in.log(), secret) || bytes.Contains(metrics, []byte(secret)) {
			t.Error("a secret appears in the log or the metrics")
		}
	}
	if n := strings.Count(in.log(), `msg="batch rejected"`); n < 7 {
		t.Errorf("%d 'batch rejected' log lines; want one per rejected batch (7+)", n)
	}
}
