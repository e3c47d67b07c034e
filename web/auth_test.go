package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

const testToken = "dashboard-token-0123456789"

func get(t *testing.T, c *http.Client, url string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTokenProtectsAPIAndWebsocket(t *testing.T) {
	ts, _ := newTestServerToken(t, 1<<20, testToken)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	bearer := http.Header{"Authorization": {"Bearer " + testToken}}
	wrong := http.Header{"Authorization": {"Bearer " + testToken + "x"}}
	for _, path := range []string{"/api/v1/alerts", "/api/v1/alerts/x", "/api/v1/rules", "/api/v1/stats", "/api/v1/rejects", "/api/v1/nope", "/metrics", "/ws"} {
		if status, body := get(t, noRedirect, ts.URL+path, nil); status != 401 || strings.Contains(body, testToken) {
			t.Errorf("GET %s without token = %d %q; want 401", path, status, body)
		}
		if status, _ := get(t, noRedirect, ts.URL+path, wrong); status != 401 {
			t.Errorf("GET %s with a wrong token = %d; want 401", path, status)
		}
	}
	for _, path := range []string{"/api/v1/alerts", "/api/v1/rules", "/api/v1/stats", "/api/v1/rejects", "/metrics"} {
		if status, body := get(t, noRedirect, ts.URL+path, bearer); status != 200 || strings.Contains(body, testToken) {
			t.Errorf("GET %s with the token = %d; want 200 and no token in the body", path, status)
		}
	}
	// The page redirects to the login page; its assets and the intake and
	// health check stay reachable.
	if status, _ := get(t, noRedirect, ts.URL+"/", nil); status != http.StatusSeeOther {
		t.Errorf("GET / without a session = %d; want 303 to the login page", status)
	}
	for _, path := range []string{"/login.html", "/login.js", "/style.css", "/healthz"} {
		if status, _ := get(t, noRedirect, ts.URL+path, nil); status != 200 {
			t.Errorf("GET %s = %d; want 200", path, status)
		}
	}
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("websocket without token: err %v; want 401", err)
	}
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, bearer)
	if err != nil {
		t.Fatalf("websocket with the token: %v", err)
	}
	conn.Close()
	h := bearer.Clone()
	h.Set("Origin", "https://evil.example")
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, h); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("websocket with the token from a foreign Origin: err %v; want 403", err)
	}
}

func TestLoginCookie(t *testing.T) {
	ts, _ := newTestServerToken(t, 1<<20, testToken)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	login := func(token string) *http.Response {
		b, _ := json.Marshal(map[string]string{"token": token})
		resp, err := c.Post(ts.URL+"/login", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := login("wrong-token-0123456789"); resp.StatusCode != 401 {
		t.Errorf("login with a wrong token = %d; want 401", resp.StatusCode)
	}
	resp := login(testToken)
	if resp.StatusCode != 204 {
		t.Fatalf("login = %d; want 204", resp.StatusCode)
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || strings.Contains(ck[0].Value, testToken) {
		t.Errorf("cookie = %+v; want one HttpOnly SameSite=Strict cookie without the token", ck)
	}
	if status, _ := get(t, c, ts.URL+"/api/v1/alerts", nil); status != 200 {
		t.Errorf("GET /api/v1/alerts with the session = %d; want 200", status)
	}
	if status, body := get(t, c, ts.URL+"/", nil); status != 200 || !strings.Contains(body, "alert-rows") {
		t.Errorf("GET / with the session = %d; want the dashboard", status)
	}
	// A forged cookie does not pass.
	forged := &http.Client{}
	if status, _ := get(t, forged, ts.URL+"/api/v1/alerts", http.Header{"Cookie": {sessionCookie + "=99999999999.00"}}); status != 401 {
		t.Errorf("forged cookie = %d; want 401", status)
	}
	// A cross-origin state change with the cookie is refused.
	req, _ := http.NewRequest("PATCH", ts.URL+"/api/v1/alerts/x", strings.NewReader(`{"status":"closed"}`))
	req.Header.Set("Origin", "https://evil.example")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("cross-origin PATCH = %d; want 403", resp.StatusCode)
	}
}

func TestPatchAlertStatus(t *testing.T) {
	ts, be := newTestServerToken(t, 1<<20, testToken)
	if status, _ := post(t, ts.URL, "key-a", []byte("{}\n"), nil); status != 200 {
		t.Fatal(status)
	}
	id := be.alerts[0].ID
	patch := func(id, body string) (int, string) {
		req, _ := http.NewRequest("PATCH", ts.URL+"/api/v1/alerts/"+id, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		id, body string
		want     int
	}{
		{id, `{"status":"acknowledged","by":"alice"}`, 200},
		{id, `{"status":"closed"}`, 200},
		{id, `{"status":"gone"}`, 400},
		{id, `{"state":"closed"}`, 400},
		{id, `not json`, 400},
		{"unknown", `{"status":"closed"}`, 404},
	}
	for _, tt := range tests {
		if status, body := patch(tt.id, tt.body); status != tt.want {
			t.Errorf("PATCH %s %s = %d %s; want %d", tt.id, tt.body, status, body, tt.want)
		}
	}
	h := be.alerts[0].StatusHistory
	if len(h) != 2 || h[0].By != "alice" || h[1].By != "api" || be.alerts[0].Status != "closed" {
		t.Errorf("history = %+v; want acknowledged by alice, closed by api", h)
	}
}
