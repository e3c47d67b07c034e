package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
)

// wpRule is a drop-in rule retro-run from the Rules page.
const wpRule = `title: WordPress admin probe
id: 3c1d6f0e-8a52-4b7e-9f3d-5e2a7c9b1d41
status: experimental
logsource:
  category: webserver
  product: cloudflare
detection:
  selection:
    url.path|startswith: '/wp-admin/'
  condition: selection
level: medium
`

// TestDashboardRetro checks the dashboard's side of the retro-hunts: the
// archive on the Overview, an indicator hunt on the IOCs page (its
// indicator, from a file, shown as text), the retro alert marked as such,
// and a rule retro-run from its row on the Rules page.
func TestDashboardRetro(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	dir := t.TempDir()
	iocDir, rulesDir := filepath.Join(dir, "iocs"), filepath.Join(dir, "rules")
	for _, d := range []string{iocDir, rulesDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rulesDir, "wp.yml"), []byte(wpRule), 0o644); err != nil {
		t.Fatal(err)
	}
	const key = "dashboard-retro-key-0123456789"
	in := startServe(t, filepath.Join(dir, "data"), "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_IOC_DIR="+iocDir,
		"RAYWATCH_RULES_DIR="+rulesDir, "RAYWATCH_ARCHIVE_DIR="+filepath.Join(dir, "archive"))
	at := time.Now().UTC().Add(-2 * time.Hour)
	var batch bytes.Buffer
	for i := range 10 {
		req := traffic.Request{IP: fmt.Sprintf("198.51.100.%d", i+1), Method: "GET", Host: "shop.example.com", URI: fmt.Sprintf("/p/%d", i),
			UA: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", Status: 200, Time: at.Add(time.Duration(i) * time.Second), RayID: fmt.Sprintf("9b%014x", i)}
		switch i {
		case 3:
			req.Host = "c2.evil.example"
		case 5:
			req.URI = "/wp-admin/setup-config.php"
		}
		batch.Write(traffic.Render(nil, req))
		batch.WriteByte('\n')
	}
	// The drop-in rule is loaded: the wp-admin probe alerts live, and the
	// rule's retro-run later finds the same record and counts nothing.
	rep := postArchived(t, in, key, batch.Bytes())

	do(t, ctx, chromedp.EmulateViewport(1280, 860), chromedp.Navigate(in.base+"/#/overview"))
	evalUntil(t, ctx, `!!document.querySelector("#archive #archive-size") && document.getElementById("archive-span").textContent.includes(" to ")`, "the archive on the overview")

	// A feed publishes the domain; its comment line carries markup.
	if err := os.WriteFile(filepath.Join(iocDir, "feed.txt"), []byte("# <img src=x onerror=\"window.__xss=1\">\nevil.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(in.base+"/#/iocs"))
	hunted := `(() => { const rows = document.querySelectorAll("#retro-table tbody tr");
		return rows.length === 1 && rows[0].textContent.includes("done") && rows[0].textContent.includes("domain:evil.example (feed.txt:2)"); })()`
	for deadline := time.Now().Add(30 * time.Second); ; {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](hunted))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the IOCs page does not show the hunt done:\n%s", evalString(t, ctx, `document.getElementById("iocs").textContent`))
		}
		do(t, ctx, chromedp.Reload()) // the page shows the hunts as they were when it loaded
		evalUntil(t, ctx, `!!document.querySelector("#retro-hunts")`, "the retro-hunts section")
	}
	as := retroAlerts(t, in.base)
	var retroID string
	for _, a := range as {
		if a.Retro {
			retroID = a.ID
		}
	}
	if retroID == "" {
		t.Fatalf("no retro alert: %+v", as)
	}
	do(t, ctx, chromedp.Navigate(in.base+"/#/alert/"+retroID))
	evalUntil(t, ctx, `!!document.querySelector("#d-retro")`, "the retro mark on the alert")

	do(t, ctx, chromedp.Navigate(in.base+"/#/rules"))
	row := `document.querySelector('#rules-table tr[data-rule="3c1d6f0e-8a52-4b7e-9f3d-5e2a7c9b1d41"]')`
	evalUntil(t, ctx, `!!`+row+` && !!`+row+`.querySelector("button.retro-run")`, "the retro-run button on the drop-in rule's row")
	if n := evalString(t, ctx, `String(document.querySelectorAll('#rules-table tr[data-rule="294002c4-19e9-49b6-b4e2-92f3756e8c0e"] button.retro-run').length)`); n != "0" {
		t.Errorf("the intelligence-feed rule has %s retro-run buttons; want none", n)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS(`#rules-table tr[data-rule="3c1d6f0e-8a52-4b7e-9f3d-5e2a7c9b1d41"] button.retro-run`)))
	evalUntil(t, ctx, row+`.textContent.includes("queued")`, "the hunt queued")
	waitFor(t, 30*time.Second, func() bool {
		apiGet(t, in.base, "/api/v1/retro", &rep)
		return len(rep.Hunts) == 2 && rep.Hunts[0].Kind == "rule" && rep.Hunts[0].State == "done"
	}, "the rule hunt done")
	if h := rep.Hunts[0]; h.Matches != 1 {
		t.Errorf("rule hunt = %+v; want 1 match", h)
	}
	var wp []retroAlert
	for _, a := range retroAlerts(t, in.base) {
		if a.Rule.ID == "3c1d6f0e-8a52-4b7e-9f3d-5e2a7c9b1d41" {
			wp = append(wp, a)
		}
	}
	if len(wp) != 1 || wp[0].Retro || wp[0].Count != 1 {
		t.Errorf("alerts of the drop-in rule: %+v; want the live one alone, count 1", wp)
	}
	if x := evalString(t, ctx, `String(window.__xss)`); x != "undefined" {
		t.Errorf("window.__xss = %s: markup from an IOC file ran", x)
	}
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}
