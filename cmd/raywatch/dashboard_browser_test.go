package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write the dashboard screenshots of TestDashboardDemo to docs/")

// pageGuard runs before the dashboard's scripts: it counts Content-Security-
// Policy violations, and wraps WebSocket so that a test can drop the
// dashboard's socket (__dropWS) and refuse reconnections (__blockWS) for a
// while.
const pageGuard = `(() => {
  window.__csp = [];
  document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
  const Real = window.WebSocket;
  window.__sockets = [];
  window.__blockWS = false;
  window.__wsAttempts = 0;
  function Wrapped(url, protocols) {
    window.__wsAttempts++;
    const s = new Real(window.__blockWS ? String(url).replace(/\/ws$/, "/ws-refused") : url, protocols);
    window.__sockets.push(s);
    return s;
  }
  Wrapped.prototype = Real.prototype;
  for (const k of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Wrapped[k] = Real[k];
  window.WebSocket = Wrapped;
  window.__dropWS = () => { for (const s of window.__sockets) s.close(); };
})();`

func guardPage(t *testing.T, ctx context.Context) {
	t.Helper()
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pageGuard})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
}

// evalJSON evaluates js, which returns JSON text, into v.
func evalJSON(t *testing.T, ctx context.Context, js string, v any) {
	t.Helper()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
}

func evalString(t *testing.T, ctx context.Context, js string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func noCSPViolations(t *testing.T, ctx context.Context) {
	t.Helper()
	var v []string
	evalJSON(t, ctx, `JSON.stringify(window.__csp || [])`, &v)
	if len(v) > 0 {
		t.Errorf("Content-Security-Policy violations: %q", v)
	}
}

// screenshot saves the viewport as PNG under dir.
func screenshot(t *testing.T, ctx context.Context, dir, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// apiGet decodes GET base+path into v.
func apiGet(t *testing.T, base, path string, v any) {
	t.Helper()
	apiGetToken(t, base, path, "", v)
}

// apiGetToken decodes GET base+path, sent with the dashboard token when it
// is not empty, into v; any answer but 200 fails the test.
func apiGetToken(t *testing.T, base, path, token string, v any) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// recentSample is the sample batch moved in time so that its last record
// is an hour old: the overview's last 24 hours hold it.
func recentSample(t *testing.T) []byte {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(sampleBatch(t))), "\n")
	recs := make([]map[string]any, len(lines))
	var last int64
	for i, l := range lines {
		d := json.NewDecoder(strings.NewReader(l))
		d.UseNumber()
		if err := d.Decode(&recs[i]); err != nil {
			t.Fatal(err)
		}
		n, _ := recs[i]["EdgeStartTimestamp"].(json.Number).Int64()
		last = max(last, n)
	}
	shift := time.Now().Add(-time.Hour).UnixNano() - last
	var out []byte
	for _, r := range recs {
		for _, k := range []string{"EdgeStartTimestamp", "EdgeEndTimestamp"} {
			if n, err := r[k].(json.Number).Int64(); err == nil {
				r[k] = n + shift
			}
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, b...), '\n')
	}
	return out
}

type statusAlert struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	StatusHistory []struct {
		Status  string `json:"status"`
		By      string `json:"by"`
		Comment string `json:"comment"`
	} `json:"status_history"`
}

