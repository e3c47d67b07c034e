package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/notify/amtest"
)

// hookReceiver is a webhook receiver that verifies each delivery's
// signature on its own (HMAC-SHA256 of the exact body) and keeps the
// deliveries de-duplicated by X-Raywatch-Delivery. While down, it
// answers 503 and keeps nothing.
type hookReceiver struct {
	secret []byte
	down   atomic.Bool

	mu         sync.Mutex
	attempts   int
	deliveries map[string]hookDelivery // by delivery id
	problems   []string
}

type hookDelivery struct {
	Kind  string          `json:"kind"`
	Alert json.RawMessage `json:"alert"`
	alert apiAlert
}

func newHookReceiver(secret string) *hookReceiver {
	return &hookReceiver{secret: []byte(secret), deliveries: map[string]hookDelivery{}}
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	if h.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	mac := hmac.New(sha256.New, h.secret)
	mac.Write(body)
	id := r.Header.Get("X-Raywatch-Delivery")
	var d hookDelivery
	switch {
	case err != nil:
		h.problems = append(h.problems, "read body: "+err.Error())
	case r.Header.Get("X-Raywatch-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)):
		h.problems = append(h.problems, "delivery "+id+": the signature does not verify")
	case id == "":
		h.problems = append(h.problems, "a delivery without X-Raywatch-Delivery")
	case json.Unmarshal(body, &d) != nil || json.Unmarshal(d.Alert, &d.alert) != nil || d.alert.ID == "":
		h.problems = append(h.problems, "delivery "+id+": not {kind, alert}: "+string(body))
	default:
		h.deliveries[id] = d
	}
}

// alerts returns the last delivery of each alert, by alert id, and the
// number of deliveries.
func (h *hookReceiver) alerts() (map[string]hookDelivery, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]hookDelivery{}
	for _, d := range h.deliveries {
		if prev, ok := out[d.alert.ID]; !ok || d.alert.Count >= prev.alert.Count {
			out[d.alert.ID] = d
		}
	}
	return out, len(h.deliveries)
}

func (h *hookReceiver) tried() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts
}

func (h *hookReceiver) check(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.problems {
		t.Error(p)
	}
}

// outputsReport is GET /api/v1/outputs.
type outputsReport struct {
	Outputs []struct {
		Name      string `json:"name"`
		Type      string `json:"type"`
		Target    string `json:"target"`
		State     string `json:"state"`
		Queue     int    `json:"queue"`
		Delivered int    `json:"delivered"`
		Active    int    `json:"active"`
		LastError string `json:"last_error"`
	} `json:"outputs"`
}

