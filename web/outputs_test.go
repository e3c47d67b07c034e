package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOutputsReport checks GET /api/v1/outputs: behind the token, the
// report as JSON, a 500 without the error's text when it fails, and no
// route without a report.
func TestOutputsReport(t *testing.T) {
	at := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	want := OutputsReport{Outputs: []OutputStatus{{
		Name: "webhook-1", Type: "webhook", Target: "https://hooks.example.com/…", MinLevel: "high", State: "retrying",
		Queue: 3, Oldest: at, Dropped: 1, Delivered: 7, Retried: 2, LastError: "webhook answered 503 Service Unavailable",
		LastErrorAt: at, LastSuccess: at.Add(-time.Minute), NextAttempt: at.Add(2 * time.Second),
	}}}
	var fail atomic.Bool
	ts, _, _ := newTestServerOpts(t, func(o *Options) {
		o.DashboardToken = testToken
		o.Reports.Outputs = func(context.Context) (OutputsReport, error) {
			if fail.Load() {
				return OutputsReport{}, errors.New("outbox stats of output webhook-1: secret-detail")
			}
			return want, nil
		}
	})
	bearer := http.Header{"Authorization": {"Bearer " + testToken}}
	if status, _ := get(t, http.DefaultClient, ts.URL+"/api/v1/outputs", nil); status != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/outputs without token = %d; want 401", status)
	}
	status, body := get(t, http.DefaultClient, ts.URL+"/api/v1/outputs", bearer)
	if status != http.StatusOK {
		t.Fatalf("GET /api/v1/outputs = %d %s", status, body)
	}
	var got OutputsReport
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("GET /api/v1/outputs (-want +got):\n%s", d)
	}
	fail.Store(true)
	if status, body := get(t, http.DefaultClient, ts.URL+"/api/v1/outputs", bearer); status != http.StatusInternalServerError || strings.Contains(body, "secret-detail") {
		t.Errorf("failing report = %d %q; want 500 without the error's text", status, body)
	}

	bare, _ := newTestServer(t, 1<<20)
	if status, _ := get(t, http.DefaultClient, bare.URL+"/api/v1/outputs", nil); status != http.StatusNotFound {
		t.Errorf("GET /api/v1/outputs without a report = %d; want 404", status)
	}
}
