package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/rules/alert"
)

type fixedRules []RuleStatus

func (f fixedRules) Rules() []RuleStatus { return f }

func rule(id, title string, enabled bool, tags ...string) RuleStatus {
	return RuleStatus{ID: id, Title: title, Tags: tags, Enabled: enabled}
}

func TestAttackLayer(t *testing.T) {
	s := &Server{opts: Options{Rules: fixedRules{
		rule("a", "Rule A", true, "attack.command-and-control", "attack.t1071.001"),
		rule("b", "Rule B", true, "attack.command_and_control", "attack.T1071.001", "attack.t1041", "attack.exfiltration", "attack.g0016"),
		rule("c", "Rule C", false, "attack.t1566"),
		rule("d", "Rule D", true, "attack.initial-access", "attack.t9999"),
	}}}
	layer := s.attackLayer()
	type tech struct {
		ID    string
		Score int
		Sub   bool
		Meta  []navigatorMeta
	}
	var got []tech
	for _, nt := range layer.Techniques {
		tc := tech{ID: nt.TechniqueID, Sub: nt.ShowSubtechniques, Meta: nt.Metadata}
		if nt.Score != nil {
			tc.Score = *nt.Score
		}
		got = append(got, tc)
	}
	want := []tech{
		// Each technique under its own tactics (issue 15: T1041 is
		// exfiltration only, though Rule B is also tagged
		// command-and-control), with its name.
		{ID: "T1041", Score: 1, Meta: []navigatorMeta{{"technique", "Exfiltration Over C2 Channel"}, {"tactic", "exfiltration"}, {"rule", "Rule B"}}},
		{ID: "T1071", Sub: true, Meta: []navigatorMeta{{"technique", "Application Layer Protocol"}}},
		{ID: "T1071.001", Score: 2, Meta: []navigatorMeta{{"technique", "Web Protocols"}, {"tactic", "command-and-control"}, {"rule", "Rule A"}, {"rule", "Rule B"}}},
		// A technique the table does not know keeps its rule's tactics.
		{ID: "T9999", Score: 1, Meta: []navigatorMeta{{"tactic", "initial-access"}, {"rule", "Rule D"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer techniques (-want +got):\n%s", diff)
	}
	if layer.Domain != "enterprise-attack" || layer.Versions["layer"] != "4.5" || layer.Gradient["maxValue"] != 2 || layer.Versions["attack"] != "18" {
		t.Errorf("layer header = %q %v %v", layer.Domain, layer.Versions, layer.Gradient)
	}
}

// commentBackend is a fakeBackend that keeps comments.
type commentBackend struct{ *fakeBackend }

func (c commentBackend) SetStatusComment(ctx context.Context, id, status, by, comment string) (alert.Alert, error) {
	a, err := c.SetStatus(ctx, id, status, by)
	if err == nil {
		c.mu.Lock()
		for i := range c.alerts {
			if c.alerts[i].ID == id {
				h := &c.alerts[i].StatusHistory[len(c.alerts[i].StatusHistory)-1]
				h.Comment = comment
				a = c.alerts[i]
			}
		}
		c.mu.Unlock()
	}
	return a, err
}

func TestDashboardEndpoints(t *testing.T) {
	hub := NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go hub.Run(ctx)
	be := &fakeBackend{hub: hub, alerts: []alert.Alert{{ID: "000000000001aa", Status: alert.StatusNew}}}
	var gotRange time.Duration
	s, err := New(Options{
		IntakeKeys: map[string]string{"default": "k"},
		Spool:      be,
		Alerts:     commentBackend{be},
		Hub:        hub,
		Rules:      fixedRules{rule("a", "Rule A", true, "attack.t1071.001")},
		RuleErrors: func() []RuleLoadError { return []RuleLoadError{{File: "bad.yml", Line: 3, Error: "boom"}} },
		Overview: func(ctx context.Context, to time.Time, rng time.Duration) (Overview, error) {
			gotRange = rng
			return Overview{Alerts: 1}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if cd := resp.Header.Get("Content-Disposition"); path == "/api/v1/attack/layer" && !strings.Contains(cd, "attachment") {
			t.Errorf("layer Content-Disposition = %q; want an attachment", cd)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := do("GET", "/api/v1/rules", ""); code != 200 || !strings.Contains(body, `"errors":[{"file":"bad.yml","line":3,"error":"boom"}]`) {
		t.Errorf("GET rules = %d %s; want the load error", code, body)
	}
	if code, body := do("GET", "/api/v1/overview?range=1h", ""); code != 200 || gotRange != time.Hour {
		t.Errorf("GET overview = %d %s (range %v); want 200, 1h", code, body, gotRange)
	}
	if code, _ := do("GET", "/api/v1/overview?range=bogus", ""); code != 400 {
		t.Errorf("GET overview?range=bogus = %d; want 400", code)
	}
	if code, body := do("GET", "/api/v1/attack/layer", ""); code != 200 || !strings.Contains(body, `"techniqueID":"T1071.001"`) {
		t.Errorf("GET layer = %d %s", code, body)
	}
	code, body := do("PATCH", "/api/v1/alerts/000000000001aa", `{"status":"acknowledged","comment":"  looked at it  "}`)
	var a alert.Alert
	if err := json.Unmarshal([]byte(body), &a); code != 200 || err != nil {
		t.Fatalf("PATCH = %d %s", code, body)
	}
	if len(a.StatusHistory) != 1 || a.StatusHistory[0].Comment != "looked at it" || a.Status != alert.StatusAcknowledged {
		t.Errorf("after PATCH: status %q, history %+v; want acknowledged with the comment", a.Status, a.StatusHistory)
	}
}
