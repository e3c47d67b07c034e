package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath returns the browser the dashboard tests drive. They skip
// when it is absent, unless RAYWATCH_REQUIRE_BROWSER=1 (as in CI), where
// they fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("RAYWATCH_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("RAYWATCH_REQUIRE_BROWSER") == "1" {
		t.Fatal("Chromium not found at /usr/bin/chromium and RAYWATCH_REQUIRE_BROWSER=1: install it (apt-get install -y chromium)")
	}
	t.Skip("Chromium not found at /usr/bin/chromium: skipping the browser test (apt-get install -y chromium to run it)")
	return ""
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// evalUntil evaluates js in the page until it returns true.
func evalUntil(t *testing.T, ctx context.Context, js, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if err := chromedp.Do(ctx, chromedp.Sleep(50*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDashboardShowsLiveAlerts(t *testing.T) {
	ctx := newBrowser(t)
	const key = "dashboard-test-key"
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(in.base+"/"),
		chromedp.WaitReady(chromedp.CSS("#alert-rows")),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	evalUntil(t, ctx, `document.getElementById("conn").textContent === "live"`, "the live connection state")

	// An attacker controls user-agents and paths: both carry markup that
	// would run if the dashboard used innerHTML.
	hostile := `{"ClientIP":"203.0.113.9","ClientRequestHost":"shop.example.com","ClientRequestMethod":"GET",` +
		`"ClientRequestURI":"/pool/job/priority/<img src=x onerror=\"window.__xss=1\">",` +
		`"ClientRequestPath":"/pool/job/priority/<img src=x onerror=\"window.__xss=1\">",` +
		`"ClientRequestUserAgent":"<script>window.__xss=2</script>\"'><svg onload=window.__xss=3>",` +
		`"EdgeStartTimestamp":1795600000000000000,"RayID":"5ca1ab1e00000001"}` + "\n"
	for _, body := range [][]byte{sampleBatch(t), []byte(hostile)} {
		if status, resp := postBatch(t, in.base, key, body); status != 200 {
			t.Fatalf("POST = %d %s", status, resp)
		}
	}
	// Five grouped alerts from the sample batch, one from the hostile record.
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 6`, "6 alert rows")

	var page struct {
		NotReloaded bool     `json:"notReloaded"`
		XSS         any      `json:"xss"`
		Markup      int      `json:"markup"`
		Titles      []string `json:"titles"`
		HostileUA   string   `json:"hostileUA"`
		HostilePath string   `json:"hostilePath"`
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		notReloaded: window.__notReloaded === true,
		xss: window.__xss === undefined ? null : window.__xss,
		markup: document.querySelectorAll("#alert-rows img, #alert-rows script, #alert-rows svg").length,
		titles: Array.from(document.querySelectorAll("#alert-rows td.rule")).map(td => td.textContent),
		hostileUA: document.querySelector("#alert-rows tr td.ua").textContent,
		hostilePath: document.querySelector("#alert-rows tr td.path").textContent,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &page); err != nil {
		t.Fatal(err)
	}
	if !page.NotReloaded {
		t.Error("the page reloaded; want alerts to arrive over the websocket")
	}
	if page.XSS != nil || page.Markup != 0 {
		t.Errorf("hostile values executed or became markup: __xss=%v, elements=%d", page.XSS, page.Markup)
	}
	// The hostile record is the newest: it must be the first row, as text.
	if !strings.Contains(page.HostileUA, "<script>window.__xss=2</script>") || !strings.Contains(page.HostilePath, `<img src=x onerror="window.__xss=1">`) {
		t.Errorf("first row UA %q, path %q; want the hostile values shown as text", page.HostileUA, page.HostilePath)
	}
	joined := strings.Join(page.Titles, "|")
	for _, title := range sampleTitles {
		if !strings.Contains(joined, title) {
			t.Errorf("rows %q lack %q", page.Titles, title)
		}
	}
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

func TestDashboardLogin(t *testing.T) {
	ctx := newBrowser(t)
	const key = "dashboard-login-intake-key"
	const token = "dashboard-login-token-0123456789"
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_DASHBOARD_TOKEN="+token)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(in.base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "wrong-token-0123456789"),
		chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)),
	); err != nil {
		t.Fatal(err)
	}
	evalUntil(t, ctx, `!document.getElementById("login-error").hidden`, "the wrong-token message")
	if err := chromedp.Do(ctx,
		chromedp.Clear(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)),
		chromedp.WaitReady(chromedp.CSS("#alert-rows")),
	); err != nil {
		t.Fatal(err)
	}
	evalUntil(t, ctx, `document.getElementById("conn").textContent === "live"`, "the live connection state after login")
	if status, resp := postBatch(t, in.base, key, sampleBatch(t)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	evalUntil(t, ctx, `document.querySelectorAll("#alert-rows tr").length === 5`, "5 alert rows")
	// The session cookie is HttpOnly: the page's scripts cannot read it.
	if c, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); err != nil || c != "" {
		t.Errorf("document.cookie = %q, %v; want it empty (HttpOnly)", c, err)
	}
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}
