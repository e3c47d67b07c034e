// Package amtest runs Debian's Prometheus Alertmanager for tests, with a
// webhook receiver in the test process that collects what it notifies.
package amtest

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Bin is where Debian's prometheus-alertmanager package installs it.
const Bin = "/usr/bin/prometheus-alertmanager"

// Notification is one alert of a notification that Alertmanager's webhook
// receiver sends (its payload version 4).
type Notification struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// Receiver collects what Alertmanager notifies.
type Receiver struct {
	mu     sync.Mutex
	alerts []Notification
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var msg struct {
		Alerts []Notification `json:"alerts"`
	}
	if err := json.NewDecoder(req.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.alerts = append(r.alerts, msg.Alerts...)
	r.mu.Unlock()
}

// Find returns the last notification of the alert whose alert_id label is
// id, with status ("firing" or "resolved").
func (r *Receiver) Find(id, status string) (Notification, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.alerts) - 1; i >= 0; i-- {
		if a := r.alerts[i]; a.Labels["alert_id"] == id && a.Status == status {
			return a, true
		}
	}
	return Notification{}, false
}

// Start runs Alertmanager on a free loopback port with the configuration
// that config returns for the URL of the test's webhook receiver, waits
// until it is ready, and returns its URL and the receiver; both stop with
// the test. It skips the test when Alertmanager is not installed, unless
// RAYWATCH_REQUIRE_ALERTMANAGER=1, which fails it instead.
func Start(t testing.TB, config func(hookURL string) string) (string, *Receiver) {
	t.Helper()
	if _, err := os.Stat(Bin); err != nil {
		if os.Getenv("RAYWATCH_REQUIRE_ALERTMANAGER") == "1" {
			t.Fatalf("%s: %v (RAYWATCH_REQUIRE_ALERTMANAGER=1)", Bin, err)
		}
		t.Skipf("%s not installed (apt-get install prometheus-alertmanager); set RAYWATCH_REQUIRE_ALERTMANAGER=1 to fail instead", Bin)
	}
	rcv := &Receiver{}
	hook := httptest.NewServer(rcv)
	t.Cleanup(hook.Close)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(config(hook.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logs := &lockedBuffer{}
	cmd := exec.Command(Bin, "--config.file="+cfgPath, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=info")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("alertmanager's log:\n%s", logs)
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) { // polling its readiness
		select {
		case <-exited:
			t.Fatalf("alertmanager exited:\n%s", logs)
		default:
		}
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, rcv
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready after 30s:\n%s", logs)
		}
	}
}

// lockedBuffer collects a process's output across goroutines.
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
