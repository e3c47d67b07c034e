package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// failingSpool is a spool whose disk fails the way a full one does: at
// Begin, after some body bytes, or at Commit. Its errors name files, as
// the store's do.
type failingSpool struct {
	fakeBackend
	failAt    string // "begin", "write" or "commit"
	failAfter int    // body bytes written before a write fails
	failWith  error
}

func (f *failingSpool) Begin(intake string) (SpoolWriter, error) {
	if f.failAt == "begin" {
		return nil, f.failWith
	}
	return &failingWriter{f: f}, nil
}

type failingWriter struct {
	f *failingSpool
	n int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.f.failAt == "write" && w.n+len(p) > w.f.failAfter {
		return 0, w.f.failWith
	}
	w.n += len(p)
	return len(p), nil
}

func (w *failingWriter) Commit(id string, lines int) (bool, error) {
	if w.f.failAt == "commit" {
		return false, w.f.failWith
	}
	return false, nil
}

func (w *failingWriter) Abort() {}

// errDiskFull is the error of a full disk as the store's spool reports it.
var errDiskFull = fmt.Errorf("spool: write /srv/raywatch-data/spool/tmp-3141: %w", &os.PathError{Op: "write", Path: "/srv/raywatch-data/spool/tmp-3141", Err: syscall.ENOSPC})

// TestIntakeStorageFailure posts batches, gzip'd and plain, to a spool
// whose disk is full at each step: the answer is 503 with Retry-After (a
// 4xx would tell Logpush the data is bad), no body names a file, and the
// log and the rejected-batches metric give the reason storage. A spool
// over its budget still answers 429.
func TestIntakeStorageFailure(t *testing.T) {
	batch := strings.Repeat("{\"RayID\":\"1\",\"ClientRequestURI\":\"/x\"}\n", 20)
	// A batch whose gzip'd form is several reads long, so that the disk
	// can fill in the middle of it.
	var big strings.Builder
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		fmt.Fprintf(&big, "{\"RayID\":\"%x\",\"ClientRequestURI\":\"/%x\"}\n", i, rng.Uint64())
	}
	bigGz := gz(t, big.String())
	if len(bigGz) < 3*64<<10 {
		t.Fatalf("big batch is %d bytes gzip'd; want several 64 KiB reads", len(bigGz))
	}
	for _, tc := range []struct {
		name       string
		failAt     string
		failAfter  int
		err        error
		body       []byte
		wantStatus int
		wantReason string
	}{
		{"gzip, first write fails", "write", 0, errDiskFull, gz(t, batch), 503, "storage"},
		{"plain, first write fails", "write", 0, errDiskFull, []byte(batch), 503, "storage"},
		{"gzip, disk fills mid-body", "write", 100 << 10, errDiskFull, bigGz, 503, "storage"},
		{"plain, disk fills mid-body", "write", 100 << 10, errDiskFull, []byte(big.String()), 503, "storage"},
		{"begin fails", "begin", 0, errDiskFull, gz(t, batch), 503, "storage"},
		{"commit fails", "commit", 0, errDiskFull, gz(t, batch), 503, "storage"},
		{"I/O error", "write", 0, fmt.Errorf("spool: sync /srv/raywatch-data/spool/tmp-1: %w", syscall.EIO), gz(t, batch), 503, "storage"},
		{"over budget", "write", 0, fmt.Errorf("%w: spool over its disk budget", ErrBusy), gz(t, batch), 429, "spool_full"},
		{"over budget mid-body", "write", 100 << 10, fmt.Errorf("%w: spool over its disk budget", ErrBusy), bigGz, 429, "spool_full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			hub := NewHub()
			sp := &failingSpool{fakeBackend: fakeBackend{hub: hub}, failAt: tc.failAt, failAfter: tc.failAfter, failWith: tc.err}
			s, err := New(Options{
				IntakeKeys:           map[string]string{"zone-a": "key-a"},
				MaxDecompressedBytes: 16 << 20,
				Spool:                sp, Alerts: &sp.fakeBackend, Hub: hub, Registry: reg,
				Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			s.SetReady(true)
			rec := httptest.NewRecorder()
			req := httptest.NewRequestWithContext(context.Background(), "POST", "/plain/batch", bytes.NewReader(tc.body))
			req.Header.Set(IntakeKeyHeader, "key-a")
			s.ServeHTTP(rec, req)
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.wantStatus {
				t.Fatalf("POST = %d %s; want %d", rec.Code, body, tc.wantStatus)
			}
			if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra <= 0 {
				t.Errorf("Retry-After %q; want a number of seconds", rec.Header().Get("Retry-After"))
			}
			if bytes.ContainsAny(body, "/\\") || bytes.Contains(body, []byte("tmp-")) {
				t.Errorf("answer %s names a path; want none", body)
			}
			got := testutil.ToFloat64(s.metrics.rejected.WithLabelValues(tc.wantReason))
			if got != 1 {
				t.Errorf("raywatch_intake_rejected_batches_total{reason=%q} = %v; want 1", tc.wantReason, got)
			}
			rejects := s.rejectedBatches()
			if len(rejects) != 1 || rejects[0].Reason != tc.wantReason || strings.ContainsAny(rejects[0].Detail, "/\\") {
				t.Errorf("rejected batches %+v; want one with reason %s and no path", rejects, tc.wantReason)
			}
			if !strings.Contains(logs.String(), "reason="+tc.wantReason) {
				t.Errorf("log %q; want reason=%s", logs.String(), tc.wantReason)
			}
			if tc.wantReason == "storage" && !strings.Contains(logs.String(), tc.err.Error()) {
				t.Errorf("log %q; want the spool's error %q", logs.String(), tc.err)
			}
			if errors.Is(tc.err, syscall.ENOSPC) && !strings.Contains(logs.String(), "no space left on device") {
				t.Errorf("log %q; want it to say the disk is full", logs.String())
			}
		})
	}
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

var _ http.Handler = (*Server)(nil)