// TestOutputsSurviveCrash checks the outbox through the binary: batches
// are acknowledged while the webhook receiver answers 503, half of them
// committed (their deliveries wait in the outbox only) and the rest
// possibly still in the spool, then raywatch is killed with SIGKILL.
// Restarted with the receiver up, it delivers an alert for every group
// that `raywatch scan` finds in the acknowledged records, each signed.
func TestOutputsSurviveCrash(t *testing.T) {
	const key = "outputs-crash-key-0123456789"
	const nBatches, perBatch = 24, 300
	secretFile := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(secretFile, []byte("crash-test-webhook-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := newHookReceiver("crash-test-webhook-secret")
	hook.down.Store(true)
	srv := httptest.NewServer(hook)
	defer srv.Close()
	args := []string{"--webhook-url", srv.URL + "/hook"}
	env := []string{"RAYWATCH_INTAKE_KEY=" + key, "RAYWATCH_WEBHOOK_SECRET_FILE=" + secretFile}
	dir := t.TempDir()
	in := startServeArgs(t, dir, args, env...)

	var plain bytes.Buffer
	bodies := make([][]byte, nBatches)
	for b := range bodies {
		raw := genBatch(b, perBatch, 50)
		plain.Write(raw)
		bodies[b] = gzipBytes(t, raw)
	}
	post := func(b int) {
		t.Helper()
		if status, resp, err := tryPost(in.base, key, bodies[b]); err != nil || status != 200 {
			t.Fatalf("batch %d: %d %s %v", b, status, resp, err)
		}
	}
	// The first half is committed: its deliveries are in the outbox only.
	for b := range nBatches / 2 {
		post(b)
	}
	waitFor(t, 60*time.Second, func() bool { n, _ := apiStats(t, in.base, ""); return n == 0 }, "the first half committed")
	waitFor(t, 30*time.Second, func() bool { return hook.tried() > 0 }, "a delivery attempt")
	var rep outputsReport
	waitFor(t, 30*time.Second, func() bool {
		apiGet(t, in.base, "/api/v1/outputs", &rep)
		return len(rep.Outputs) == 1 && rep.Outputs[0].State == "retrying"
	}, "the webhook output retrying")
	if o := rep.Outputs[0]; o.Queue == 0 || !strings.Contains(o.LastError, "503") {
		t.Errorf("output while the receiver fails: %+v; want a queue and the 503", o)
	}
	// The second half is killed right after its last 2xx.
	for b := nBatches / 2; b < nBatches; b++ {
		post(b)
	}
	in.cmd.Process.Kill()
	<-in.exited
	if _, n := hook.alerts(); n != 0 {
		t.Fatalf("%d deliveries before the kill; the test proves nothing", n)
	}
	t.Logf("killed after %d acknowledged batches and %d refused delivery attempts", nBatches, hook.tried())

	hook.down.Store(false)
	again := startServeArgs(t, dir, args, env...)
	if m := regexpFind(again.log(), `msg="replaying spooled batches" batches=(\d+)`); m != "" {
		t.Logf("restart replays %s spooled batches", m)
	}
	want := scanGroups(t, plain.Bytes())
	waitFor(t, 60*time.Second, func() bool { n, _ := apiStats(t, again.base, ""); return n == 0 }, "an empty spool")
	got := map[string]string{} // group -> alert id
	waitFor(t, 90*time.Second, func() bool {
		delivered, _ := hook.alerts()
		clear(got)
		for id, d := range delivered {
			first, err := time.Parse(time.RFC3339Nano, d.alert.FirstSeen)
			if err != nil {
				t.Fatal(err)
			}
			got[groupKey(d.alert.Rule.ID, first, d.alert.Event, time.Hour)] = id
		}
		return len(got) >= len(want)
	}, fmt.Sprintf("deliveries of the %d alert groups", len(want)))
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("group %s: no delivery", k)
		}
	}
	if len(got) != len(want) {
		t.Errorf("deliveries for %d groups; want %d", len(got), len(want))
	}
	delivered, n := hook.alerts()
	for _, a := range allAlerts(t, again.base, "") {
		if _, ok := delivered[a.ID]; !ok {
			t.Errorf("alert %s (%s) is stored but was not delivered", a.ID, a.Rule.Title)
		}
	}
	hook.check(t)
	t.Logf("%d alert groups delivered in %d deliveries after the restart", len(got), n)
	if code := again.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

// startAlertmanager runs Debian's Alertmanager with a route that sends
// the alerts of raywatch's intake "default" to a webhook receiver in the
// test; it returns its URL and the receiver.
func startAlertmanager(t *testing.T) (string, *amtest.Receiver) {
	t.Helper()
	return amtest.Start(t, func(hook string) string {
		return fmt.Sprintf(`route:
  receiver: nowhere
  routes:
    - matchers: ['intake="default"', 'rule_id=~".+"']
      receiver: raywatch-test
      group_by: [alert_id]
      group_wait: 50ms
      group_interval: 200ms
      repeat_interval: 1h
receivers:
  - name: nowhere
  - name: raywatch-test
    webhook_configs:
      - url: %s/
`, hook)
	})
}

// nested returns the string at a dotted path of an event.
func nested(event map[string]any, path string) string {
	var v any = event
	for p := range strings.SplitSeq(path, ".") {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

// TestOutputsAlertmanagerAndWebhook serves with --alertmanager-url (a
// real Alertmanager, whose route matches raywatch's labels) and
// --webhook-url (high and critical alerts only), posts the sample batch,
// and checks that each alert comes out of Alertmanager's routing with
// raywatch's labels and links, and that the webhook receives, signed, the
// high and critical alerts exactly as GET /api/v1/alerts/{id} shows them.
func TestOutputsAlertmanagerAndWebhook(t *testing.T) {
	amURL, am := startAlertmanager(t)
	const key, secret = "outputs-e2e-key-0123456789", "outputs-e2e-webhook-secret"
	hook := newHookReceiver(secret)
	srv := httptest.NewServer(hook)
	defer srv.Close()
	in := startServeArgs(t, t.TempDir(), []string{
		"--alertmanager-url", amURL, "--webhook-url", srv.URL + "/hook", "--webhook-min-level", "high",
		"--external-url", "https://raywatch.example.com/",
	}, "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_WEBHOOK_SECRET="+secret)
	if status, resp := postBatch(t, in.base, key, sampleBatch(t)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	alerts := waitAlerts(t, in.base, 5)
	high := 0
	for _, a := range alerts {
		var got amtest.Notification
		waitFor(t, 30*time.Second, func() bool { var ok bool; got, ok = am.Find(a.ID, "firing"); return ok }, "Alertmanager's notification of "+a.Rule.Title)
		want := map[string]string{
			"alertname": a.Rule.Title, "rule_id": a.Rule.ID, "severity": a.Rule.Level, "intake": "default",
			"source_ip": nested(a.Event, "source.ip"), "host": nested(a.Event, "destination.address"), "alert_id": a.ID,
		}
		if d := cmp.Diff(want, got.Labels); d != "" {
			t.Errorf("%s: labels (-want +got):\n%s", a.Rule.Title, d)
		}
		link := "https://raywatch.example.com/#/alert/" + a.ID
		if got.Annotations["dashboard"] != link || got.GeneratorURL != link || !strings.HasPrefix(got.Annotations["summary"], a.Rule.Title) {
			t.Errorf("%s: annotations %q, generatorURL %q; want the link %s", a.Rule.Title, got.Annotations, got.GeneratorURL, link)
		}
		if a.Rule.Level == "high" || a.Rule.Level == "critical" {
			high++
		}
	}
	if high == 0 || high == len(alerts) {
		t.Fatalf("%d of %d alerts are high or critical; the level filter is not tested", high, len(alerts))
	}
	var delivered map[string]hookDelivery
	waitFor(t, 30*time.Second, func() bool { delivered, _ = hook.alerts(); return len(delivered) >= high }, "the webhook deliveries")
	for _, a := range alerts {
		d, ok := delivered[a.ID]
		if a.Rule.Level != "high" && a.Rule.Level != "critical" {
			if ok {
				t.Errorf("%s (%s) reached the webhook despite --webhook-min-level high", a.Rule.Title, a.Rule.Level)
			}
			continue
		}
		if !ok || d.Kind != "alert.new" {
			t.Errorf("%s: webhook delivery %+v; want alert.new", a.Rule.Title, d.Kind)
			continue
		}
		var fromAPI, fromHook map[string]any
		apiGet(t, in.base, "/api/v1/alerts/"+a.ID, &fromAPI)
		if err := json.Unmarshal(d.Alert, &fromHook); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fromAPI, fromHook); diff != "" {
			t.Errorf("%s: webhook alert differs from GET /api/v1/alerts/{id} (-api +webhook):\n%s", a.Rule.Title, diff)
		}
	}
	hook.check(t)
	// The receiver has a delivery a moment before the output counts it.
	var rep outputsReport
	waitFor(t, 30*time.Second, func() bool {
		apiGet(t, in.base, "/api/v1/outputs", &rep)
		for _, o := range rep.Outputs {
			if o.Queue != 0 {
				return false
			}
		}
		return true
	}, "empty output queues")
	names := []string{}
	for _, o := range rep.Outputs {
		names = append(names, o.Name+":"+o.State)
		if o.Queue != 0 || o.Delivered == 0 {
			t.Errorf("output %+v; want an empty queue and deliveries", o)
		}
	}
	sort.Strings(names)
	if d := cmp.Diff([]string{"alertmanager-1:ok", "webhook-1:ok"}, names); d != "" {
		t.Errorf("outputs (-want +got):\n%s", d)
	}
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}

// TestDashboardOutputsPanel points the webhook at a receiver whose answer
// carries markup in its status line, with an outbox of two deliveries:
// the overview shows the output as retrying, at the top, with its queue,
// that error as text, and the deliveries dropped.
func TestDashboardOutputsPanel(t *testing.T) {
	ctx := newBrowser(t)
	guardPage(t, ctx)
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 503 <img src=x onerror=\"window.__xss=7\">\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		buf.Flush()
	}))
	defer hostile.Close()
	const key = "dashboard-outputs-key"
	in := startServeArgs(t, t.TempDir(), []string{"--webhook-url", hostile.URL + "/hook", "--outbox-max", "2"}, "RAYWATCH_INTAKE_KEY="+key)
	if status, resp := postBatch(t, in.base, key, recentSample(t)); status != 200 {
		t.Fatalf("POST = %d %s", status, resp)
	}
	waitAlerts(t, in.base, 5)
	var rep outputsReport
	waitFor(t, 30*time.Second, func() bool {
		apiGet(t, in.base, "/api/v1/outputs", &rep)
		return len(rep.Outputs) == 1 && rep.Outputs[0].State == "retrying"
	}, "the webhook output retrying")

	do(t, ctx, chromedp.EmulateViewport(1280, 860), chromedp.Navigate(in.base+"/#/overview"))
	evalUntil(t, ctx, `!!document.querySelector("#outputs tr[data-output='webhook-1'] .out-error") && !!document.querySelector("#overview svg.chart")`, "the outputs panel")
	var got struct {
		Top     bool   `json:"top"`
		State   string `json:"state"`
		Queue   string `json:"queue"`
		Error   string `json:"error"`
		XSS     any    `json:"xss"`
		Imgs    int    `json:"imgs"`
		Dropped string `json:"dropped"`
		Full    string `json:"full"`
	}
	evalJSON(t, ctx, `JSON.stringify({
		top: !!(document.getElementById("outputs").compareDocumentPosition(document.querySelector("#overview svg.chart")) & Node.DOCUMENT_POSITION_FOLLOWING),
		state: document.querySelector("#outputs tr[data-output='webhook-1'] .out-state .chip").textContent,
		queue: document.querySelector("#outputs tr[data-output='webhook-1'] .out-queue").textContent,
		error: document.querySelector("#outputs tr[data-output='webhook-1'] .out-error").textContent,
		xss: window.__xss === undefined ? null : window.__xss,
		imgs: document.querySelectorAll("body img, [onerror]").length,
		dropped: document.querySelector("#outputs tr[data-output='webhook-1'] .out-dropped").textContent,
		full: (document.querySelector("#outputs p.error") || {}).textContent || "",
	})`, &got)
	if !got.Top || got.State != "retrying" || got.Queue != "2" || got.Dropped != "3" || !strings.Contains(got.Full, "3 deliveries were dropped") {
		t.Errorf("panel: top %v, state %q, queue %q, dropped %q, %q; want at the top, retrying, 2 queued and 3 dropped of the 5 alerts", got.Top, got.State, got.Queue, got.Dropped, got.Full)
	}
	if !strings.Contains(got.Error, `webhook answered 503 <img src=x onerror="window.__xss=7">`) || got.XSS != nil || got.Imgs != 0 {
		t.Errorf("last error %q, __xss %v, %d injected elements; want the status line as text", got.Error, got.XSS, got.Imgs)
	}
	t.Logf("overview screenshot: %s", screenshot(t, ctx, t.TempDir(), "outputs.png"))
	noCSPViolations(t, ctx)
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}
