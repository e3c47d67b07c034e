package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
)

// fuzzBackend is a stateless Spool and AlertSource: it keeps nothing, so
// that a long fuzzing run stays as fast as its first input. The alert
// "fail" makes it fail, the only way a request may get a 5xx.
type fuzzBackend struct{}

func (fuzzBackend) Begin(string) (SpoolWriter, error) { return fuzzWriter{}, nil }

type fuzzWriter struct{}

func (fuzzWriter) Write(p []byte) (int, error)           { return len(p), nil }
func (fuzzWriter) Commit(string, int) (bool, error)      { return false, nil }
func (fuzzWriter) Abort()                                {}
func (fuzzBackend) Stats(context.Context) (Stats, error) { return Stats{Alerts: 1}, nil }

var fuzzAlert = alert.Alert{ID: "000000000001aa", Rule: alert.RuleRef{ID: "r", Title: "Rule", Level: "high"}, Count: 1, Status: alert.StatusNew,
	Event: map[string]any{"source": map[string]any{"ip": "198.51.100.7"}}}

var errFuzzBackend = errors.New("backend failure")

func (fuzzBackend) ListAlerts(_ context.Context, q AlertQuery) ([]alert.Alert, string, error) {
	if q.Rule == "fail" {
		return nil, "", errFuzzBackend
	}
	return []alert.Alert{fuzzAlert}, "", nil
}

func (fuzzBackend) GetAlert(_ context.Context, id string) (alert.Alert, error) {
	switch id {
	case fuzzAlert.ID:
		return fuzzAlert, nil
	case "fail":
		return alert.Alert{}, errFuzzBackend
	}
	return alert.Alert{}, ErrNotFound
}

func (b fuzzBackend) SetStatus(ctx context.Context, id, status, by string) (alert.Alert, error) {
	a, err := b.GetAlert(ctx, id)
	if err != nil {
		return a, err
	}
	if status != alert.StatusNew && status != alert.StatusAcknowledged && status != alert.StatusClosed {
		return alert.Alert{}, ErrBadRequest
	}
	a.Status = status
	a.StatusHistory = []alert.StatusChange{{Status: status, By: by}}
	return a, nil
}

func (fuzzBackend) Rejects(context.Context, int) ([]RejectedRecord, error) {
	return []RejectedRecord{}, nil
}

