package replay_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/replay"
	"github.com/raywatch/raywatch/rules/alert"
)

func statAlert(t time.Time, ip, host string) alert.Alert {
	return alert.Alert{Count: 1, FirstSeen: t, LastSeen: t, Event: map[string]any{
		"source":      map[string]any{"ip": ip},
		"destination": map[string]any{"address": host},
	}}
}

func TestStats(t *testing.T) {
	s := replay.NewStats(2)
	d := time.Date(2026, 1, 5, 23, 0, 0, 0, time.UTC)
	for _, a := range []alert.Alert{
		statAlert(d, "192.0.2.1", "Shop.example.com"),
		statAlert(d.Add(30*time.Minute), "192.0.2.1", "shop.example.com"),
		statAlert(d.Add(2*time.Hour), "192.0.2.2", "api.example.com"),
		// Two days later: the day between counts zero.
		statAlert(d.Add(49*time.Hour), "192.0.2.3", "api.example.com"),
		{Count: 1, FirstSeen: d.Add(50 * time.Hour), Event: map[string]any{"url": map[string]any{"domain": "cdn.example.com"}, "source": map[string]any{"ip": "192.0.2.1"}}},
	} {
		s.Add(a)
	}
	got := s.Report()
	want := replay.StatsReport{
		Alerts: 5, First: d, Last: d.Add(50 * time.Hour),
		PerDay:     []replay.Count{{Value: "2026-01-05", Alerts: 2}, {Value: "2026-01-06", Alerts: 1}, {Value: "2026-01-07", Alerts: 0}, {Value: "2026-01-08", Alerts: 2}},
		TopIPs:     []replay.Count{{Value: "192.0.2.1", Alerts: 3}, {Value: "192.0.2.2", Alerts: 1}},
		TopDomains: []replay.Count{{Value: "api.example.com", Alerts: 2}, {Value: "shop.example.com", Alerts: 2}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Report() (-want +got):\n%s", diff)
	}
	var b bytes.Buffer
	if err := s.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"5 alerts from 2026-01-05T23:00:00Z", "2026-01-07  0", "192.0.2.1  3", "shop.example.com  2"} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, b.String())
		}
	}
	if r := replay.NewStats(0).Report(); r.Alerts != 0 || len(r.PerDay) != 0 {
		t.Errorf("empty report = %+v", r)
	}
}
