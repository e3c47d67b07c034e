package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/notify"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/web"
)

// hookReceiver is a webhook receiver that checks the signature and the
// basic authentication of every delivery.
type hookReceiver struct {
	secret []byte

	mu   sync.Mutex
	got  map[string][]notify.Body // by alert id
	errs []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if sig := r.Header.Get(notify.HeaderSignature); sig != notify.Sign(h.secret, body) {
		h.errs = append(h.errs, "bad signature "+sig)
	}
	if u, p, _ := r.BasicAuth(); u != "hook" || p != "hunter2" {
		h.errs = append(h.errs, "basic auth "+u)
	}
	if r.URL.Path != "/hooks/T0-SECRET-PATH" || r.Header.Get(notify.HeaderDelivery) == "" {
		h.errs = append(h.errs, "path "+r.URL.Path+" or no delivery id")
	}
	var b notify.Body
	if err := json.Unmarshal(body, &b); err != nil {
		h.errs = append(h.errs, err.Error())
		return
	}
	h.got[b.Alert.ID] = append(h.got[b.Alert.ID], b)
}

// has reports whether alert id arrived with kind (and status, if set).
func (h *hookReceiver) has(id, kind, status string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.got[id] {
		if b.Kind == kind && (status == "" || b.Alert.Status == status) {
			return true
		}
	}
	return false
}

// TestAppOutputs runs serve in-process with a webhook and syslog: the
// alerts of a batch arrive signed at the webhook and as CEF over syslog,
// a status change set through the API follows, GET /api/v1/outputs and
// /metrics describe the outputs without the webhook's credentials or
// secret path.
func TestAppOutputs(t *testing.T) {
	rcv := &hookReceiver{secret: []byte("app-test-webhook-secret"), got: map[string][]notify.Body{}}
	hook := httptest.NewServer(rcv)
	defer hook.Close()
	syslogLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer syslogLn.Close()
	frames := make(chan string, 100)
	go readSyslog(syslogLn, frames)
	cfg := testConfig(t)
	cfg.Outputs.Notify.SyslogAddr = "tcp://" + syslogLn.Addr().String()
	cfg.Outputs.Notify.WebhookURLs = []string{strings.Replace(hook.URL, "http://", "http://hook:hunter2@", 1) + "/hooks/T0-SECRET-PATH"}
	cfg.Outputs.Notify.WebhookSecret = rcv.secret
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base := "http://" + a.Addr().String()
	poll(t, func() bool { return getJSON(base+"/healthz", &struct{}{}) == nil }, "healthz")
	req, _ := http.NewRequest("POST", base+"/plain/batch", bytes.NewReader(traffic.SequenceBatch(0, 14, 0)))
	req.Header.Set("X-SEKOIAIO-INTAKE-KEY", cfg.IntakeKeys["default"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST = %v, %v", resp, err)
	}
	resp.Body.Close()

	var page struct {
		Alerts []struct {
			ID string `json:"id"`
		} `json:"alerts"`
	}
	poll(t, func() bool { return getJSON(base+"/api/v1/alerts", &page) == nil && len(page.Alerts) > 0 }, "alerts on the API")
	for _, al := range page.Alerts {
		poll(t, func() bool { return rcv.has(al.ID, "alert.new", "") }, "alert.new of "+al.ID+" at the webhook")
	}

	select {
	case f := <-frames:
		if !strings.HasPrefix(f, "<") || !strings.Contains(f, " raywatch ") || !strings.Contains(f, "CEF:0|raywatch|raywatch|dev|") || !strings.Contains(f, "cs1Label=intake cs1=default") {
			t.Errorf("syslog frame %q; want RFC 5424 with a CEF body", f)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no syslog message")
	}

	id := page.Alerts[0].ID
	patch, _ := http.NewRequest("PATCH", base+"/api/v1/alerts/"+id, strings.NewReader(`{"status":"acknowledged","comment":"seen"}`))
	if resp, err := http.DefaultClient.Do(patch); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PATCH = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	poll(t, func() bool { return rcv.has(id, "alert.status", "acknowledged") }, "alert.status of "+id)

	// The receiver has the deliveries a moment before the output counts
	// them as delivered.
	var rep web.OutputsReport
	poll(t, func() bool {
		return getJSON(base+"/api/v1/outputs", &rep) == nil && len(rep.Outputs) > 0 && rep.Outputs[0].Queue == 0 &&
			rep.Outputs[0].Delivered >= int64(len(page.Alerts)+1)
	}, "the webhook output's queue empty")
	if len(rep.Outputs) != 2 || rep.Outputs[1].Name != "syslog" || rep.Outputs[1].Target != cfg.Outputs.Notify.SyslogAddr {
		t.Fatalf("outputs = %+v; want webhook-1 and syslog", rep.Outputs)
	}
	o := rep.Outputs[0]
	if o.Name != "webhook-1" || o.Type != "webhook" || o.State != "ok" || o.Delivered < int64(len(page.Alerts)+1) || o.Target != hook.URL+"/…" {
		t.Errorf("output = %+v; want webhook-1, ok, %d+ delivered, target %s/…", o, len(page.Alerts)+1, hook.URL)
	}
	metrics := getText(t, base+"/metrics")
	if !strings.Contains(metrics, `raywatch_output_delivered_total{output="webhook-1"}`) || !strings.Contains(metrics, `raywatch_output_queue{output="webhook-1"} 0`) {
		t.Errorf("/metrics lacks the output's metrics")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	rcv.mu.Lock()
	if len(rcv.errs) > 0 {
		t.Errorf("receiver: %q", rcv.errs)
	}
	rcv.mu.Unlock()
	for _, secret := range []string{"hunter2", "T0-SECRET-PATH", "app-test-webhook-secret"} {
		if strings.Contains(logs.String(), secret) || strings.Contains(metrics, secret) {
			t.Errorf("the logs or /metrics show %q", secret)
		}
	}
	if !strings.Contains(logs.String(), "msg=output output=webhook-1") {
		t.Errorf("no start line for the output in the logs:\n%s", logs.String())
	}
}

// TestAppNoOutputs checks that GET /api/v1/outputs lists none when none
// is configured.
func TestAppNoOutputs(t *testing.T) {
	a, err := New(testConfig(t), quiet, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var rep map[string]any
	poll(t, func() bool { return getJSON("http://"+a.Addr().String()+"/api/v1/outputs", &rep) == nil }, "GET /api/v1/outputs")
	if out, ok := rep["outputs"].([]any); !ok || len(out) != 0 {
		t.Errorf("GET /api/v1/outputs = %v; want {\"outputs\":[]}", rep)
	}
}

// lockedBuffer is a log destination safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// getJSON decodes GET url into v; an answer other than 200 is an error.
func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s = %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readSyslog reads the octet-counted frames of the first connection to ln.
func readSyslog(ln net.Listener, frames chan<- string) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		var n int
		if _, err := fmt.Fscanf(r, "%d ", &n); err != nil || n <= 0 || n > 1<<20 {
			return
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return
		}
		select {
		case frames <- string(b):
		default:
		}
	}
}
