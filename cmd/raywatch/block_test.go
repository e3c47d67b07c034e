package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
)

// lemonDuckBatch is one Lemon Duck request (a built-in rule, level high)
// from each address, timed now.
func lemonDuckBatch(ips ...string) []byte {
	var b []byte
	for i, ip := range ips {
		b = traffic.Render(b, traffic.Request{IP: ip, Method: "GET", Host: "shop.example.com", URI: "/", UA: "Lemon-Duck-TKShM-InUsrPcv",
			Status: 200, Time: time.Now(), RayID: fmt.Sprintf("b10c%012x", i)})
		b = append(b, '\n')
	}
	return b
}

// TestDashboardBlockList runs serve with --block-list --block-max 1
// against the fake Cloudflare API: the alerts of two attackers list them
// in turn (the second pushes the first out, and the dashboard warns that
// the list is full); the alert page says the address is listed and until
// when, and its Unblock and Block now buttons (each behind a confirmation)
// change Cloudflare's list, with the reason shown as text.
func TestDashboardBlockList(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	f := newFakeCloudflare(t)
	const key = "dashboard-block-key"
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_BLOCK_LIST=rw_block", "RAYWATCH_BLOCK_MAX=1",
		"RAYWATCH_CLOUDFLARE_API_URL="+f.URL(), "CLOUDFLARE_API_TOKEN="+testToken, "RAYWATCH_CLOUDFLARE_ZONE="+testZone,
		"CLOUDFLARE_EMAIL=", "CLOUDFLARE_API_KEY=", "CLOUDFLARE_ACCOUNT_ID=")
	if status, resp := postBatch(t, in.base, key, lemonDuckBatch("203.0.113.66")); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitFor(t, 30*time.Second, func() bool { return len(f.ListIPs("rw_block")) == 1 }, "the first attacker listed")
	if status, resp := postBatch(t, in.base, key, lemonDuckBatch("198.51.100.77")); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitFor(t, 30*time.Second, func() bool { return f.ListIPs("rw_block")["198.51.100.77"] != "" && len(f.ListIPs("rw_block")) == 1 }, "the second attacker in place of the first")
	var found struct{ Alerts []apiAlert }
	apiGet(t, in.base, "/api/v1/alerts?q=198.51.100.77", &found)
	if len(found.Alerts) != 1 {
		t.Fatalf("alerts of 198.51.100.77 = %+v; want 1", found.Alerts)
	}
	id := found.Alerts[0].ID

	do(t, ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(in.base+"/#/alert/"+id))
	evalString(t, ctx, `window.__confirms = []; window.__answer = false; window.confirm = (m) => { window.__confirms.push(m); return window.__answer; }; "ok"`)
	evalUntil(t, ctx, `(document.getElementById("d-block-state") || {}).textContent === undefined ? false :
		/^198\.51\.100\.77 is on rw_block until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, listed by rule:/.test(document.getElementById("d-block-state").textContent)`, "the alert page saying the address is listed, until when")
	evalUntil(t, ctx, `/Edge block list: the list rw_block is full \(1 of --block-max 1\)/.test(document.getElementById("warnings").textContent)`, "the warning that the list is full")

	// Unblock: cancelled at the confirmation, nothing happens; confirmed,
	// the address leaves Cloudflare's list.
	const hostile = `<img src=x onerror="window.__xss=1">`
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#d-unblock-reason"), hostile), chromedp.Click(chromedp.CSS("#d-unblock")))
	evalUntil(t, ctx, `window.__confirms.length === 1`, "the confirmation")
	if len(f.ListIPs("rw_block")) != 1 {
		t.Fatalf("a cancelled Unblock changed the list")
	}
	evalString(t, ctx, `window.__answer = true; "ok"`)
	do(t, ctx, chromedp.Click(chromedp.CSS("#d-unblock")))
	waitFor(t, 30*time.Second, func() bool { return len(f.ListIPs("rw_block")) == 0 }, "the address off Cloudflare's list")
	evalUntil(t, ctx, `/^198\.51\.100\.77 is not on rw_block\.$/.test((document.getElementById("d-block-state") || {}).textContent || "")`, "the page saying it is not listed")
	var page struct {
		Confirm string `json:"confirm"`
		Audit   string `json:"audit"`
		Imgs    int    `json:"imgs"`
		XSS     bool   `json:"xss"`
	}
	evalJSON(t, ctx, `JSON.stringify({confirm: window.__confirms[1], audit: document.getElementById("d-block-audit").textContent,
		imgs: document.querySelectorAll("#d-block img").length, xss: !!window.__xss})`, &page)
	if !strings.Contains(page.Confirm, "Take 198.51.100.77 off the Cloudflare list rw_block?") || !strings.Contains(page.Audit, "unblock") ||
		!strings.Contains(page.Audit, hostile) || page.Imgs != 0 || page.XSS {
		t.Errorf("after Unblock: %+v; want the confirmation, the unblock with the reason as text", page)
	}

	// Block now lists it again.
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#d-block-reason"), "seen again in the origin logs"), chromedp.Click(chromedp.CSS("#d-block-now")))
	waitFor(t, 30*time.Second, func() bool { return f.ListIPs("rw_block")["198.51.100.77"] != "" }, "the address back on Cloudflare's list")
	evalUntil(t, ctx, `/^198\.51\.100\.77 is on rw_block until .* listed by anonymous/.test((document.getElementById("d-block-state") || {}).textContent || "")`, "the page saying it is listed by hand")
	if c := evalString(t, ctx, `window.__confirms[2]`); !strings.Contains(c, "Block 198.51.100.77 at Cloudflare's edge for 24 hours?") {
		t.Errorf("Block now confirmation = %q", c)
	}
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit %d\n%s", code, in.log())
	}
}
