package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
)

// lokiBySource returns the LokiBot alerts by source IP.
func lokiBySource(t *testing.T, base string) map[string]apiAlert {
	t.Helper()
	out := map[string]apiAlert{}
	for _, a := range listAlerts(t, base, 1000) {
		if a.Rule.ID != traffic.LokiBotID {
			continue
		}
		if src, ok := a.Event["source"].(map[string]any); ok {
			out[fmt.Sprint(src["ip"])] = a
		}
	}
	return out
}

type listedException struct {
	ID         string         `json:"id"`
	Rule       string         `json:"rule"`
	Match      map[string]any `json:"match"`
	Comment    string         `json:"comment"`
	CreatedBy  string         `json:"created_by"`
	Suppressed int64          `json:"suppressed"`
	Expired    bool           `json:"expired"`
}

func listExceptions(t *testing.T, base string) []listedException {
	t.Helper()
	var body struct{ Exceptions []listedException }
	apiGet(t, base, "/api/v1/exceptions", &body)
	return body.Exceptions
}

func postJSON(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestDashboardExceptions drives issue 15's analyst path: the alert page's
// header says who and where; an exception made from it (prefilled with
// the alert's entity) closes the alert, and the next batch raises nothing
// for that source while another source still alerts; the Exceptions page
// shows the suppression count; an exception that expires stops applying;
// closing an alert asks for a verdict.
func TestDashboardExceptions(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	const key = "dashboard-exceptions-key"
	const excepted, other = "198.51.100.7", "203.0.113.5"
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key)
	if status, resp := postBatch(t, in.base, key, traffic.LokiBotRecords("a", excepted, other)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitAlerts(t, in.base, 2)
	id := lokiBySource(t, in.base)[excepted].ID

	// The header: source IP with country and network, host, method and
	// path, user-agent, count and time.
	do(t, ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(in.base+"/#/alert/"+id))
	evalUntil(t, ctx, `!!document.getElementById("d-who") && !!document.getElementById("d-except")`, "the alert page")
	var head map[string]string
	evalJSON(t, ctx, `JSON.stringify(Object.fromEntries(["d-ip", "d-country", "d-asn", "d-host", "d-req", "d-ua", "d-events"].map(id => [id, document.getElementById(id).textContent])))`, &head)
	for k, want := range map[string]string{"d-ip": excepted, "d-country": "France (FR)", "d-asn": "AS64500", "d-host": "shop.example.com", "d-req": "POST /fre.php", "d-ua": "Mozilla/4.08 (Charon; Inferno)", "d-events": "1 event"} {
		if !strings.Contains(head[k], want) {
			t.Errorf("header %s = %q; want %q", k, head[k], want)
		}
	}

	// Add exception: prefilled with the entity, every condition kept; a
	// comment is required.
	do(t, ctx, chromedp.Click(chromedp.CSS("#d-except")))
	evalUntil(t, ctx, `document.getElementById("exc-dlg").open && document.querySelectorAll("#exc-conds tr").length === 5`, "the exception dialog with 5 conditions")
	// The entity's fields are kept; the rule's other matched field
	// (the method) is offered, not kept.
	var prefill map[string]string
	evalJSON(t, ctx, `JSON.stringify(Object.fromEntries([...document.querySelectorAll("#exc-conds tr")].map(tr =>
		[tr.dataset.field, (tr.querySelector("input[type=checkbox]").checked ? "kept " : "offered ") + tr.querySelector(".exc-val").value])))`, &prefill)
	wantPrefill := map[string]string{"source.ip": "kept " + excepted, "destination.address": "kept shop.example.com", "url.path": "kept /fre.php",
		"user_agent.original": "kept Mozilla/4.08 (Charon; Inferno)", "http.request.method": "offered POST"}
	if fmt.Sprint(prefill) != fmt.Sprint(wantPrefill) {
		t.Errorf("prefilled conditions = %v; want %v", prefill, wantPrefill)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS("#exc-ok")))
	evalUntil(t, ctx, `document.getElementById("exc-msg").textContent.includes("comment")`, "the dialog asking for a comment")
	// The path condition becomes "starts with /fre".
	evalString(t, ctx, `(() => {
		const tr = document.querySelector('#exc-conds tr[data-field="url.path"]');
		tr.querySelector(".exc-op").value = "startswith";
		tr.querySelector(".exc-val").value = "/fre";
		document.getElementById("exc-form").dispatchEvent(new Event("change"));
		return "ok";
	})()`)
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#exc-comment"), "our pentest laptop"), chromedp.Click(chromedp.CSS("#exc-ok")))
	evalUntil(t, ctx, `!document.getElementById("d-note").hidden && document.getElementById("d-status").textContent === "closed"`, "the exception added and the alert closed")
	if note := evalString(t, ctx, `document.getElementById("d-note").textContent`); !strings.Contains(note, "1 open alert closed") {
		t.Errorf("note = %q; want 1 open alert closed", note)
	}
	xs := listExceptions(t, in.base)
	if len(xs) != 1 || xs[0].Rule != traffic.LokiBotID || xs[0].Comment != "our pentest laptop" || xs[0].CreatedBy != "anonymous" ||
		xs[0].Match["source.ip"] != excepted || xs[0].Match["url.path|startswith"] != "/fre" || len(xs[0].Match) != 4 {
		t.Fatalf("exceptions = %+v; want the one made in the dialog", xs)
	}

	// The next batch: nothing new for the excepted source, the other
	// source still alerts.
	if status, resp := postBatch(t, in.base, key, traffic.LokiBotRecords("b", excepted, other)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitFor(t, 30*time.Second, func() bool { return lokiBySource(t, in.base)[other].Count == 2 }, "the other source alerting again")
	if a := lokiBySource(t, in.base)[excepted]; a.Count != 1 || a.Status != "closed" {
		t.Errorf("excepted source's alert after the second batch: count %d, %s; want 1, closed", a.Count, a.Status)
	}
	if n := len(lokiBySource(t, in.base)); n != 2 {
		t.Errorf("%d LokiBot alerts; want 2", n)
	}

	// The Exceptions page shows the suppression.
	do(t, ctx, chromedp.Navigate(in.base+"/#/exceptions"))
	row := `document.querySelector('#exc-table tr[data-id="` + xs[0].ID + `"]')`
	evalUntil(t, ctx, `!!(`+row+` && `+row+`.querySelector(".exc-suppressed").textContent === "1" && `+row+`.querySelector(".exc-last").textContent !== "never")`, "the suppression count on the Exceptions page")
	if text := evalString(t, ctx, row+`.textContent`); !strings.Contains(text, "LokiBot User-Agent") || !strings.Contains(text, "url.path starts with /fre") || !strings.Contains(text, "our pentest laptop") {
		t.Errorf("exception row = %q; want the rule's title, the conditions and the comment", text)
	}

	// An exception for the other source that expires in a few seconds:
	// it applies, then stops applying by itself.
	status, x := postJSON(t, in.base+"/api/v1/exceptions", map[string]any{
		"rule": "*", "match": map[string]any{"source.ip": other}, "comment": "short maintenance window",
		"expires": time.Now().Add(10 * time.Second).UTC().Format(time.RFC3339Nano),
	})
	if status != 201 {
		t.Fatalf("POST exception = %d %v", status, x)
	}
	if status, resp := postBatch(t, in.base, key, traffic.LokiBotRecords("c", other)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitFor(t, 30*time.Second, func() bool {
		for _, e := range listExceptions(t, in.base) {
			if e.ID == x["id"] {
				return e.Suppressed == 1
			}
		}
		return false
	}, "the short exception suppressing the third batch")
	xrow := `document.querySelector('#exc-table tr[data-id="` + fmt.Sprint(x["id"]) + `"]')`
	evalUntil(t, ctx, `!!(`+xrow+` && `+xrow+`.classList.contains("expired") && `+xrow+`.querySelector(".badge.expired") !== null)`, "the short exception shown expired")
	if status, resp := postBatch(t, in.base, key, traffic.LokiBotRecords("d", other)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitFor(t, 30*time.Second, func() bool { return lokiBySource(t, in.base)[other].Count == 3 }, "the other source alerting after the expiry")

	// Closing asks for a verdict.
	otherID := lokiBySource(t, in.base)[other].ID
	do(t, ctx, chromedp.Navigate(in.base+"/#/alert/"+otherID))
	evalUntil(t, ctx, `!!document.getElementById("d-close") && document.getElementById("d-status").textContent === "new"`, "the other alert's page")
	do(t, ctx, chromedp.Click(chromedp.CSS("#d-close")))
	evalUntil(t, ctx, `document.getElementById("close-dlg").open`, "the close dialog")
	do(t, ctx, chromedp.Click(chromedp.CSS("#close-ok")))
	evalUntil(t, ctx, `document.getElementById("close-msg").textContent === "Pick a verdict."`, "the dialog asking for a verdict")
	do(t, ctx, chromedp.Click(chromedp.CSS("#close-benign")), chromedp.Click(chromedp.CSS("#close-ok")))
	evalUntil(t, ctx, `document.getElementById("d-status").textContent === "closed" && !document.getElementById("close-dlg").open`, "the alert closed")
	var closed struct {
		Status  string `json:"status"`
		History []struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
		} `json:"status_history"`
	}
	apiGet(t, in.base, "/api/v1/alerts/"+otherID, &closed)
	if n := len(closed.History); closed.Status != "closed" || n == 0 || closed.History[n-1].Reason != "benign" {
		t.Errorf("closed alert = %+v; want closed as benign", closed)
	}
	if text := evalString(t, ctx, `document.getElementById("d-history").textContent`); !strings.Contains(text, "Benign") {
		t.Errorf("history = %q; want the verdict", text)
	}
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

// longTitleRule is a drop-in rule with a long title, loaded from a folder
// with a long path: neither may be cut, nor push columns off-screen.
const longTitleRule = `title: Suspicious administrative plugin upload through the legacy content management endpoint
id: 7e1d0c55-0000-4000-8000-00000000f17e
status: experimental
logsource: {category: webserver}
detection:
  selection:
    url.path|startswith: /fre
  condition: selection
level: medium
`

// TestDashboardFitsAt1024 checks the tables from 1,024 px up: no
// horizontal scrolling, the path and user-agent columns on screen, rule
// titles and IPv6 addresses whole (wrapped, never cut); on the Rules page,
// a drop-in rule's long source path does not push Field coverage away.
func TestDashboardFitsAt1024(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	const key = "dashboard-fit-key"
	rulesDir := filepath.Join(t.TempDir(), "a-rather-long-folder-name-for-drop-in-rules", "web-server-detections")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "legacy_cms_plugin_upload.yml"), []byte(longTitleRule), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_RULES_DIR="+rulesDir)
	const ipv6 = "2001:db8:85a3:1234:5678:8a2e:370:7334"
	if status, resp := postBatch(t, in.base, key, traffic.LokiBotRecords("a", ipv6, "198.51.100.7")); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitAlerts(t, in.base, 4)
	for _, width := range []int64{1024, 1280, 1440} {
		do(t, ctx, chromedp.EmulateViewport(width, 800), chromedp.Navigate(in.base+"/"))
		evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 4`, "4 rows")
		var fit struct {
			Scroll   int      `json:"scroll"`
			Inner    int      `json:"inner"`
			UARight  int      `json:"uaRight"`
			UAWidth  int      `json:"uaWidth"`
			PathW    int      `json:"pathWidth"`
			Clipped  []string `json:"clipped"`
			Titles   []string `json:"titles"`
			IPv6Seen bool     `json:"ipv6"`
		}
		evalJSON(t, ctx, `(() => {
			const ua = document.querySelector("#alert-rows td.ua").getBoundingClientRect();
			const path = document.querySelector("#alert-rows td.path").getBoundingClientRect();
			const clipped = [...document.querySelectorAll("#alert-rows td.rule, #alert-rows td.ip")]
				.filter(td => td.scrollWidth > td.clientWidth + 1 || td.scrollHeight > td.clientHeight + 1).map(td => td.textContent);
			return JSON.stringify({
				scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
				uaRight: Math.round(ua.right), uaWidth: Math.round(ua.width), pathWidth: Math.round(path.width), clipped,
				titles: [...document.querySelectorAll("#alert-rows td.rule")].map(td => td.textContent),
				ipv6: [...document.querySelectorAll("#alert-rows td.ip")].some(td => td.textContent.startsWith("`+ipv6+`")),
			});
		})()`, &fit)
		if fit.Scroll > fit.Inner || fit.UARight > fit.Inner || fit.UAWidth < 100 || fit.PathW < 100 {
			t.Errorf("at %d px: page %d px wide in a %d px window, user-agent column ends at %d (%d px wide), path %d px wide; want no horizontal scroll and both columns on screen, 100 px wide at least",
				width, fit.Scroll, fit.Inner, fit.UARight, fit.UAWidth, fit.PathW)
		}
		if len(fit.Clipped) > 0 || !fit.IPv6Seen || !strings.Contains(strings.Join(fit.Titles, "|"), "Suspicious administrative plugin upload through the legacy content management endpoint") {
			t.Errorf("at %d px: clipped cells %q, IPv6 shown %v, titles %q; want whole titles and addresses", width, fit.Clipped, fit.IPv6Seen, fit.Titles)
		}
		if width == 1024 {
			t.Logf("list at 1024 px: %s", screenshot(t, ctx, t.TempDir(), "list-1024.png"))
		}

		do(t, ctx, chromedp.Navigate(in.base+"/#/rules"))
		evalUntil(t, ctx, `document.querySelectorAll("#rules-table tbody tr").length === 7`, "the rules")
		var rules struct {
			Scroll  int    `json:"scroll"`
			Inner   int    `json:"inner"`
			CovLeft int    `json:"covLeft"`
			CovR    int    `json:"covRight"`
			Src     string `json:"src"`
		}
		evalJSON(t, ctx, `(() => {
			const th = [...document.querySelectorAll("#rules-table th")].find(th => th.textContent === "Field coverage").getBoundingClientRect();
			return JSON.stringify({
				scroll: document.documentElement.scrollWidth, inner: window.innerWidth, covLeft: Math.round(th.left), covRight: Math.round(th.right),
				src: document.querySelector('#rules-table tr[data-rule="7e1d0c55-0000-4000-8000-00000000f17e"] .src').textContent,
			});
		})()`, &rules)
		if rules.Scroll > rules.Inner || rules.CovR > rules.Inner || rules.CovR-rules.CovLeft < 80 || !strings.Contains(rules.Src, "legacy_cms_plugin_upload.yml") {
			t.Errorf("rules at %d px: page %d px in %d, Field coverage from %d to %d, source %q; want it on screen and the drop-in path shown",
				width, rules.Scroll, rules.Inner, rules.CovLeft, rules.CovR, rules.Src)
		}
	}
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

// TestDashboardIOCSearch checks that the IOCs page names its folder and
// finds which file and line hold a value (a range covering an address
// too).
func TestDashboardIOCSearch(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	iocDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(iocDir, "feed.txt"), []byte("# test feed\nevil.example\n198.51.100.0/24 # scanners\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY=ioc-search-key", "RAYWATCH_IOC_DIR="+iocDir)
	do(t, ctx, chromedp.Navigate(in.base+"/#/iocs"))
	evalUntil(t, ctx, `!!(document.getElementById("ioc-dir") && document.getElementById("ioc-dir").textContent.includes(`+jsString(iocDir)+`))`, "the folder on the IOCs page")
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#ioc-q"), "198.51.100.7"), chromedp.Click(chromedp.CSS("#ioc-search button")))
	evalUntil(t, ctx, `!!document.querySelector("#ioc-found tbody tr")`, "the search results")
	if row := evalString(t, ctx, `document.querySelector("#ioc-found tbody tr").textContent`); row != "198.51.100.0/24cidrfeed.txt:3covers it" {
		t.Errorf("search result = %q; want the range, its type, feed.txt:3 and how it matches", row)
	}
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
