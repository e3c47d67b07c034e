package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/raywatch/raywatch/rules/alert"
)

// fakeBackend records spooled batches (decompressed) and serves a list of
// alerts, one per batch.
type fakeBackend struct {
	mu      sync.Mutex
	batches []string
	intakes []string
	ids     map[string]bool
	alerts  []alert.Alert
	hub     *Hub
}

func (f *fakeBackend) Begin(intake string) (SpoolWriter, error) {
	return &fakeWriter{f: f, intake: intake}, nil
}

type fakeWriter struct {
	f      *fakeBackend
	intake string
	buf    bytes.Buffer
}

func (w *fakeWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *fakeWriter) Abort()                      {}

func (w *fakeWriter) Commit(id string, lines int) (bool, error) {
	f := w.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids == nil {
		f.ids = map[string]bool{}
	}
	if f.ids[id] {
		return true, nil
	}
	f.ids[id] = true
	body := w.buf.Bytes()
	if len(body) > 1 && body[0] == 0x1f && body[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return false, err
		}
		body, _ = io.ReadAll(zr)
	}
	f.batches = append(f.batches, string(body))
	f.intakes = append(f.intakes, w.intake)
	a := alert.Alert{ID: fmt.Sprintf("%012x", len(f.batches)), Rule: alert.RuleRef{ID: "r", Title: "Test rule"}, Intake: w.intake, Count: 1, Status: alert.StatusNew}
	f.alerts = append([]alert.Alert{a}, f.alerts...)
	f.hub.Publish([]alert.Alert{a})
	return false, nil
}

func (f *fakeBackend) ListAlerts(ctx context.Context, q AlertQuery) ([]alert.Alert, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]alert.Alert(nil), f.alerts...), "", nil
}

func (f *fakeBackend) GetAlert(ctx context.Context, id string) (alert.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.alerts {
		if a.ID == id {
			return a, nil
		}
	}
	return alert.Alert{}, ErrNotFound
}

func (f *fakeBackend) SetStatus(ctx context.Context, id, status, by string) (alert.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status != alert.StatusNew && status != alert.StatusAcknowledged && status != alert.StatusClosed {
		return alert.Alert{}, ErrBadRequest
	}
	for i, a := range f.alerts {
		if a.ID == id {
			f.alerts[i].Status = status
			f.alerts[i].StatusHistory = append(f.alerts[i].StatusHistory, alert.StatusChange{Status: status, By: by})
			return f.alerts[i], nil
		}
	}
	return alert.Alert{}, ErrNotFound
}

func (f *fakeBackend) Stats(ctx context.Context) (Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Stats{Alerts: int64(len(f.alerts))}, nil
}

func (f *fakeBackend) Rejects(ctx context.Context, limit int) ([]RejectedRecord, error) {
	return []RejectedRecord{}, nil
}

func newTestServer(t *testing.T, maxDecompressed int64) (*httptest.Server, *fakeBackend) {
	return newTestServerToken(t, maxDecompressed, "")
}

func newTestServerToken(t *testing.T, maxDecompressed int64, token string) (*httptest.Server, *fakeBackend) {
	t.Helper()
	ts, be, _ := newTestServerOpts(t, func(o *Options) {
		o.MaxDecompressedBytes = maxDecompressed
		o.DashboardToken = token
	})
	return ts, be
}

