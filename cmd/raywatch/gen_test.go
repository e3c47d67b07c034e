package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
)

// genBatch returns n records of batch b as NDJSON, with a malformed line
// every malformedEvery lines (0 for none).
func genBatch(b, n, malformedEvery int) []byte { return traffic.SequenceBatch(b, n, malformedEvery) }

// groupKey names a grouped alert independently of its id: rule, window
// slot, source IP and host.
func groupKey(rule string, firstSeen time.Time, event map[string]any, window time.Duration) string {
	get := func(a, b string) string {
		m, _ := event[a].(map[string]any)
		s, _ := m[b].(string)
		return s
	}
	return fmt.Sprintf("%s|%d|%s|%s", rule, firstSeen.Truncate(window).Unix(), get("source", "ip"), get("destination", "address"))
}

// allAlerts pages through /api/v1/alerts.
func allAlerts(t *testing.T, base, token string) []apiAlert {
	t.Helper()
	var out []apiAlert
	cursor := ""
	for {
		req, _ := http.NewRequest("GET", base+"/api/v1/alerts?limit=500&cursor="+cursor, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Alerts []apiAlert `json:"alerts"`
			Next   string     `json:"next"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Alerts...)
		if page.Next == "" {
			return out
		}
		cursor = page.Next
	}
}

// apiStats reads /api/v1/stats.
func apiStats(t *testing.T, base, token string) (spooled int, alerts int) {
	t.Helper()
	var st struct {
		Alerts int `json:"alerts"`
		Spool  struct {
			Batches int `json:"batches"`
		} `json:"spool"`
	}
	apiGetToken(t, base, "/api/v1/stats", token, &st)
	return st.Spool.Batches, st.Alerts
}