// TestDashboardWorkflow drives an analyst's path: filters that survive a
// reload, keyboard navigation, the detail of an alert with its matched
// fields, acknowledging with a comment, the overview, rules and IOC pages.
func TestDashboardWorkflow(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	const key, edgeKey = "dashboard-workflow-key", "dashboard-workflow-edge-key"
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEYS=default="+key+",edge="+edgeKey)
	if status, resp := postBatch(t, in.base, key, recentSample(t)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitAlerts(t, in.base, 5)

	// A level filter in the URL narrows the list, and stays on reload.
	do(t, ctx, chromedp.EmulateViewport(1280, 860), chromedp.Navigate(in.base+"/?level=medium"))
	oneBazar := `document.querySelectorAll("#alert-rows tr").length === 1 &&
		document.querySelector("#alert-rows td.rule").textContent === "Bazar Loader Backdoor C2 Polling" &&
		document.getElementById("f-level").value === "medium"`
	evalUntil(t, ctx, oneBazar, "the list filtered on level medium")
	do(t, ctx, chromedp.Reload())
	evalUntil(t, ctx, oneBazar, "the level filter after a reload")

	// Free text (here a path) goes into the URL too.
	do(t, ctx, chromedp.Navigate(in.base+"/"))
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 5`, "5 rows without filters")
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#f-q"), "/EN-US/"))
	oneCovenant := `document.querySelectorAll("#alert-rows tr").length === 1 &&
		document.querySelector("#alert-rows td.rule").textContent === "Covenant Default HTTP Beaconing"`
	evalUntil(t, ctx, oneCovenant+` && new URLSearchParams(location.search).get("q") === "/EN-US/"`, "the search in the list and the URL")
	do(t, ctx, chromedp.Reload())
	evalUntil(t, ctx, oneCovenant+` && document.getElementById("f-q").value === "/EN-US/"`, "the search after a reload")

	// j selects the first row, Enter opens it.
	evalString(t, ctx, `document.activeElement.blur(); "ok"`)
	do(t, ctx, chromedp.KeyEvent("j"), chromedp.KeyEvent("\r"))
	evalUntil(t, ctx, `location.hash.startsWith("#/alert/") && !!document.querySelector("#d-tree li.hit")`, "the detail view of the selected alert")
	var d struct {
		Title string            `json:"title"`
		Count string            `json:"count"`
		Hits  map[string]string `json:"hits"`
		Raw   string            `json:"raw"`
		Tech  string            `json:"tech"`
	}
	evalJSON(t, ctx, `JSON.stringify({
		title: document.getElementById("d-title").textContent,
		count: document.getElementById("d-count").textContent,
		hits: Object.fromEntries([...document.querySelectorAll("#d-tree li.hit")].map(li => [li.dataset.path, li.querySelector(".v").textContent])),
		raw: document.getElementById("d-raw").textContent,
		tech: (document.querySelector("#detail a.tech") || {}).href || "",
	})`, &d)
	if d.Title != "Covenant Default HTTP Beaconing" || d.Count != "2" {
		t.Errorf("detail title %q count %q; want Covenant, 2", d.Title, d.Count)
	}
	if ua := d.Hits["user_agent.original"]; !strings.Contains(ua, "Chrome/41.0.2228.0") || d.Hits["url.path"] != "/en-us/index.html" {
		t.Errorf("highlighted fields = %q; want user_agent.original (Chrome 41) and url.path", d.Hits)
	}
	if !strings.Contains(d.Raw, `"ClientRequestUserAgent"`) || !strings.Contains(d.Raw, `"source"`) {
		t.Errorf("raw JSON lacks the event: %.200s", d.Raw)
	}
	if d.Tech != "https://attack.mitre.org/techniques/T1071/001/" {
		t.Errorf("ATT&CK link = %q", d.Tech)
	}
	id := strings.TrimPrefix(evalString(t, ctx, `location.hash`), "#/alert/")

	// Acknowledge with a comment.
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#d-comment"), "beacon from a pentest laptop"), chromedp.Click(chromedp.CSS("#d-ack")))
	evalUntil(t, ctx, `document.querySelector("#d-status").textContent === "acknowledged" && !!document.querySelector("#d-history q")`, "the acknowledged status in the detail")
	var got statusAlert
	apiGet(t, in.base, "/api/v1/alerts/"+id, &got)
	if got.Status != "acknowledged" || len(got.StatusHistory) != 1 || got.StatusHistory[0].Comment != "beacon from a pentest laptop" || got.StatusHistory[0].By != "anonymous" {
		t.Errorf("after Acknowledge: %+v; want acknowledged with the comment", got)
	}
	t.Logf("detail screenshot: %s", screenshot(t, ctx, t.TempDir(), "detail.png"))

	// Esc goes back; "a" acknowledges the selected row. With status=new,
	// it leaves the list.
	do(t, ctx, chromedp.KeyEvent("\x1b"))
	evalUntil(t, ctx, `!document.getElementById("view-alerts").hidden`, "the list after Esc")
	do(t, ctx, chromedp.Navigate(in.base+"/?status=new"))
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 4`, "4 new alerts")
	first := evalString(t, ctx, `document.querySelector("#alert-rows tr").dataset.id`)
	evalString(t, ctx, `document.activeElement.blur(); "ok"`)
	do(t, ctx, chromedp.KeyEvent("j"), chromedp.KeyEvent("a"))
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 3`, "the acknowledged row leaving the new alerts")
	apiGet(t, in.base, "/api/v1/alerts/"+first, &got)
	if got.Status != "acknowledged" {
		t.Errorf("status of %s after the a key = %q; want acknowledged", first, got.Status)
	}

	// Overview: the chart, top lists, ATT&CK coverage and its export.
	do(t, ctx, chromedp.Navigate(in.base+"/#/overview"))
	evalUntil(t, ctx, `!!document.querySelector("#overview svg.chart rect.bar-high") && !!document.querySelector("#attack table.attack")`, "the overview chart and ATT&CK table")
	var ov struct {
		Rules  int    `json:"rules"`
		Export string `json:"export"`
		Tech   string `json:"tech"`
	}
	evalJSON(t, ctx, `JSON.stringify({
		rules: document.querySelectorAll("#overview .card table.top")[0].querySelectorAll("tr").length,
		export: document.getElementById("layer-export").getAttribute("download"),
		tech: document.querySelector("#attack table.attack td a").textContent,
	})`, &ov)
	if ov.Rules != 5 || ov.Export != "raywatch-attack-layer.json" || ov.Tech != "T1041" {
		t.Errorf("overview: %d top rules, export %q, first technique %q; want 5, the layer, T1041", ov.Rules, ov.Export, ov.Tech)
	}

	// Records without ClientRequestUserAgent on intake "edge": the field
	// coverage warning names the blind rules and the fix, on every page.
	noUA := `{"ClientIP":"192.0.2.1","ClientRequestHost":"a.example.com","ClientRequestMethod":"GET","ClientRequestURI":"/","ClientRequestPath":"/","EdgeStartTimestamp":` +
		fmt.Sprint(time.Now().UnixNano()) + `,"EdgeResponseStatus":200,"RayID":"00000000000000e1"}` + "\n"
	if status, resp := postBatch(t, in.base, edgeKey, []byte(noUA)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	do(t, ctx, chromedp.Navigate(in.base+"/#/rules"))
	evalUntil(t, ctx, `document.querySelectorAll("#rules-table tbody tr").length === 6`, "the 6 built-in rules")
	waitFor(t, 30*time.Second, func() bool {
		do(t, ctx, chromedp.Reload())
		evalUntil(t, ctx, `document.querySelectorAll("#rules-table tbody tr").length === 6`, "the rules after a reload")
		return strings.Contains(evalString(t, ctx, `document.getElementById("warnings").textContent`), `intake "edge"`)
	}, "the coverage warning")
	warning := evalString(t, ctx, `document.querySelector(".coverage-warning").textContent`)
	if !strings.Contains(warning, `rules cannot fire on intake "edge": ClientRequestUserAgent is not in the records`) || !strings.Contains(warning, "raywatch cloudflare connect") {
		t.Errorf("coverage warning = %q; want the blind rules and the connect command", warning)
	}
	if cov := evalString(t, ctx, `document.querySelector("#rules-table .chip.bad").textContent`); !strings.Contains(cov, "edge: blind") {
		t.Errorf("rule coverage chip = %q; want edge: blind", cov)
	}
	do(t, ctx, chromedp.Navigate(in.base+"/#/iocs"))
	evalUntil(t, ctx, `document.getElementById("iocs").textContent.includes("No IOC folder")`, "the IOC page without a folder")
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

// TestDashboardReconnects drops the dashboard's websocket and refuses its
// reconnections while a batch is posted; once it may reconnect, the
// alerts of that batch appear without a reload.
func TestDashboardReconnects(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	const key = "dashboard-reconnect-key"
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key)
	do(t, ctx, chromedp.Navigate(in.base+"/"))
	evalUntil(t, ctx, `document.getElementById("conn").textContent === "live"`, "the live connection state")
	evalString(t, ctx, `String(window.__notReloaded = true)`)

	evalString(t, ctx, `window.__blockWS = true; window.__dropWS(); "ok"`)
	evalUntil(t, ctx, `document.getElementById("conn").textContent.startsWith("disconnected") && window.__wsAttempts >= 2`, "a refused reconnection")
	if status, resp := postBatch(t, in.base, key, sampleBatch(t)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitAlerts(t, in.base, 5)
	if n := evalString(t, ctx, `String(document.querySelectorAll("#alert-rows tr").length)`); n != "0" {
		t.Fatalf("%s rows while disconnected; want 0", n)
	}
	evalString(t, ctx, `window.__blockWS = false; "ok"`)
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 5 && document.getElementById("conn").textContent === "live"`, "the missed alerts after reconnecting")
	if ok := evalString(t, ctx, `String(window.__notReloaded === true)`); ok != "true" {
		t.Error("the page reloaded")
	}
	// A grouped alert that grows updates its row in place.
	more := strings.ReplaceAll(string(sampleBatch(t)), `"RayID":"`, `"RayID":"f`)
	if status, resp := postBatch(t, in.base, key, []byte(more)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 5 &&
		[...document.querySelectorAll("#alert-rows td.count")].map(td => td.textContent).sort().join() === "2,2,2,2,4"`, "counts doubled in place")
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

// hostile holds markup and script in every attacker-controlled field the
// dashboard shows: user-agent, path, host and referrer. Each payload would
// set window.__xss if it ran.
var hostileRecords = []string{
	`{"ClientIP":"203.0.113.9","ClientRequestHost":"<img src=x onerror=\"window.__xss=1\">.example.com","ClientRequestMethod":"GET",` +
		`"ClientRequestURI":"/pool/job/priority/<script>window.__xss=2</script>","ClientRequestPath":"/pool/job/priority/<script>window.__xss=2</script>",` +
		`"ClientRequestUserAgent":"\"'><svg onload=window.__xss=3>","ClientRequestReferer":"javascript:window.__xss=4",` +
		`"ClientCountry":"<b>x</b>","EdgeStartTimestamp":1795600000000000000,"RayID":"5ca1ab1e00000001"}`,
	`{"ClientIP":"203.0.113.10","ClientRequestHost":"javascript:window.__xss=5","ClientRequestMethod":"GET",` +
		`"ClientRequestURI":"/pool/job/priority/\"'><svg onload=window.__xss=6>","ClientRequestPath":"/pool/job/priority/\"'><svg onload=window.__xss=6>",` +
		`"ClientRequestUserAgent":"<img src=x onerror=window.__xss=7>","ClientRequestReferer":"https://x.example/\"'><img src=x onerror=window.__xss=8>",` +
		`"EdgeStartTimestamp":1795600001000000000,"RayID":"5ca1ab1e00000002"}`,
}

// hostileRule is a drop-in rule whose title, description and references
// are hostile too.
const hostileRule = `title: '<img src=x onerror="window.__xss=9">Hostile rule'
id: 6d9f3e2a-0000-4000-8000-00000000beef
status: experimental
description: '<script>window.__xss=10</script> "''><svg onload=window.__xss=11>'
references:
  - 'javascript:window.__xss=12'
  - 'https://example.com/"><img src=x onerror=window.__xss=13>'
tags:
  - attack.t1071.001
logsource:
  category: webserver
  product: cloudflare
detection:
  selection:
    url.path|startswith: '/pool/job/priority/'
  condition: selection
level: high
`

func TestDashboardRendersHostileValuesAsText(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	const key = "dashboard-xss-key"
	rulesDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(rulesDir, "hostile.yml"), []byte(hostileRule), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "broken.yml"), []byte("title: broken\ndetection: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_RULES_DIR="+rulesDir)
	if status, resp := postBatch(t, in.base, key, []byte(strings.Join(hostileRecords, "\n")+"\n")); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	alerts := waitAlerts(t, in.base, 4) // Bazar and the hostile rule, on two records
	do(t, ctx, chromedp.Navigate(in.base+"/"))
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 4`, "4 alert rows")

	// What a payload would leave behind, on every page.
	const check = `JSON.stringify({
		xss: window.__xss === undefined ? null : window.__xss,
		markup: document.querySelectorAll("body script, body img, body iframe, body object, [onerror], [onload], main b").length,
		jsLinks: [...document.querySelectorAll("a")].filter(a => a.href && !/^https?:/.test(a.href)).map(a => a.href),
	})`
	type verdict struct {
		XSS     any      `json:"xss"`
		Markup  int      `json:"markup"`
		JSLinks []string `json:"jsLinks"`
	}
	assertClean := func(where string) {
		t.Helper()
		var v verdict
		evalJSON(t, ctx, check, &v)
		if v.XSS != nil || v.Markup != 0 || len(v.JSLinks) != 0 {
			t.Errorf("%s: __xss=%v, %d injected elements, links %q; want none", where, v.XSS, v.Markup, v.JSLinks)
		}
	}
	assertClean("alert list")
	text := evalString(t, ctx, `document.getElementById("alert-rows").textContent`)
	for _, want := range []string{`<img src=x onerror="window.__xss=1">.example.com`, `/pool/job/priority/<script>window.__xss=2</script>`, `"'><svg onload=window.__xss=3>`, `<img src=x onerror="window.__xss=9">Hostile rule`, "javascript:window.__xss=5"} {
		if !strings.Contains(text, want) {
			t.Errorf("the list does not show %q as text", want)
		}
	}
	for _, a := range alerts {
		do(t, ctx, chromedp.Navigate(in.base+"/#/alert/"+a.ID))
		evalUntil(t, ctx, `!!document.querySelector("#d-tree")`, "the detail of "+a.ID)
		raw := evalString(t, ctx, `document.getElementById("d-raw").textContent + document.getElementById("detail").textContent`)
		if !strings.Contains(raw, "window.__xss") {
			t.Errorf("detail of %s does not show the payloads as text", a.ID)
		}
		assertClean("detail of " + a.ID)
	}
	// The exception dialog of a hostile alert holds its values as text.
	do(t, ctx, chromedp.Click(chromedp.CSS("#d-except")))
	evalUntil(t, ctx, `document.getElementById("exc-dlg").open`, "the exception dialog")
	assertClean("exception dialog")
	evalString(t, ctx, `document.getElementById("exc-dlg").close(); "ok"`)
	// An exception whose comment and values are hostile, on its page.
	status, _ := postJSON(t, in.base+"/api/v1/exceptions", map[string]any{
		"rule": "*", "match": map[string]any{"user_agent.original|contains": `<img src=x onerror="window.__xss=14">`},
		"comment": `<script>window.__xss=15</script><b>bold</b>`, "by": `<img src=x onerror=window.__xss=16>`,
	})
	if status != 201 {
		t.Fatalf("POST hostile exception = %d", status)
	}
	do(t, ctx, chromedp.Navigate(in.base+"/#/exceptions"))
	evalUntil(t, ctx, `!!document.querySelector("#exc-table tbody tr")`, "the exceptions page")
	assertClean("exceptions page")
	if text := evalString(t, ctx, `document.getElementById("exc-table").textContent`); !strings.Contains(text, `<script>window.__xss=15</script><b>bold</b>`) || !strings.Contains(text, `onerror="window.__xss=14"`) {
		t.Errorf("exceptions page = %q; want the hostile comment and value as text", text)
	}
	do(t, ctx, chromedp.Navigate(in.base+"/#/rules"))
	evalUntil(t, ctx, `document.querySelectorAll("#rules-table tbody tr").length === 7 && !!document.querySelector("#rule-errors")`, "the rules with the hostile one and the load error")
	assertClean("rules page")
	if errText := evalString(t, ctx, `document.getElementById("rule-errors").textContent`); !strings.Contains(errText, "broken.yml") {
		t.Errorf("rule load errors = %q; want broken.yml with its line", errText)
	}
	do(t, ctx, chromedp.Navigate(in.base+"/#/overview"))
	evalUntil(t, ctx, `!!document.querySelector("#overview svg.chart")`, "the overview")
	assertClean("overview")
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

