package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
)

// BenchmarkCommitGrouped commits batches of 100 per-record alerts that
// fold into 50 grouped alerts (rule, source IP and host within the hour),
// as a rule that fires on common traffic does: the alerts are rewritten at
// every batch with their samples. The figure is records/s.
func BenchmarkCommitGrouped(b *testing.B) {
	benchCommitGrouped(b, Options{GroupWindow: time.Hour})
}

// BenchmarkCommitGroupedOutbox is BenchmarkCommitGrouped with three
// notification outputs, whose jobs the commits queue.
func BenchmarkCommitGroupedOutbox(b *testing.B) {
	benchCommitGrouped(b, Options{GroupWindow: time.Hour, Outputs: []string{"alertmanager-1", "webhook-1", "syslog"}})
}

func benchCommitGrouped(b *testing.B, opts Options) {
	s, err := Open(filepath.Join(b.TempDir(), "alerts.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	doc := func(ip int, i int) map[string]any {
		return map[string]any{
			"source":      map[string]any{"ip": fmt.Sprintf("198.51.100.%d", ip)},
			"destination": map[string]any{"address": "shop.example.com"},
			"url":         map[string]any{"original": fmt.Sprintf("/products/%d?q=red+shoes", i), "path": "/products"},
			"user_agent":  map[string]any{"original": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
			"http":        map[string]any{"request": map[string]any{"method": "GET"}, "response": map[string]any{"status_code": 200}},
			"cloudflare":  map[string]any{"RayID": fmt.Sprintf("8e%014x", i), "EdgeColoCode": "FRA", "ClientASN": 13335},
		}
	}
	ctx := context.Background()
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		alerts := make([]alert.Alert, 100)
		for j := range alerts {
			n++
			key := fmt.Sprintf("8e%014x", n)
			at := t0.Add(time.Duration(n) * time.Millisecond)
			alerts[j] = alert.Alert{ID: alert.AlertID(at, "r1", key), Rule: alert.RuleRef{ID: "r1", Title: "Rule", Level: "medium"},
				Count: 1, FirstSeen: at, LastSeen: at, Status: alert.StatusNew, Intake: "bench", Dataset: "http_requests",
				RecordKey: key, Matches: []alert.Match{{Field: "user_agent.original", Value: "Googlebot"}}, Event: doc(j%50, n)}
		}
		if _, err := s.Commit(ctx, Batch{Alerts: alerts}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
