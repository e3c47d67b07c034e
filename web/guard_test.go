package web

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/gorilla/websocket"
)

// rawRequest sends req (a whole HTTP/1.1 request, written as is, so that
// its path is not normalized by a client) to addr and returns the answer.
func rawRequest(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// do sends one request with the given Host (empty: the server's address)
// and headers, and returns the status and body.
func do(t *testing.T, c *http.Client, method, url, host, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
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

// TestHostCheckWithoutToken is issue 16, item 7: without a dashboard token,
// a page of another site that rebinds its name to 127.0.0.1 could read and
// change alerts; every request but the intake and /healthz must name this
// server in Host.
func TestHostCheckWithoutToken(t *testing.T) {
	ts, be, _ := newTestServerOpts(t, func(o *Options) {
		o.AllowedHosts = []string{"raywatch.internal", "Dash.Example:8443"}
		o.ListenAddr = "myhost.lan:8080"
	})
	if status, _ := post(t, ts.URL, "key-a", []byte("{}\n"), nil); status != 200 {
		t.Fatal(status)
	}
	id := be.alerts[0].ID
	port := ts.Listener.Addr().(*net.TCPAddr).Port
	evil := "rebind.attacker.example:" + strconv.Itoa(port)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// The attack of the issue: a PATCH with the rebound Host and a
	// matching Origin.
	status, body := do(t, noRedirect, "PATCH", ts.URL+"/api/v1/alerts/"+id, evil, `{"status":"closed"}`,
		http.Header{"Origin": {"http://" + evil}, "Content-Type": {"application/json"}})
	if status != http.StatusMisdirectedRequest || !json.Valid([]byte(body)) || !strings.Contains(body, "error") {
		t.Errorf("PATCH with Host %s = %d %s; want 421 with a JSON error", evil, status, body)
	}
	be.mu.Lock()
	st := be.alerts[0].Status
	be.mu.Unlock()
	if st != alert.StatusNew {
		t.Fatalf("alert status %q after the rebound PATCH; want it unchanged", st)
	}
	for _, path := range []string{"/api/v1/alerts", "/api/v1/alerts/" + id, "/api/v1/stats", "/metrics", "/", "/index.html", "/app.js", "/login.html"} {
		if status, _ := do(t, noRedirect, "GET", ts.URL+path, evil, "", nil); status != http.StatusMisdirectedRequest {
			t.Errorf("GET %s with Host %s = %d; want 421", path, evil, status)
		}
	}
	for _, host := range []string{"evil.example", "localhost.evil.example", "127.0.0.1.evil.example", "raywatch.internal.evil", "dash.example:9999", ""} {
		if status, _ := do(t, noRedirect, "GET", ts.URL+"/api/v1/alerts", host, "", nil); status != http.StatusMisdirectedRequest && host != "" {
			t.Errorf("GET /api/v1/alerts with Host %q = %d; want 421", host, status)
		}
	}
	if resp, _ := rawRequest(t, ts.Listener.Addr().String(), "GET /api/v1/alerts HTTP/1.0\r\n\r\n"); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET /api/v1/alerts without Host = %d; want 421", resp.StatusCode)
	}
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Host": {evil}}); err == nil || resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("websocket with Host %s: %v; want 421", evil, err)
	}

	// This server's names pass.
	for _, host := range []string{"localhost:" + strconv.Itoa(port), "LOCALHOST", "localhost.", "127.0.0.1:" + strconv.Itoa(port), "127.9.9.9", "[::1]:" + strconv.Itoa(port), "[::ffff:127.0.0.1]:1",
		"raywatch.internal:1234", "Raywatch.Internal", "dash.example:8443", "myhost.lan:8080", "myhost.lan"} {
		if status, body := do(t, noRedirect, "GET", ts.URL+"/api/v1/alerts", host, "", nil); status != 200 {
			t.Errorf("GET /api/v1/alerts with Host %q = %d %s; want 200", host, status, body)
		}
	}
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Host": {"localhost:" + strconv.Itoa(port)}})
	if err != nil {
		t.Errorf("websocket with Host localhost: %v", err)
	} else {
		conn.Close()
	}
	// The intake is authenticated by its key, and Logpush names the public
	// host; /healthz answers probes whatever host they name.
	req, _ := http.NewRequest("POST", ts.URL+"/plain/batch", strings.NewReader("{\"RayID\":\"2\"}\n"))
	req.Host = "intake.example.com"
	req.Header.Set(IntakeKeyHeader, "key-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("intake with Host intake.example.com = %d; want 200", resp.StatusCode)
	}
	if status, _ := do(t, noRedirect, "GET", ts.URL+"/healthz", "pod-1.svc", "", nil); status != 200 {
		t.Errorf("GET /healthz with Host pod-1.svc = %d; want 200", status)
	}
}

