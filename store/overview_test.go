package store

import (
	"context"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
)

func TestOverviewAndTextSearch(t *testing.T) {
	s := openWith(t, Options{})
	ctx := context.Background()
	base := int64(1795500000)
	a1 := hit(base, "r1", "k1", "203.0.113.1", "a.example", "ua1")
	a1.Event["url"] = map[string]any{"original": "/pool/job/priority/normal"}
	a1.Event["source"].(map[string]any)["geo"] = map[string]any{"country_name": "fr"}
	a1.Rule.Level = "high"
	a2 := hit(base+600, "r1", "k2", "203.0.113.1", "a.example", "ua1")
	a2.Rule.Level = "high"
	a3 := hit(base+1200, "r2", "k3", "203.0.113.2", "b.example", "ua2")
	a3.Rule.Level = "medium"
	old := hit(base-7200, "r2", "k4", "203.0.113.9", "b.example", "ua2")
	if _, err := s.Put(ctx, []alert.Alert{a1, a2, a3, old}); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.List(ctx, Query{Text: "PRIORITY/normal"})
	if err != nil || len(got) != 1 || got[0].RecordKey != "k1" {
		t.Errorf("List(Text: path) = %d alerts, %v; want the one with that path", len(got), err)
	}
	to := time.Unix(base+1800, 0)
	ov, err := s.Overview(ctx, to.Add(-time.Hour), to, 10)
	if err != nil {
		t.Fatal(err)
	}
	if ov.Alerts != 3 || ov.Events != 3 || ov.ByLevel["high"] != 2 || ov.ByStatus["new"] != 3 {
		t.Errorf("overview alerts %d events %d levels %v statuses %v; want 3, 3, high 2, new 3", ov.Alerts, ov.Events, ov.ByLevel, ov.ByStatus)
	}
	var series int64
	for _, b := range ov.Series {
		series += b.Alerts
	}
	if series != 3 || ov.BucketSeconds != 60 {
		t.Errorf("series holds %d alerts in %ds buckets; want 3 in 60s buckets", series, ov.BucketSeconds)
	}
	if len(ov.TopRules) != 2 || ov.TopRules[0].Key != "r1" || ov.TopRules[0].Alerts != 2 {
		t.Errorf("top rules = %+v; want r1 (2) first", ov.TopRules)
	}
	if len(ov.TopSources) != 2 || ov.TopSources[0].Key != "203.0.113.1" {
		t.Errorf("top sources = %+v", ov.TopSources)
	}
	if len(ov.TopCountries) != 1 || ov.TopCountries[0].Key != "fr" {
		t.Errorf("top countries = %+v; want fr", ov.TopCountries)
	}
	if n, err := s.Newest(ctx); err != nil || !n.Equal(time.Unix(base+1200, 0)) {
		t.Errorf("Newest = %v, %v; want base+1200", n, err)
	}
}

func TestTransitionComment(t *testing.T) {
	s := openWith(t, Options{})
	ctx := context.Background()
	a := hit(1795500000, "r1", "k1", "203.0.113.1", "a.example", "ua1")
	stored, err := s.Put(ctx, []alert.Alert{a})
	if err != nil {
		t.Fatal(err)
	}
	id := stored[0].ID
	at := time.Unix(1795600000, 0)
	if _, err := s.Transition(ctx, id, alert.StatusChange{Status: alert.StatusAcknowledged, By: "ann", At: at, Comment: "mine"}); err != nil {
		t.Fatal(err)
	}
	// A comment alone (same status) is recorded; nothing without one.
	if _, err := s.Transition(ctx, id, alert.StatusChange{Status: alert.StatusAcknowledged, By: "ann", At: at, Comment: "still mine"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Transition(ctx, id, alert.StatusChange{Status: alert.StatusAcknowledged, By: "ann", At: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.StatusHistory) != 2 || got.StatusHistory[0].Comment != "mine" || got.StatusHistory[1].Comment != "still mine" {
		t.Errorf("history = %+v; want the two commented changes", got.StatusHistory)
	}
	if l, _, _ := s.List(ctx, Query{Status: alert.StatusAcknowledged}); len(l) != 1 {
		t.Errorf("List(acknowledged) = %d alerts; want 1", len(l))
	}
}

func TestTextSearchEscapedCharacters(t *testing.T) {
	s := openWith(t, Options{})
	ctx := context.Background()
	a := hit(1795500000, "r1", "k1", "203.0.113.1", "a.example", `<script>x</script> "q" & \`)
	b := hit(1795500001, "r1", "k2", "203.0.113.2", "a.example", "Lemon-Duck-ab-CD")
	if _, err := s.Put(ctx, []alert.Alert{a, b}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text string
		want int
	}{
		{"<SCRIPT>", 1}, {`"q" &`, 1}, {`\`, 1}, {"lemon-duck", 1}, {"203.0.113", 2}, {"absent", 0},
	} {
		got, _, err := s.List(ctx, Query{Text: tc.text})
		if err != nil || len(got) != tc.want {
			t.Errorf("List(Text: %q) = %d alerts, %v; want %d", tc.text, len(got), err, tc.want)
		}
	}
}