// newTestServerOpts starts a Server on a loopback httptest server with two
// intakes (zone-a: key-a, zone-b: key-b) and a fakeBackend, after edit
// changes its Options. The http.Server is the one Server.HTTPServer
// builds, on Server.LimitListener.
func newTestServerOpts(t *testing.T, edit func(*Options)) (*httptest.Server, *fakeBackend, *Server) {
	t.Helper()
	hub := NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	be := &fakeBackend{hub: hub}
	opts := Options{
		IntakeKeys:   map[string]string{"zone-a": "key-a", "zone-b": "key-b"},
		Spool:        be,
		Alerts:       be,
		Registry:     prometheus.NewRegistry(),
		Hub:          hub,
		MaxBodyBytes: 1 << 20,
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.SetReady(true)
	ts := httptest.NewUnstartedServer(s)
	hs := s.HTTPServer(nil)
	ts.Config.ReadHeaderTimeout = hs.ReadHeaderTimeout
	ts.Config.IdleTimeout = hs.IdleTimeout
	ts.Config.MaxHeaderBytes = hs.MaxHeaderBytes
	ts.Config.ConnContext = hs.ConnContext
	ts.Config.ConnState = hs.ConnState
	ts.Listener = s.LimitListener(ts.Listener)
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		cancel()
		<-done
		s.Wait()
	})
	return ts, be, s
}

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func post(t *testing.T, url, key string, body []byte, headers map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/plain/batch", bytes.NewReader(body))
	if key != "" {
		req.Header.Set(IntakeKeyHeader, key)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestIntake(t *testing.T) {
	ts, be := newTestServer(t, 1024)
	batch := "{\"RayID\":\"1\"}\n{\"RayID\":\"2\"}\n"
	tests := []struct {
		name       string
		key        string
		body       []byte
		headers    map[string]string
		wantStatus int
		wantIntake string // "" when nothing must be ingested
	}{
		{"gzip by header", "key-a", gz(t, batch), map[string]string{"Content-Encoding": "gzip", "Content-Type": "text/plain"}, 200, "zone-a"},
		{"gzip by magic bytes", "key-b", gz(t, batch), nil, 200, "zone-b"},
		{"same batch retried, gzip'd differently", "key-a", []byte(batch), map[string]string{"Content-Type": "application/x-whatever"}, 200, ""},
		{"plain body", "key-a", []byte(batch + "{}\n"), map[string]string{"Content-Type": "application/x-whatever"}, 200, "zone-a"},
		{"validation probe", "key-a", gz(t, `{"content":"tests"}`), map[string]string{"Content-Encoding": "gzip"}, 200, ""},
		{"missing key", "", gz(t, batch), nil, 401, ""},
		{"wrong key", "key-c", gz(t, batch), nil, 401, ""},
		{"key prefix", "key-", gz(t, batch), nil, 401, ""},
		{"gzip bomb over limit", "key-a", gz(t, strings.Repeat("A", 4096)), nil, 413, ""},
		{"truncated gzip", "key-a", gz(t, batch)[:15], nil, 400, ""},
		{"unknown encoding", "key-a", []byte(batch), map[string]string{"Content-Encoding": "br"}, 415, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be.mu.Lock()
			before := len(be.batches)
			be.mu.Unlock()
			status, body := post(t, ts.URL, tt.key, tt.body, tt.headers)
			if status != tt.wantStatus {
				t.Fatalf("POST = %d %s; want %d", status, body, tt.wantStatus)
			}
			be.mu.Lock()
			defer be.mu.Unlock()
			ingested := len(be.batches) - before
			switch {
			case tt.wantIntake == "" && ingested != 0:
				t.Errorf("batch was ingested; want it not ingested")
			case tt.wantIntake != "" && (ingested != 1 || be.intakes[len(be.intakes)-1] != tt.wantIntake || !strings.HasPrefix(be.batches[len(be.batches)-1], batch)):
				t.Errorf("ingested %d batches (intake %v); want the batch once for %s", ingested, be.intakes, tt.wantIntake)
			}
		})
	}
}

func TestHealthAndAPI(t *testing.T) {
	ts, _ := newTestServer(t, 1<<20)
	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz = %v, %v; want 200", resp, err)
	}
	resp.Body.Close()
	if status, _ := post(t, ts.URL, "key-a", []byte("{\"RayID\":\"1\"}\n"), nil); status != 200 {
		t.Fatalf("post = %d", status)
	}
	resp, err = http.Get(ts.URL + "/api/v1/alerts?limit=5")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Alerts []alert.Alert `json:"alerts"`
	}
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if len(page.Alerts) != 1 || page.Alerts[0].Intake != "zone-a" {
		t.Errorf("alerts = %+v; want the one alert of zone-a", page.Alerts)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP = %q; want script-src 'self'", csp)
	}
	for _, path := range []string{"/api/v1/alerts?limit=x", "/api/v1/alerts/unknown"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 && resp.StatusCode != 404 {
			t.Errorf("GET %s = %d; want 400 or 404", path, resp.StatusCode)
		}
	}
}

func TestWebsocketSnapshotThenLive(t *testing.T) {
	ts, _ := newTestServer(t, 1<<20)
	// One alert exists before the client connects.
	if status, _ := post(t, ts.URL, "key-a", []byte("{}\n"), nil); status != 200 {
		t.Fatal(status)
	}
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var types []string
	for len(types) < 2 {
		var msg wsMessage
		if err := conn.ReadJSON(&msg); err != nil {
			t.Fatal(err)
		}
		types = append(types, msg.Type)
	}
	if types[0] != "alert" || types[1] != "ready" {
		t.Fatalf("first frames = %v; want [alert ready]", types)
	}
	if status, _ := post(t, ts.URL, "key-b", []byte("{}\n"), nil); status != 200 {
		t.Fatal(status)
	}
	var msg wsMessage
	if err := conn.ReadJSON(&msg); err != nil {
		t.Fatal(err)
	}
	if msg.Type != "alert" || msg.Alert == nil || msg.Alert.Intake != "zone-b" {
		t.Errorf("live frame = %+v; want the zone-b alert", msg)
	}
}

func TestWebsocketRejectsForeignOrigin(t *testing.T) {
	ts, _ := newTestServer(t, 1<<20)
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	_, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": []string{"https://evil.example"}})
	if err == nil {
		t.Fatal("dial with a foreign Origin succeeded")
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Origin got %v; want 403", resp)
	}
}

func TestHubDropsSlowClient(t *testing.T) {
	hub := NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go hub.Run(ctx)
	c, ok := hub.subscribe()
	if !ok {
		t.Fatal("subscribe failed")
	}
	// Nobody reads c.send: after its buffer fills, the hub must drop it
	// without blocking Publish.
	for i := 0; i < clientBuffer+10; i++ {
		hub.Publish([]alert.Alert{{ID: "x"}})
	}
	select {
	case <-c.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("slow client was not dropped")
	}
	if n := hub.Clients(); n != 0 {
		t.Errorf("Clients() = %d after drop; want 0", n)
	}
}