// TestHostCheckWithToken checks that with a dashboard token the Host is
// not checked: the token protects.
func TestHostCheckWithToken(t *testing.T) {
	ts, _ := newTestServerToken(t, 1<<20, testToken)
	bearer := http.Header{"Authorization": {"Bearer " + testToken}}
	if status, _ := do(t, http.DefaultClient, "GET", ts.URL+"/api/v1/alerts", "raywatch.example.com", "", bearer); status != 200 {
		t.Errorf("GET /api/v1/alerts with the token and a public Host = %d; want 200", status)
	}
	if status, _ := do(t, http.DefaultClient, "GET", ts.URL+"/api/v1/alerts", "raywatch.example.com", "", nil); status != 401 {
		t.Errorf("GET /api/v1/alerts without the token = %d; want 401", status)
	}
}

// TestPathNormalization is issue 16, item 8: encoded dot segments must not
// reach the dashboard page past the login, and unknown paths are 404.
func TestPathNormalization(t *testing.T) {
	ts, _ := newTestServerToken(t, 1<<20, testToken)
	addr := ts.Listener.Addr().String()
	for _, path := range []string{"/%2e/", "/%2e%2e/", "/x/..%2f", "/x/%2e%2e%2f", "/%2E/", "/./", "/%2e", "/x/../", "/%2e%2e%2findex.html",
		"//", "/.%2e/", "/x/%2e%2e/%2e/", "/index.html/", "/login.html/..%2f", "/api/v1/%2e%2e/%2e%2e/"} {
		resp, body := rawRequest(t, addr, "GET "+path+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		if strings.Contains(body, "alert-rows") || resp.StatusCode == 200 {
			t.Errorf("GET %s = %d, dashboard %v; want no dashboard without a session", path, resp.StatusCode, strings.Contains(body, "alert-rows"))
			continue
		}
		switch loc := resp.Header.Get("Location"); resp.StatusCode {
		case http.StatusMovedPermanently:
			if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.Contains(loc, "..") || strings.Contains(loc, "%2") {
				t.Errorf("GET %s redirects to %q; want a clean local path", path, loc)
			}
		case http.StatusNotFound, http.StatusSeeOther:
		default:
			t.Errorf("GET %s = %d; want 301 to the clean path, 303 to the login page or 404", path, resp.StatusCode)
		}
	}
	// Following the redirects ends at the login page.
	for _, path := range []string{"/%2e/", "/%2e%2e/", "/x/..%2f"} {
		status, body := get(t, http.DefaultClient, ts.URL+path, nil)
		if status != 200 || strings.Contains(body, "alert-rows") || !strings.Contains(body, "login") {
			t.Errorf("GET %s, redirects followed = %d; want the login page", path, status)
		}
	}
	for _, tt := range []struct {
		req  string
		want int
	}{
		{"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n", 404},
		{"GET /nope/ HTTP/1.1\r\nHost: localhost\r\n\r\n", 404},
		{"GET /ws/ HTTP/1.1\r\nHost: localhost\r\n\r\n", 404},
		{"POST /plain/%2e/batch HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", 404},
		{"PATCH /api/v1/alerts/%2e%2e/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", 404},
		// Routing sees the decoded path: an encoded slash does not make a
		// path that the API and the file server read differently.
		{"GET /api%2fv1%2falerts HTTP/1.1\r\nHost: localhost\r\n\r\n", 401},
	} {
		if resp, _ := rawRequest(t, addr, tt.req); resp.StatusCode != tt.want {
			t.Errorf("%q = %d; want %d", strings.SplitN(tt.req, "\r\n", 2)[0], resp.StatusCode, tt.want)
		}
	}
}

// TestLogoutRevokesSession is issue 16, item 9: a session lives on the
// server, so that logging out revokes a copy of the cookie too; logout
// from another origin is refused; a new dashboard token revokes the
// sessions of the old one.
func TestLogoutRevokesSession(t *testing.T) {
	sessions := newMemSessions()
	ts, _, _ := newTestServerOpts(t, func(o *Options) {
		o.DashboardToken = testToken
		o.Sessions = sessions
	})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	login := func(c *http.Client, url string) string {
		t.Helper()
		resp, err := c.Post(url+"/login", "application/json", strings.NewReader(`{"token":"`+testToken+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 || len(resp.Cookies()) != 1 {
			t.Fatalf("login = %d with %d cookies; want 204 and a cookie", resp.StatusCode, len(resp.Cookies()))
		}
		return resp.Cookies()[0].Value
	}
	cookie := login(c, ts.URL)
	copied := http.Header{"Cookie": {sessionCookie + "=" + cookie}}
	sessions.mu.Lock()
	for k := range sessions.m {
		if strings.Contains(k, cookie) {
			t.Errorf("the session store holds the cookie %q", k)
		}
	}
	sessions.mu.Unlock()
	if status, _ := get(t, http.DefaultClient, ts.URL+"/api/v1/alerts", copied); status != 200 {
		t.Fatalf("GET with the session cookie = %d; want 200", status)
	}
	// Logout from another site is refused and revokes nothing.
	if status, _ := do(t, c, "POST", ts.URL+"/logout", "", "", http.Header{"Origin": {"https://evil.example"}}); status != 403 {
		t.Errorf("cross-origin logout = %d; want 403", status)
	}
	if status, _ := get(t, http.DefaultClient, ts.URL+"/api/v1/alerts", copied); status != 200 {
		t.Fatalf("GET after a refused logout = %d; want 200", status)
	}
	if status, _ := do(t, c, "POST", ts.URL+"/logout", "", "", http.Header{"Origin": {ts.URL}}); status != 204 {
		t.Fatalf("logout = %d; want 204", status)
	}
	if status, _ := get(t, http.DefaultClient, ts.URL+"/api/v1/alerts", copied); status != 401 {
		t.Errorf("GET with a copy of the cookie after logout = %d; want 401 (revoked on the server)", status)
	}
	if status, _ := get(t, c, ts.URL+"/api/v1/alerts", nil); status != 401 {
		t.Errorf("GET with the browser's jar after logout = %d; want 401", status)
	}

	// The same session store: a restart with the same token keeps the
	// session, one with a new token revokes it.
	cookie = login(c, ts.URL)
	copied = http.Header{"Cookie": {sessionCookie + "=" + cookie}}
	same, _, _ := newTestServerOpts(t, func(o *Options) { o.DashboardToken = testToken; o.Sessions = sessions })
	if status, _ := get(t, http.DefaultClient, same.URL+"/api/v1/alerts", copied); status != 200 {
		t.Errorf("GET after a restart with the same token = %d; want 200", status)
	}
	rotated, _, _ := newTestServerOpts(t, func(o *Options) { o.DashboardToken = testToken + "-new"; o.Sessions = sessions })
	if status, _ := get(t, http.DefaultClient, rotated.URL+"/api/v1/alerts", copied); status != 401 {
		t.Errorf("GET after the token changed = %d; want 401", status)
	}
}

// TestPatchBounds is issue 16, item 10 (the API side): comment and name
// are bounded, control characters and a second JSON value are refused.
func TestPatchBounds(t *testing.T) {
	ts, be, _ := newTestServerOpts(t, func(o *Options) {
		o.Alerts = commentBackend{o.Alerts.(*fakeBackend)}
	})
	if status, _ := post(t, ts.URL, "key-a", []byte("{}\n"), nil); status != 200 {
		t.Fatal(status)
	}
	id := be.alerts[0].ID
	patch := func(body string) (int, string) {
		return do(t, http.DefaultClient, "PATCH", ts.URL+"/api/v1/alerts/"+id, "", body, nil)
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	tests := []struct {
		name, body string
		want       int
		wantErr    string // in the error message
	}{
		{"ok", `{"status":"acknowledged","by":"alice","comment":"first line\nsecond\tline"}`, 200, ""},
		{"by of 64 characters", js(map[string]string{"status": "closed", "by": strings.Repeat("é", 64)}), 200, ""},
		{"by of 65 characters", js(map[string]string{"status": "closed", "by": strings.Repeat("b", 65)}), 400, "by must be at most 64"},
		{"comment of 1 KiB", js(map[string]string{"status": "new", "comment": strings.Repeat("c", 1024)}), 200, ""},
		{"comment over 1 KiB", js(map[string]string{"status": "new", "comment": strings.Repeat("c", 1025)}), 400, "comment must be at most 1024 bytes"},
		{"control character in by", js(map[string]string{"status": "new", "by": "ali\x1b[31mce"}), 400, "by must not hold control"},
		{"newline in by", js(map[string]string{"status": "new", "by": "ali\nce"}), 400, "by must not hold control"},
		{"NUL in comment", js(map[string]string{"status": "new", "comment": "a\x00b"}), 400, "comment must not hold control"},
		{"C1 control in comment", js(map[string]string{"status": "new", "comment": "a\u0085b"}), 400, "comment must not hold control"},
		{"second JSON value", `{"status":"closed"}{"status":"new"}`, 400, "one JSON object"},
		{"trailing garbage", `{"status":"closed"} x`, 400, "one JSON object"},
		{"trailing space", "{\"status\":\"closed\"}\n  ", 200, ""},
		{"body over 16 KiB", `{"status":"closed","comment":"` + strings.Repeat(" ", 17<<10) + `x"}`, 400, "body must be"},
	}
	for _, tt := range tests {
		status, body := patch(tt.body)
		if status != tt.want || !strings.Contains(body, tt.wantErr) {
			t.Errorf("%s: PATCH = %d %s; want %d with %q", tt.name, status, body, tt.want, tt.wantErr)
		}
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if got := be.alerts[0].Status; got != alert.StatusClosed {
		t.Errorf("status %q after the patches; want closed (the refused ones changed nothing)", got)
	}
	if n := len(be.alerts[0].StatusHistory); n != 4 {
		t.Errorf("%d status changes recorded; want 4 (one per accepted PATCH)", n)
	}
}
