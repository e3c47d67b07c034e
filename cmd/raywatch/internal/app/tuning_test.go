package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/store"
)

// runApp starts an App on cfg and returns its base URL and a stop that
// ends Run and checks it returned nil.
func runApp(t *testing.T, cfg Config) (base string, stop func()) {
	t.Helper()
	return runAppLog(t, cfg, quiet)
}

// runAppLog is runApp with a logger.
func runAppLog(t *testing.T, cfg Config, log *slog.Logger) (base string, stop func()) {
	t.Helper()
	a, err := New(cfg, log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base = "http://" + a.Addr().String()
	poll(t, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "healthz")
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		a.Close()
	}
	t.Cleanup(stop)
	return base, stop
}

// call sends a JSON request and decodes a JSON answer into out (unless
// nil); it returns the status code.
func call(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

func postRecords(t *testing.T, base, key string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/plain/batch", bytes.NewReader(body))
	req.Header.Set("X-SEKOIAIO-INTAKE-KEY", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST batch = %v, %v", resp, err)
	}
	resp.Body.Close()
}

type testAlert struct {
	ID     string `json:"id"`
	Count  int    `json:"count"`
	Status string `json:"status"`
	Event  struct {
		Source struct {
			IP string `json:"ip"`
		} `json:"source"`
	} `json:"event"`
	History []struct {
		Reason  string `json:"reason"`
		Comment string `json:"comment"`
	} `json:"status_history"`
}

// lokiAlerts returns the LokiBot alerts by source IP.
func lokiAlerts(t *testing.T, base string) map[string]testAlert {
	t.Helper()
	var page struct{ Alerts []testAlert }
	call(t, "GET", base+"/api/v1/alerts?rule="+traffic.LokiBotID, nil, &page)
	out := map[string]testAlert{}
	for _, a := range page.Alerts {
		out[a.Event.Source.IP] = a
	}
	return out
}

type testException struct {
	ID             string    `json:"id"`
	Suppressed     int64     `json:"suppressed"`
	LastSuppressed time.Time `json:"last_suppressed"`
	CreatedBy      string    `json:"created_by"`
	ClosedAlerts   int       `json:"closed_alerts"`
	Expired        bool      `json:"expired"`
}

// TestAppExceptions drives exceptions through serve's API: creating one
// closes the matching open alert (with its reason, counted per rule); the
// next batch raises nothing for the excepted source while another source
// still alerts; the suppression shows at once in the listing, in
// /api/v1/rules and /metrics, and is stored by the time serve stops; a
// deleted exception stops applying.
func TestAppExceptions(t *testing.T) {
	cfg := testConfig(t)
	key := cfg.IntakeKeys["default"]
	base, stop := runApp(t, cfg)
	const excepted, other = "198.51.100.7", "203.0.113.5"
	postRecords(t, base, key, traffic.LokiBotRecords("a", excepted, other))
	poll(t, func() bool { return len(lokiAlerts(t, base)) == 2 }, "two LokiBot alerts")

	var bad map[string]string
	for _, body := range []map[string]any{
		{"rule": traffic.LokiBotID, "match": map[string]any{"source.ip": excepted}},                                                    // no comment
		{"rule": traffic.LokiBotID, "match": map[string]any{"source.ip": "not-an-ip"}, "comment": "x"},                                 // not an IP
		{"rule": traffic.LokiBotID, "match": map[string]any{"TargetFilename": "x"}, "comment": "x"},                                    // not a field of ours
		{"rule": "no-such-rule", "match": map[string]any{"source.ip": excepted}, "comment": "x"},                                       // unknown rule
		{"rule": traffic.LokiBotID, "match": map[string]any{"source.ip": excepted}, "comment": "x", "expires": "2001-01-01T00:00:00Z"}, // past
		{"rule": traffic.LokiBotID, "match": map[string]any{"source.ip": excepted}, "comment": "x", "id": "mine"},                      // unknown member
	} {
		if code := call(t, "POST", base+"/api/v1/exceptions", body, &bad); code != 400 || bad["error"] == "" {
			t.Errorf("POST %v = %d %v; want 400 with the reason", body, code, bad)
		}
	}

	var x testException
	code := call(t, "POST", base+"/api/v1/exceptions", map[string]any{
		"rule": traffic.LokiBotID, "match": map[string]any{"source.ip": []string{excepted, "192.0.2.0/24"}},
		"comment": "our scanner", "close_matching": true, "close_reason": "false_positive",
	}, &x)
	if code != 201 || x.ID == "" || x.ClosedAlerts != 1 || x.CreatedBy != "anonymous" {
		t.Fatalf("POST exception = %d %+v; want 201, an id, 1 alert closed, created by anonymous", code, x)
	}
	before := lokiAlerts(t, base)
	if a := before[excepted]; a.Status != "closed" || len(a.History) != 1 || a.History[0].Reason != "false_positive" || !strings.Contains(a.History[0].Comment, "our scanner") {
		t.Errorf("alert of the excepted source after close_matching: %+v; want closed as false_positive with the comment", a)
	}
	if before[other].Status != "new" {
		t.Errorf("alert of the other source: %+v; want still new", before[other])
	}

	postRecords(t, base, key, traffic.LokiBotRecords("b", excepted, other))
	poll(t, func() bool { return lokiAlerts(t, base)[other].Count == 2 }, "the other source's alert counting the second batch")
	if got := lokiAlerts(t, base)[excepted]; got.Count != 1 {
		t.Errorf("excepted source's alert count = %d after the second batch; want 1", got.Count)
	}
	var list struct{ Exceptions []testException }
	call(t, "GET", base+"/api/v1/exceptions", nil, &list)
	if len(list.Exceptions) != 1 || list.Exceptions[0].Suppressed != 1 || list.Exceptions[0].LastSuppressed.IsZero() || list.Exceptions[0].Expired {
		t.Errorf("GET /api/v1/exceptions = %+v; want the exception with 1 suppressed, a last time, not expired", list.Exceptions)
	}
	var rules struct {
		Rules []struct {
			ID                     string           `json:"id"`
			SuppressedByExceptions int64            `json:"suppressed_by_exceptions"`
			Closed                 map[string]int64 `json:"closed"`
			Health                 struct{ State string }
		}
	}
	call(t, "GET", base+"/api/v1/rules", nil, &rules)
	for _, r := range rules.Rules {
		if r.ID == traffic.LokiBotID && (r.SuppressedByExceptions != 1 || r.Closed["false_positive"] != 1 || r.Health.State != "ok") {
			t.Errorf("LokiBot in /api/v1/rules: %+v; want 1 suppressed by exceptions, 1 closed as false positive, health ok", r)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`raywatch_rule_closed_total{reason="false_positive",rule="` + traffic.LokiBotID + `"} 1`,
		`raywatch_rule_suppressed_total{by="exception",rule="` + traffic.LokiBotID + `"} 1`,
		`raywatch_rules{kind="detection",state="ok"} 6`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A second exception, deleted: it stops applying at once.
	var y testException
	if code := call(t, "POST", base+"/api/v1/exceptions", map[string]any{"rule": "*", "match": map[string]any{"source.ip": other}, "comment": "tmp", "by": "ana"}, &y); code != 201 || y.CreatedBy != "ana" {
		t.Fatalf("POST second exception = %d %+v", code, y)
	}
	postRecords(t, base, key, traffic.LokiBotRecords("c", other))
	poll(t, func() bool {
		call(t, "GET", base+"/api/v1/exceptions", nil, &list)
		return len(list.Exceptions) == 2 && list.Exceptions[1].Suppressed == 1
	}, "the second exception suppressing the third batch")
	if code := call(t, "DELETE", base+"/api/v1/exceptions/"+y.ID, nil, nil); code != 204 {
		t.Errorf("DELETE = %d; want 204", code)
	}
	if code := call(t, "DELETE", base+"/api/v1/exceptions/"+y.ID, nil, &bad); code != 404 {
		t.Errorf("DELETE again = %d; want 404", code)
	}
	postRecords(t, base, key, traffic.LokiBotRecords("d", other))
	poll(t, func() bool { return lokiAlerts(t, base)[other].Count == 3 }, "the other source alerting again after the delete")

	// The suppression counts are stored by the time serve stops.
	stop()
	st, err := store.Open(filepath.Join(cfg.DataDir, "alerts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	xs, err := st.ListExceptions(context.Background())
	if err != nil || len(xs) != 1 || xs[0].ID != x.ID || xs[0].Suppressed != 1 {
		t.Errorf("stored exceptions after stop = %+v, %v; want %s with 1 suppressed", xs, err, x.ID)
	}
}

// TestAppRuleAlertBudget checks the runaway-rule guard through serve: with
// a budget of 2, a batch of 5 sources raises 2 alerts, and the throttle
// shows in /api/v1/throttled with the rule's title.
func TestAppRuleAlertBudget(t *testing.T) {
	cfg := testConfig(t)
	cfg.Tuning.RuleAlertBudget = 2
	var logs lockedBuffer
	base, _ := runAppLog(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	postRecords(t, base, cfg.IntakeKeys["default"], traffic.LokiBotRecords("a", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"))
	var rep struct {
		Budget    int
		Throttled []struct {
			Rule, Title      string
			Created, Dropped int64
		}
	}
	poll(t, func() bool {
		call(t, "GET", base+"/api/v1/throttled", nil, &rep)
		return len(rep.Throttled) == 1 && rep.Throttled[0].Dropped == 3
	}, "the throttled rule")
	if th := rep.Throttled[0]; rep.Budget != 2 || th.Rule != traffic.LokiBotID || th.Title != "LokiBot User-Agent" || th.Created != 2 {
		t.Errorf("throttled = %+v; want LokiBot with 2 created, budget 2", rep)
	}
	if n := len(lokiAlerts(t, base)); n != 2 {
		t.Errorf("%d LokiBot alerts; want 2 (the budget)", n)
	}
	if l := logs.String(); !strings.Contains(l, `level=WARN msg="rule over its alert budget`) || !strings.Contains(l, "rule="+traffic.LokiBotID) || !strings.Contains(l, "budget=2") {
		t.Errorf("no throttle warning naming the rule and the budget in the log:\n%s", l)
	}
}

// TestAppReportsRuleHealth checks that serve logs each rule unable to fire
// (file, line, field) and each skipped rule, and lists both on
// /api/v1/rules; after the rules folder changes, the new state shows.
func TestAppReportsRuleHealth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("proxy.yml", "title: Proxy script download\nid: 6c0b7c10-0000-4000-8000-000000000003\nlogsource:\n  category: proxy\ndetection:\n  selection:\n    TargetFilename|endswith: '.ps1'\n  condition: selection\nlevel: medium\n")
	write("old.yml", "title: Old one\nid: 6c0b7c10-0000-4000-8000-000000000006\nstatus: deprecated\nlogsource: {category: webserver}\ndetection:\n  selection:\n    url.path: /old\n  condition: selection\nlevel: low\n")
	cfg := testConfig(t)
	cfg.RulesDir = dir
	var logs lockedBuffer
	base, _ := runAppLog(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	l := logs.String()
	for _, want := range []string{
		`level=WARN msg="rule unable to fire: not evaluated" file=` + filepath.Join(dir, "proxy.yml") + ` line=7 field=TargetFilename`,
		`level=INFO msg="rule not loaded" file=` + filepath.Join(dir, "old.yml") + ` line=3 rule="Old one" reason="status deprecated"`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %s:\n%s", want, l)
		}
	}
	type rulesPage struct {
		Rules []struct {
			ID     string
			Kind   string
			Health struct {
				State, File, Field string
				Line               int
			}
		}
		Skipped []struct {
			File, Title, Reason string
			Line                int
		}
	}
	var page rulesPage
	call(t, "GET", base+"/api/v1/rules", nil, &page)
	found := false
	for _, r := range page.Rules {
		if r.ID == "6c0b7c10-0000-4000-8000-000000000003" {
			found = true
			if r.Kind != "detection" || r.Health.State != "unable_to_fire" || r.Health.Field != "TargetFilename" || r.Health.Line != 7 {
				t.Errorf("unmapped rule in /api/v1/rules: %+v; want unable_to_fire on TargetFilename, line 7", r)
			}
		}
	}
	if !found || len(page.Skipped) != 1 || page.Skipped[0].Reason != "status deprecated" || page.Skipped[0].Line != 3 {
		t.Errorf("/api/v1/rules: rule found %v, skipped %+v; want the unmapped rule and old.yml skipped at line 3", found, page.Skipped)
	}
	// The deprecated rule comes back to life; the watcher reloads.
	write("old.yml", "title: Old one\nid: 6c0b7c10-0000-4000-8000-000000000006\nstatus: test\nlogsource: {category: webserver}\ndetection:\n  selection:\n    url.path: /old\n  condition: selection\nlevel: low\n")
	poll(t, func() bool {
		page = rulesPage{}
		call(t, "GET", base+"/api/v1/rules", nil, &page)
		return len(page.Skipped) == 0 && len(page.Rules) == 8
	}, "the reloaded rules without a skipped one")
}
