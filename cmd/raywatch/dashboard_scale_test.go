package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/chromedp/chromedp"

	"github.com/raywatch/raywatch/store"
)

// seedAlerts writes n alerts spread over the last 30 days into the store of
// dataDir, as raywatch serve keeps them (one sample each).
func seedAlerts(t *testing.T, dataDir string, n int) {
	t.Helper()
	st, err := store.Open(filepath.Join(dataDir, "alerts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	type ruleInfo struct{ id, title, level, ua, path string }
	rs := []ruleInfo{
		{"12761736-9417-4a8c-963c-bda704b01468", "Covenant Default HTTP Beaconing", "high", "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2228.0 Safari/537.36", "/en-us/index.html"},
		{"dd0546b3-5700-4bb4-a3fb-7409868a5c00", "Bazar Loader Backdoor C2 Polling", "medium", "", "/pool/job/priority/normal"},
		{"80b58af8-9f04-48b6-a252-0e94be0034c8", "Lemon Duck User-Agent", "high", "Lemon-Duck-abc-XYZ", "/report.json"},
		{"7c5c2e06-91d3-4bed-a5e3-06e7c83af1db", "LokiBot User-Agent", "high", "Mozilla/4.08 (Charon; Inferno)", "/fre.php"},
		{"c0ba0fe2-2266-4916-b42e-54dff94d5ff4", "TrevorC2 HTTP Communication", "high", "Mozilla/5.0 (Windows NT 6.3; Trident/7.0; rv:11.0) like Gecko", "/images?guid=aGVsbG8"},
	}
	ccs := []string{"us", "fr", "de", "gb", "nl", "jp", "br", "in"}
	now := time.Now()
	step := 30 * 24 * time.Hour / time.Duration(n)
	const chunk = 5000
	for start := 0; start < n; start += chunk {
		batch := make([]alert.Alert, 0, chunk)
		for i := start; i < min(n, start+chunk); i++ {
			r := rs[i%len(rs)]
			at := now.Add(-time.Duration(n-i) * step)
			ip := fmt.Sprintf("198.51.%d.%d", (i/250)%256, i%250+1)
			ray := fmt.Sprintf("%016x", i)
			ev := map[string]any{
				"@timestamp":  at.UTC().Format(time.RFC3339Nano),
				"source":      map[string]any{"ip": ip, "address": ip, "geo": map[string]any{"country_name": ccs[i%len(ccs)]}},
				"destination": map[string]any{"address": "shop.example.com"},
				"url":         map[string]any{"original": r.path, "path": r.path},
				"http":        map[string]any{"request": map[string]any{"method": "GET"}, "response": map[string]any{"status_code": 404}},
				"user_agent":  map[string]any{"original": r.ua},
				"cloudflare": map[string]any{"ClientIP": ip, "ClientRequestHost": "shop.example.com", "ClientRequestURI": r.path,
					"ClientRequestUserAgent": r.ua, "RayID": ray, "EdgeColoCode": "CDG", "ClientCountry": ccs[i%len(ccs)]},
			}
			batch = append(batch, alert.Alert{
				ID:        alert.AlertID(at, r.id, ray),
				Rule:      alert.RuleRef{ID: r.id, Title: r.title, Level: r.level, Tags: []string{"attack.command-and-control", "attack.t1071.001"}},
				Count:     1,
				FirstSeen: at, LastSeen: at,
				Intake: "default", Dataset: "http_requests", RecordKey: ray,
				Matches: []alert.Match{{Field: "url.path", Value: r.path}},
				Event:   ev,
			})
		}
		if _, err := st.Put(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDashboard100kAlerts opens the dashboard on a store of 100,000 alerts
// (20,000 under -race; RAYWATCH_SCALE_ALERTS to change) and logs how long the first rows, more
// pages, a search and the overview take in the browser. It asserts only
// that each appears; the figures are for the README.
func TestDashboard100kAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("seeding 100,000 alerts takes a few seconds")
	}
	// The race detector makes seeding (not the dashboard) several times
	// slower: it gets 20,000 alerts.
	n := 100_000
	if raceEnabled {
		n = 20_000
	}
	if v := os.Getenv("RAYWATCH_SCALE_ALERTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	ctx := newBrowser(t)
	dataDir := t.TempDir()
	t0 := time.Now()
	seedAlerts(t, dataDir, n)
	t.Logf("seeded %d alerts in %v", n, time.Since(t0).Round(time.Millisecond))
	in := startServe(t, dataDir, "RAYWATCH_INTAKE_KEY=scale-test-key")

	do(t, ctx, chromedp.EmulateViewport(1360, 900), chromedp.Navigate(in.base+"/"))
	evalUntil(t, ctx, `performance.getEntriesByName("raywatch-first-rows").length > 0 && document.querySelectorAll("#alert-rows tr").length === 100`, "the first page")
	firstRows := evalString(t, ctx, `String(Math.round(performance.getEntriesByName("raywatch-first-rows")[0].startTime))`)
	evalUntil(t, ctx, `document.getElementById("count").textContent.includes("of `+fmt.Sprintf("%d,%03d", n/1000, n%1000)+`")`, "the total count")

	// Scroll to the end four times: four more pages, each timed in the
	// page from the scroll to its rows.
	var pages []string
	for want := 200; want <= 500; want += 100 {
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`new Promise((resolve) => {
			const t = performance.now();
			window.scrollTo(0, document.body.scrollHeight);
			const poll = () => document.querySelectorAll("#alert-rows tr").length >= %d ? resolve(String(Math.round(performance.now() - t))) : requestAnimationFrame(poll);
			poll();
		})`, want), chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("scroll to %d rows: %v", want, err)
		}
		pages = append(pages, ms)
	}
	scroll := strings.Join(pages, ", ")

	// A search that matches 1 alert in 5 (the Bazar path), from the top.
	evalString(t, ctx, `window.__t = performance.now(); history.replaceState(null, "", "/?q=priority"); window.dispatchEvent(new HashChangeEvent("hashchange")); "ok"`)
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 100 && [...document.querySelectorAll("#alert-rows td.rule")].every(td => td.textContent.startsWith("Bazar"))`, "the search results")
	search := evalString(t, ctx, `String(Math.round(performance.now() - window.__t))`)

	evalString(t, ctx, `document.getElementById("ov-range").value = "720h"; window.__t = performance.now(); location.hash = "#/overview"; "ok"`)
	evalUntil(t, ctx, `!!document.querySelector("#overview svg.chart rect") && document.getElementById("ov-span").textContent !== ""`, "the 30-day overview")
	overview := evalString(t, ctx, `String(Math.round(performance.now() - window.__t))`)
	heap := evalString(t, ctx, `String(Math.round((performance.memory ? performance.memory.usedJSHeapSize : 0) / 1048576))`)
	t.Logf("%d alerts: first 100 rows at %s ms after navigation; the next 4 pages %s ms after each scroll; search (1 in 5 match) in %s ms; 30-day overview in %s ms; JS heap %s MiB",
		n, firstRows, scroll, search, overview, heap)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}
