package engine_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/exception"
)

// TestExportSigmaRoundTrip exports exceptions as Sigma filters and loads
// them back: the filters suppress exactly the events the exceptions do.
func TestExportSigmaRoundTrip(t *testing.T) {
	const rar = "6f3e2987-db24-4c78-a860-b4f4095a7095"
	scanner := x("0001", "*", "our scanner")
	scanner.Match["source.ip"] = exception.Values{"198.51.100.7", "203.0.113.0/28", "2001:db8::/32"}
	health := x("0002", rar, "health *checks*")
	health.Match["url.path|startswith"] = exception.Values{"/health?"}
	health.Match["user_agent.original|contains"] = exception.Values{"Kube-Probe"}
	partner := x("0003", "other", "partner crawler")
	partner.Match["user_agent.original"] = exception.Values{`Partner\Bot*`, "other bot"}
	partner.Match["url.domain|endswith"] = exception.Values{".example.test"}
	xs := []exception.Exception{scanner, health, partner}

	yaml := exception.ExportSigma(xs)
	filters, err := rules.ParseAll("exceptions.yml", yaml)
	if err != nil {
		t.Fatalf("exported YAML does not load: %v\n%s", err, yaml)
	}
	base := parseRules(t, ruleRar+"---\n"+ruleOther+"---\n"+ruleJump)
	withExceptions, err := engine.New(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := withExceptions.SetExceptions(xs); err != nil {
		t.Fatal(err)
	}
	withFilters, err := engine.New(append(base, filters...))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range withFilters.Rules() {
		if st.Kind() == rules.KindFilter && st.Health.State != engine.HealthOK {
			t.Errorf("exported filter %s: %v", st.ID, st.Health)
		}
	}
	ev := func(ip, uri, ua, host string) *normalize.Event {
		return httpEvent(t, map[string]any{"ClientIP": ip, "ClientRequestURI": uri, "ClientRequestPath": uri, "ClientRequestUserAgent": ua, "ClientRequestHost": host, "RayID": ip + uri + ua + host})
	}
	events := []*normalize.Event{
		ev("198.51.100.7", "/a.rar", "x", "a.test"),
		ev("203.0.113.15", "/login", "x", "a.test"),
		ev("203.0.113.16", "/login", "x", "a.test"),
		ev("2001:db8::5", "/a.rar", "x", "a.test"),
		ev("192.0.2.1", "/health?/x.rar", "kube-probe/1", "a.test"),
		ev("192.0.2.1", "/healthz/x.rar", "kube-probe/1", "a.test"), // "?" is literal
		ev("192.0.2.1", "/health?/x.rar", "curl", "a.test"),
		ev("192.0.2.2", "/b.rar", `partner\bot*`, "www.example.test"),
		ev("192.0.2.2", "/b.rar", `partner\bot-2`, "www.example.test"), // "*" is literal
		ev("192.0.2.2", "/b.rar", "OTHER BOT", "www.example.test"),
		ev("192.0.2.2", "/b.rar", "other bot", "www.example.org"),
	}
	for i, e := range events {
		a, b := alertIDs(withExceptions, e), alertIDs(withFilters, e)
		if strings.Join(a, ",") != strings.Join(b, ",") {
			t.Errorf("event %d: exceptions leave %v, exported filters %v", i, a, b)
		}
	}
	if st := statusOf(t, withExceptions, rar); st.SuppressedByExceptions == 0 {
		t.Error("the exceptions suppressed nothing: the test proves nothing")
	}
}

func TestEvalSampling(t *testing.T) {
	e, err := engine.NewWithOptions(parseRules(t, ruleRar+"---\n"+ruleJump+"---\n"+ruleOther), engine.Options{EvalSampleEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		e.Match(userEvent(t, "/a.rar", "", "198.51.100.1"), "t", time.Now())
	}
	var total float64
	for _, st := range e.Rules() {
		total += st.EvalShare
		switch st.ID {
		case "df0841c0-9846-4e9f-ad8a-7df91571771b": // never a candidate: /login is not in the URI
			if st.EvalSeconds != 0 || st.EvalShare != 0 {
				t.Errorf("rule jump: eval %vs, share %v; want 0", st.EvalSeconds, st.EvalShare)
			}
		default:
			if st.EvalSeconds <= 0 || st.EvalShare <= 0 {
				t.Errorf("rule %s: eval %vs, share %v; want > 0", st.ID, st.EvalSeconds, st.EvalShare)
			}
		}
	}
	if math.Abs(total-1) > 1e-9 {
		t.Errorf("eval shares sum to %v; want 1", total)
	}
}

func TestCollector(t *testing.T) {
	rs := parseRules(t, ruleRar+"---\n"+ruleOther+"---\n"+specFilterWeb+"---\ntitle: win\nid: win\nlogsource: {product: windows}\ndetection:\n  sel:\n    Image: x\n  condition: sel\n")
	e, err := engine.NewWithOptions(rs, engine.Options{Disabled: []string{"other"}})
	if err != nil {
		t.Fatal(err)
	}
	scanner := x("s", "*", "scanner")
	scanner.Match["source.ip"] = exception.Values{"198.51.100.7"}
	if err := e.SetExceptions([]exception.Exception{scanner}); err != nil {
		t.Fatal(err)
	}
	e.Match(userEvent(t, "/a.rar", "", "198.51.100.1"), "t", time.Now())
	e.Match(userEvent(t, "/a.rar", "", "198.51.100.7"), "t", time.Now())
	e.Match(userEvent(t, "/a.rar", "adm_x", "198.51.100.1"), "t", time.Now())
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.Collector())
	const rar = `rule="6f3e2987-db24-4c78-a860-b4f4095a7095"`
	want := `
# HELP raywatch_rule_detections_total Alerts raised by the engine, by rule, before the store groups them.
# TYPE raywatch_rule_detections_total counter
raywatch_rule_detections_total{` + rar + `} 1
raywatch_rule_detections_total{rule="other"} 0
raywatch_rule_detections_total{rule="win"} 0
# HELP raywatch_rule_suppressed_total Events a rule matched that raised no alert, by rule and by what suppressed them (exception or filter).
# TYPE raywatch_rule_suppressed_total counter
raywatch_rule_suppressed_total{by="exception",` + rar + `} 1
raywatch_rule_suppressed_total{by="exception",rule="other"} 0
raywatch_rule_suppressed_total{by="exception",rule="win"} 0
raywatch_rule_suppressed_total{by="filter",` + rar + `} 1
raywatch_rule_suppressed_total{by="filter",rule="other"} 0
raywatch_rule_suppressed_total{by="filter",rule="win"} 0
# HELP raywatch_filter_suppressed_total Events each Sigma filter kept from alerting.
# TYPE raywatch_filter_suppressed_total counter
raywatch_filter_suppressed_total{filter="` + rs[2].ID + `"} 1
# HELP raywatch_rules Loaded rules by kind (detection, correlation, filter) and state (ok, unable_to_fire, disabled).
# TYPE raywatch_rules gauge
raywatch_rules{kind="detection",state="disabled"} 1
raywatch_rules{kind="detection",state="ok"} 1
raywatch_rules{kind="detection",state="unable_to_fire"} 1
raywatch_rules{kind="filter",state="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "raywatch_rule_detections_total", "raywatch_rule_suppressed_total", "raywatch_filter_suppressed_total", "raywatch_rules"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "raywatch_rule_eval_share", "raywatch_rule_eval_seconds_sampled_total"); err != nil || n != 6 {
		t.Errorf("eval metrics: %d series, %v; want 6", n, err)
	}
}