// TestDashboardDemo runs serve with RAYWATCH_DEMO=1: every built-in rule
// fires within seconds, through the real intake. It takes the screenshots
// of the overview, of an alert, of the exception dialog and of the list
// (and, with -update-screenshots, writes them to docs/).
func TestDashboardDemo(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	in := startServe(t, t.TempDir(), "RAYWATCH_DEMO=1")
	titles := map[string]bool{}
	waitFor(t, 60*time.Second, func() bool {
		for _, a := range listAlerts(t, in.base, 1000) {
			titles[a.Rule.Title] = true
		}
		return len(titles) >= 6
	}, "an alert of each of the 6 built-in rules")
	dir := t.TempDir()
	do(t, ctx, chromedp.EmulateViewport(1360, 900), chromedp.Navigate(in.base+"/#/overview"))
	evalString(t, ctx, `const r = document.getElementById("ov-range"); r.value = "1h"; r.dispatchEvent(new Event("change")); "ok"`)
	evalUntil(t, ctx, `document.querySelectorAll("#overview svg.chart rect.bar-high").length > 3 && document.querySelectorAll("#attack table.attack tbody tr").length > 0`, "the overview with history")
	shots := []string{screenshot(t, ctx, dir, "overview.png")}

	var id string
	for _, a := range listAlerts(t, in.base, 1000) {
		if a.Rule.Title == "Intelligence feed match" {
			id = a.ID
			break
		}
	}
	do(t, ctx, chromedp.Navigate(in.base+"/#/alert/"+id))
	evalUntil(t, ctx, `!!document.querySelector("#d-tree li.hit") && !!document.querySelector("#detail .ioc") && !!document.getElementById("d-who")`, "the detail with the IOC and the header")
	shots = append(shots, screenshot(t, ctx, dir, "alert.png"))
	do(t, ctx, chromedp.Click(chromedp.CSS("#d-except")))
	evalUntil(t, ctx, `document.getElementById("exc-dlg").open`, "the exception dialog")
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#exc-comment"), "Partner's uptime monitor, agreed with the SOC"))
	evalString(t, ctx, `(() => {
		const tr = document.querySelector('#exc-conds tr[data-field="url.path"]');
		if (tr) tr.querySelector("input[type=checkbox]").click();
		document.getElementById("exc-expiry").value = "720h";
		document.getElementById("exc-form").dispatchEvent(new Event("change"));
		return "ok";
	})()`)
	shots = append(shots, screenshot(t, ctx, dir, "exception.png"))
	evalString(t, ctx, `document.getElementById("exc-dlg").close(); "ok"`)
	do(t, ctx, chromedp.Navigate(in.base+"/"))
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length >= 6`, "the alert list")
	shots = append(shots, screenshot(t, ctx, dir, "alerts.png"))
	t.Logf("screenshots: %s", strings.Join(shots, " "))
	if *updateScreenshots {
		for _, s := range shots {
			b, err := os.ReadFile(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("../../docs", "dashboard-"+filepath.Base(s)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
	if !strings.Contains(in.log(), "demo traffic generator started") {
		t.Errorf("no demo log line in\n%s", in.log())
	}
}
