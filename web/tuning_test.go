package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/rules/exception"
)

// fakeExceptions is an in-memory ExceptionStore.
type fakeExceptions struct {
	mu     sync.Mutex
	xs     []exception.Exception
	closes []CloseMatching
	closed []alert.Alert
}

func (f *fakeExceptions) ListExceptions(ctx context.Context) ([]exception.Exception, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]exception.Exception(nil), f.xs...), nil
}

func (f *fakeExceptions) AddException(ctx context.Context, x exception.Exception, c *CloseMatching) (exception.Exception, []alert.Alert, error) {
	if err := x.Validate(); err != nil {
		return exception.Exception{}, nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	x.ID = fmt.Sprintf("x%d", len(f.xs)+1)
	f.xs = append(f.xs, x)
	if c == nil {
		return x, nil, nil
	}
	f.closes = append(f.closes, *c)
	return x, f.closed, nil
}

func (f *fakeExceptions) DeleteException(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.xs {
		if x.ID == id {
			f.xs = append(f.xs[:i], f.xs[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("%w: exception %q", ErrNotFound, id)
}

// send sends method path with body (a JSON text, "" for none) and returns
// the status and the body.
func send(t *testing.T, base, method, path, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, r)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error // the message, unquoted
	}
	return resp.StatusCode, string(b)
}

func TestExceptionsAPI(t *testing.T) {
	fx := &fakeExceptions{closed: []alert.Alert{{ID: "000000000001aa", Status: alert.StatusClosed}}}
	ts, _, s := newTestServerOpts(t, func(o *Options) { o.Exceptions = fx })
	gen := s.opts.Hub.gen.Load()

	for _, tc := range []struct {
		body, want string
	}{
		{`{"rule":"r1","match":{"source.ip":"198.51.100.7"}}`, "comment"},
		{`{"rule":"r1","match":{"source.ip":"198.51.100.7"},"comment":"x","id":"mine"}`, `unknown member "id"`},
		{`{"rule":"r1","match":{"source.ip":"198.51.100.7"},"comment":"x","expires":"tomorrow"}`, "expires"},
		{`{"rule":"r1","match":{"source.ip":"198.51.100.7"},"comment":"x","close_reason":"benign"}`, "close_reason goes with close_matching"},
		{`{"rule":"r1","match":{"source.ip":"198.51.100.7"},"comment":"x","close_matching":true,"close_reason":"meh"}`, `close_reason "meh"`},
		{`{"rule":"r1","match":{"source.ip":"198.51.100.7"},"comment":"a\u0000b"}`, "control characters"},
		{`[1]`, "body must be"},
		{`{"rule":"r1","match":{"source.ip":"198.51.100.7"},"comment":"` + strings.Repeat("x", maxComment+1) + `"}`, "comment must be at most"},
	} {
		code, body := send(t, ts.URL, "POST", "/api/v1/exceptions", tc.body)
		if code != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("POST %.80s = %d %s; want 400 saying %q", tc.body, code, body, tc.want)
		}
	}

	code, body := send(t, ts.URL, "POST", "/api/v1/exceptions",
		`{"rule":"r1","match":{"source.ip":["198.51.100.7","10.0.0.0/8"],"url.path|startswith":"/health"},"comment":" scanner ","expires":"2999-01-01T00:00:00Z","close_matching":true,"close_reason":"false_positive"}`)
	var got exception.Exception
	var closed struct {
		ClosedAlerts int `json:"closed_alerts"`
	}
	if err := errors.Join(json.Unmarshal([]byte(body), &got), json.Unmarshal([]byte(body), &closed)); code != 201 || err != nil {
		t.Fatalf("POST = %d %s", code, body)
	}
	if got.ID != "x1" || got.CreatedBy != "anonymous" || got.Comment != "scanner" || closed.ClosedAlerts != 1 || len(got.Match["source.ip"]) != 2 {
		t.Errorf("POST answer = %s; want x1 by anonymous, the comment trimmed, 1 alert closed", body)
	}
	if len(fx.closes) != 1 || fx.closes[0] != (CloseMatching{By: "anonymous", Reason: "false_positive"}) {
		t.Errorf("close requests = %+v; want one by anonymous as false_positive", fx.closes)
	}
	if s.opts.Hub.gen.Load() != gen+1 {
		t.Error("the closed alert was not published to the dashboards")
	}
	// Without close_matching, the answer is the exception alone; "by" names
	// the creator.
	code, body = send(t, ts.URL, "POST", "/api/v1/exceptions", `{"rule":"*","match":{"user_agent.original|contains":"Nessus"},"comment":"scanner","by":"ana"}`)
	if code != 201 || strings.Contains(body, "closed_alerts") || !strings.Contains(body, `"created_by":"ana"`) {
		t.Errorf("POST without close = %d %s", code, body)
	}
	fx.mu.Lock()
	fx.xs = append(fx.xs, exception.Exception{ID: "old", Rule: "*", Match: map[string]exception.Values{"source.ip": {"192.0.2.1"}}, Comment: "x", Expires: time.Now().Add(-time.Minute), Suppressed: 4})
	fx.mu.Unlock()
	code, body = send(t, ts.URL, "GET", "/api/v1/exceptions", "")
	var list struct {
		Exceptions []struct {
			ID         string `json:"id"`
			Suppressed int64  `json:"suppressed"`
			Expired    bool   `json:"expired"`
		} `json:"exceptions"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Exceptions) != 3 {
		t.Fatalf("GET = %d %s", code, body)
	}
	if e := list.Exceptions[2]; e.ID != "old" || !e.Expired || e.Suppressed != 4 || list.Exceptions[0].Expired {
		t.Errorf("listed = %+v; want the old one expired with its count, the others not", list.Exceptions)
	}
	if code, _ := send(t, ts.URL, "DELETE", "/api/v1/exceptions/x1", ""); code != 204 {
		t.Errorf("DELETE x1 = %d; want 204", code)
	}
	if code, body := send(t, ts.URL, "DELETE", "/api/v1/exceptions/x1", ""); code != 404 || !strings.Contains(body, "no such exception") {
		t.Errorf("DELETE x1 again = %d %s; want 404", code, body)
	}
}

func TestExceptionsNeedTheToken(t *testing.T) {
	ts, _, _ := newTestServerOpts(t, func(o *Options) {
		o.Exceptions = &fakeExceptions{}
		o.DashboardToken = "a-dashboard-token-long-enough"
	})
	for _, m := range []string{"GET", "POST", "DELETE"} {
		path := "/api/v1/exceptions"
		if m == "DELETE" {
			path += "/x1"
		}
		if code, _ := send(t, ts.URL, m, path, `{}`); code != 401 {
			t.Errorf("%s %s without the token = %d; want 401", m, path, code)
		}
	}
}

// reasonBackend is a fakeBackend that records whole status changes.
type reasonBackend struct {
	*fakeBackend
	changes []alert.StatusChange
}

func (r *reasonBackend) ChangeStatus(ctx context.Context, id string, ch alert.StatusChange) (alert.Alert, error) {
	a, err := r.SetStatus(ctx, id, ch.Status, ch.By)
	if err == nil {
		r.changes = append(r.changes, ch)
	}
	return a, err
}

func TestPatchReason(t *testing.T) {
	var rb *reasonBackend
	ts, be, _ := newTestServerOpts(t, func(o *Options) {
		rb = &reasonBackend{fakeBackend: o.Alerts.(*fakeBackend)}
		o.Alerts = rb
	})
	be.alerts = []alert.Alert{{ID: "000000000001aa", Status: alert.StatusNew}}
	for _, tc := range []struct {
		body, want string
	}{
		{`{"status":"closed","reason":"meh"}`, `reason "meh": want false_positive, true_positive, benign`},
		{`{"status":"acknowledged","reason":"benign"}`, `a reason goes only with "status": "closed"`},
	} {
		if code, body := send(t, ts.URL, "PATCH", "/api/v1/alerts/000000000001aa", tc.body); code != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("PATCH %s = %d %s; want 400 saying %q", tc.body, code, body, tc.want)
		}
	}
	code, body := send(t, ts.URL, "PATCH", "/api/v1/alerts/000000000001aa", `{"status":"closed","reason":"false_positive","comment":"scanner"}`)
	if code != 200 || len(rb.changes) != 1 {
		t.Fatalf("PATCH with a reason = %d %s; changes %+v", code, body, rb.changes)
	}
	if ch := rb.changes[0]; ch.Reason != "false_positive" || ch.Comment != "scanner" || ch.By != "anonymous" || ch.At.IsZero() {
		t.Errorf("status change = %+v; want closed as false_positive with the comment, by anonymous, now", ch)
	}
	// A source that cannot keep reasons refuses them rather than drop them.
	ts2, be2, _ := newTestServerOpts(t, nil)
	be2.alerts = []alert.Alert{{ID: "000000000001aa", Status: alert.StatusNew}}
	if code, _ := send(t, ts2.URL, "PATCH", "/api/v1/alerts/000000000001aa", `{"status":"closed","reason":"benign"}`); code != 400 {
		t.Errorf("PATCH with a reason on a source without reasons = %d; want 400", code)
	}
}

func TestIOCSearchAPI(t *testing.T) {
	var gotQ string
	var gotLimit int
	ts, _, _ := newTestServerOpts(t, func(o *Options) {
		o.SearchIOCs = func(ctx context.Context, q string, limit int) (IOCSearch, error) {
			gotQ, gotLimit = q, limit
			return IOCSearch{Query: q, Matches: []IOCMatch{{Type: alert.TypeCIDR, Value: "198.51.100.0/24", File: "feed.txt", Line: 3, How: "covers"}}}, nil
		}
	})
	code, body := send(t, ts.URL, "GET", "/api/v1/iocs/search?q=+198.51.100.7+", "")
	if code != 200 || gotQ != "198.51.100.7" || gotLimit != 100 || !strings.Contains(body, `"file":"feed.txt","line":3,"how":"covers"`) {
		t.Errorf("GET search = %d %s (q %q, limit %d)", code, body, gotQ, gotLimit)
	}
	for _, path := range []string{"/api/v1/iocs/search", "/api/v1/iocs/search?q=x&limit=0", "/api/v1/iocs/search?q=x&limit=5000", "/api/v1/iocs/search?q=" + strings.Repeat("a", maxIOCQuery+1)} {
		if code, _ := send(t, ts.URL, "GET", path, ""); code != 400 {
			t.Errorf("GET %.60s = %d; want 400", path, code)
		}
	}
}

func TestRulesListSkippedAndHealth(t *testing.T) {
	ts, _, _ := newTestServerOpts(t, func(o *Options) {
		o.Rules = fixedRules{{ID: "a", Title: "A", Enabled: true, Kind: "detection", Health: RuleHealth{State: HealthUnable, File: "a.yml", Line: 7, Field: "TargetFilename", Reason: "no mapping"}}}
		o.RuleSkipped = func() []RuleSkip {
			return []RuleSkip{{File: "old.yml", Line: 3, Title: "Old", Reason: "status deprecated"}}
		}
	})
	code, body := send(t, ts.URL, "GET", "/api/v1/rules", "")
	for _, want := range []string{
		`"health":{"state":"unable_to_fire","reason":"no mapping","file":"a.yml","line":7,"field":"TargetFilename"}`,
		`"skipped":[{"file":"old.yml","line":3,"title":"Old","reason":"status deprecated"}]`,
		`"kind":"detection"`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET rules = %d %s; want %s", code, body, want)
		}
	}
}

func TestAttackLayerLeavesOutFiltersAndUnableRules(t *testing.T) {
	s := &Server{opts: Options{Rules: fixedRules{
		{ID: "a", Title: "A", Enabled: true, Tags: []string{"attack.t1071.001"}},
		{ID: "b", Title: "B", Enabled: true, Tags: []string{"attack.t1041"}, Health: RuleHealth{State: HealthUnable}},
		{ID: "c", Title: "C", Enabled: true, Tags: []string{"attack.t1566"}, Kind: "filter"},
	}}}
	var ids []string
	for _, tc := range s.attackLayer().Techniques {
		if tc.Score != nil {
			ids = append(ids, tc.TechniqueID)
		}
	}
	if strings.Join(ids, ",") != "T1071.001" {
		t.Errorf("scored techniques = %v; want only T1071.001 (B cannot fire, C is a filter)", ids)
	}
}