// fuzzMethods are the methods FuzzAPI tries.
var fuzzMethods = []string{"GET", "PATCH", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"}

// FuzzAPI sends arbitrary paths, query strings and bodies (PATCH ones
// among them) to two servers, one without a dashboard token and one with,
// through http.ReadRequest as the server reads them. Invariants: no panic;
// no 5xx but for the failures the backend makes; under /api/ every answer
// (but a redirect to the clean path) is JSON; the token server answers
// nothing under /api/ and never the dashboard page without credentials.
// Each input is served in memory, so that a 30 s fuzzing pass tries many.
func FuzzAPI(f *testing.F) {
	for _, seed := range []struct {
		method uint8
		path   string
		query  string
		body   string
	}{
		{0, "/api/v1/alerts", "limit=5&cursor=x&rule=r&level=high&status=new&q=1.2.3.4&from=0&to=2026-01-01T00:00:00Z", ""},
		{0, "/api/v1/alerts", "limit=-1", ""},
		{0, "/api/v1/alerts", "rule=fail", ""},
		{0, "/api/v1/alerts/000000000001aa", "", ""},
		{0, "/api/v1/alerts/fail", "", ""},
		{1, "/api/v1/alerts/000000000001aa", "", `{"status":"closed","by":"alice","comment":"seen"}`},
		{1, "/api/v1/alerts/000000000001aa", "", `{"status":"closed"}{"status":"new"}`},
		{1, "/api/v1/alerts/fail", "", `{"status":"closed"}`},
		{1, "/api/v1/alerts/x", "", `{"status":"gone","by":"\u001b[31m"}`},
		{0, "/api/v1/rules", "", ""},
		{0, "/api/v1/stats", "", ""},
		{0, "/api/v1/rejects", "limit=3", ""},
		{0, "/api/v1/overview", "range=1h&to=1700000000", ""},
		{0, "/api/v1/attack/layer", "", ""},
		{0, "/api/v1/nope", "", ""},
		{0, "/%2e/", "", ""},
		{0, "/x/..%2f", "", ""},
		{0, "/api%2fv1%2falerts", "", ""},
		{0, "/", "", ""},
		{0, "/index.html", "", ""},
		{0, "/app.js", "", ""},
		{0, "/healthz", "", ""},
		{0, "/ws", "", ""},
		{2, "/login", "", `{"token":"x"}`},
		{2, "/logout", "", ""},
		{2 | 8, "/plain/batch", "", "{\"RayID\":\"1\"}\n"},
		{1 | 16, "/api/v1/alerts/000000000001aa", "", `{"status":"acknowledged"}`},
	} {
		f.Add(seed.method, seed.path, seed.query, seed.body)
	}
	open, token := fuzzServer(f, ""), fuzzServer(f, testToken)
	f.Fuzz(func(t *testing.T, m uint8, path, query, body string) {
		target := path
		if query != "" {
			target += "?" + query
		}
		var head strings.Builder
		fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", fuzzMethods[int(m&7)%len(fuzzMethods)], target, len(body))
		if m&8 != 0 {
			head.WriteString(IntakeKeyHeader + ": key\r\n")
		}
		if m&16 != 0 {
			head.WriteString("Authorization: Bearer " + testToken + "\r\n")
		}
		raw := head.String() + "\r\n" + body
		for _, srv := range []struct {
			s       *Server
			guarded bool // by a token the request does not carry
		}{{open, false}, {token, m&16 == 0}} {
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
			if err != nil {
				return // not a request the server would read
			}
			req.RemoteAddr = "127.0.0.1:1"
			rec := httptest.NewRecorder()
			srv.s.ServeHTTP(rec, req)
			checkFuzzAnswer(t, req, rec, srv.guarded)
		}
	})
}

// checkFuzzAnswer checks FuzzAPI's invariants on one answer.
func checkFuzzAnswer(t *testing.T, req *http.Request, rec *httptest.ResponseRecorder, guarded bool) {
	t.Helper()
	p := cleanPath(req.URL.Path)
	b := rec.Body.Bytes()
	if rec.Code >= 500 {
		failing := strings.HasSuffix(p, "/fail") || req.URL.Query().Get("rule") == "fail"
		if !failing {
			t.Fatalf("%s %s = %d %s; want no 5xx", req.Method, req.URL, rec.Code, b)
		}
	}
	isAPI := strings.HasPrefix(p, "/api/")
	if isAPI && rec.Code != http.StatusMovedPermanently && req.Method != http.MethodHead {
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || !json.Valid(b) {
			t.Fatalf("%s %s = %d, Content-Type %q, body %.200q; want JSON", req.Method, req.URL, rec.Code, ct, b)
		}
	}
	page := strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") && strings.Contains(string(b), "alert-rows")
	if guarded && rec.Code < 300 && (isAPI || page) {
		t.Fatalf("%s %s = %d without credentials on the token server; want it refused", req.Method, req.URL, rec.Code)
	}
}

// fuzzServer returns a Server over fuzzBackend, with a running Hub.
func fuzzServer(f *testing.F, token string) *Server {
	hub := NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	f.Cleanup(func() { cancel(); <-done })
	s, err := New(Options{
		IntakeKeys:     map[string]string{"default": "key"},
		DashboardToken: token,
		Spool:          fuzzBackend{},
		Alerts:         fuzzBackend{},
		Hub:            hub,
		Rules:          fixedRules{rule("a", "Rule A", true, "attack.t1071.001")},
		Overview: func(ctx context.Context, to time.Time, rng time.Duration) (Overview, error) {
			return Overview{}, nil
		},
		Reports: Reports{IOCs: func(context.Context) (IOCReport, error) { return IOCReport{}, nil }},
	})
	if err != nil {
		f.Fatal(err)
	}
	s.SetReady(true)
	return s
}
