package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// genRecord returns an http_requests record with a unique RayID (batch,
// i). Every seventh record is a Lemon Duck request and every eleventh a
// LokiBot one, from a few source IPs over a few hours, so that alerts group.
func genRecord(batch, i int) string {
	ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	method := "GET"
	switch {
	case i%7 == 3:
		ua = "Lemon-Duck-abc-XYZ"
	case i%11 == 5:
		ua, method = "Mozilla/4.08 (Charon; Inferno)", "POST"
	}
	ts := int64(1795500000000000000) + int64(batch)*997_000_000_000 + int64(i)*1_000_000_000
	return fmt.Sprintf(`{"ClientIP":"198.51.100.%d","ClientRequestHost":"shop%d.example.com","ClientRequestMethod":%q,"ClientRequestPath":"/x/%d","ClientRequestURI":"/x/%d?q=1","ClientRequestUserAgent":%q,"EdgeResponseStatus":200,"EdgeStartTimestamp":%d,"RayID":"%08x%08x"}`,
		(batch+i)%5, i%2, method, i, i, ua, ts, batch, i)
}

// genBatch returns n records of batch b as NDJSON, with a malformed line
// every malformedEvery lines (0 for none).
func genBatch(b, n, malformedEvery int) []byte {
	var sb strings.Builder
	for i := range n {
		if malformedEvery > 0 && i%malformedEvery == malformedEvery-1 {
			sb.WriteString(`{"RayID": broken` + "\n")
			continue
		}
		sb.WriteString(genRecord(b, i))
		sb.WriteByte('\n')
	}
	return []byte(sb.String())
}

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
