package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testBodyTimeout is Options.BodyTimeout in these tests.
const testBodyTimeout = 500 * time.Millisecond

// dripper writes a request's head, then one body byte every interval,
// until the server cuts it or stop is called.
type dripper struct {
	conn net.Conn
	stop chan struct{}
	done chan struct{}
}

func startDrip(t *testing.T, addr, head string, interval time.Duration) *dripper {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d := &dripper{conn: c, stop: make(chan struct{}), done: make(chan struct{})}
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(d.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { d.close() })
	return d
}

func (d *dripper) close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.conn.Close()
	<-d.done
}

// cutWithin reports whether the server answered or closed the connection
// within limit (reading what it sends until it closes).
func (d *dripper) cutWithin(limit time.Duration) (bool, string) {
	_ = d.conn.SetReadDeadline(time.Now().Add(limit))
	b, err := io.ReadAll(d.conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b)
}

// TestSlowBodiesAreCut is issue 16, item 2: a body that stops, or that
// trickles into an endpoint that takes a small body, no longer holds its
// connection forever; neither do request headers that never end.
func TestSlowBodiesAreCut(t *testing.T) {
	ts, be, _ := newTestServerOpts(t, func(o *Options) {
		o.BodyTimeout = testBodyTimeout
		o.DashboardToken = testToken
	})
	if status, _ := post(t, ts.URL, "key-a", []byte("{}\n"), nil); status != 200 {
		t.Fatal(status)
	}
	id := be.alerts[0].ID
	addr := ts.Listener.Addr().String()
	const never = time.Hour
	tests := []struct {
		name     string
		head     string
		interval time.Duration
	}{
		// The attack of the issue: a byte every 3 s (here every 100 ms)
		// into a 4,000-byte login: moving, but a small body must arrive
		// whole within BodyTimeout.
		{"login trickle", "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n", 100 * time.Millisecond},
		{"patch trickle", "PATCH /api/v1/alerts/" + id + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + testToken + "\r\nContent-Length: 4000\r\n\r\n{", 100 * time.Millisecond},
		{"logout stalled", "POST /logout HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nab", never},
		{"intake stalled", "POST /plain/batch HTTP/1.1\r\nHost: localhost\r\n" + IntakeKeyHeader + ": key-a\r\nContent-Length: 100000\r\n\r\n{\"RayID\":\"1\"}\n", never},
		{"intake wrong key stalled", "POST /plain/batch HTTP/1.1\r\nHost: localhost\r\n" + IntakeKeyHeader + ": nope\r\nContent-Length: 4000\r\n\r\n{", never},
		{"unknown path stalled", "POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000\r\n\r\n{", never},
		{"unclean path stalled", "PATCH /api/v1/alerts/%2e%2e/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000\r\n\r\n{", never},
		{"foreign host stalled", "POST /login HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 4000\r\n\r\n{", never},
		{"headers never end", "POST /login HTTP/1.1\r\nHost: localhost\r\nX-Slow: ", never},
	}
	var wg sync.WaitGroup
	for _, tt := range tests {
		d := startDrip(t, addr, tt.head, tt.interval)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			// Ten times the timeout: far more than a cut takes, far less
			// than the 4,000 bytes at 100 ms (400 s).
			if cut, got := d.cutWithin(10 * testBodyTimeout); !cut {
				t.Errorf("%s: connection still open after %v; want it cut after about %v", tt.name, time.Since(start).Round(time.Millisecond), testBodyTimeout)
			} else if got != "" && !strings.HasPrefix(got, "HTTP/1.1 4") {
				t.Errorf("%s: answer %.60q; want a 4xx or a closed connection", tt.name, got)
			}
		}()
	}
	wg.Wait()
	// The server still serves.
	if status, _ := post(t, ts.URL, "key-a", []byte("{\"RayID\":\"9\"}\n"), nil); status != 200 {
		t.Errorf("intake after the slow clients = %d; want 200", status)
	}
}

// TestMovingUploadNotCut checks that an intake batch that keeps coming is
// not cut however long it takes.
func TestMovingUploadNotCut(t *testing.T) {
	ts, be, _ := newTestServerOpts(t, func(o *Options) { o.BodyTimeout = testBodyTimeout })
	pr, pw := io.Pipe()
	const chunks = 80 // every 25 ms: 2 s, four times BodyTimeout
	go func() {
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for i := range chunks {
			<-tick.C
			if _, err := fmt.Fprintf(pw, "{\"RayID\":\"%d\"}\n", i); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", ts.URL+"/plain/batch", pr)
	req.Header.Set(IntakeKeyHeader, "key-a")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf(`"accepted":%d`, chunks)) {
		t.Fatalf("slow but moving upload (%v) = %d %s; want 200 with %d records", time.Since(start).Round(time.Millisecond), resp.StatusCode, b, chunks)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if n := strings.Count(be.batches[len(be.batches)-1], "\n"); n != chunks {
		t.Errorf("spooled %d records; want %d", n, chunks)
	}
}

// bigBackend lists n alerts of size bytes each, decoded afresh on every
// call as the store does.
type bigBackend struct {
	*fakeBackend
	n, size int
}

func (b bigBackend) ListAlerts(ctx context.Context, q AlertQuery) ([]alert.Alert, string, error) {
	n := b.n
	if q.Limit > 0 && q.Limit < n {
		n = q.Limit
	}
	out := make([]alert.Alert, n)
	for i := range out {
		out[i] = bigAlert(b.n-i, b.size)
	}
	return out, "", nil
}

// bigAlert returns alert number i with an event of about size bytes.
func bigAlert(i, size int) alert.Alert {
	ts := time.Unix(1_700_000_000+int64(i), 0).UTC()
	return alert.Alert{
		ID:        alert.AlertID(ts, "big", fmt.Sprint(i)),
		Rule:      alert.RuleRef{ID: "big", Title: "Big alert", Level: "high", Tags: []string{"attack.t1071.001"}},
		Count:     1,
		FirstSeen: ts,
		LastSeen:  ts,
		Status:    alert.StatusNew,
		Intake:    "zone-a",
		Matches:   []alert.Match{{Field: "user_agent.original", Value: "x"}},
		Event:     map[string]any{"url": map[string]any{"original": strings.Repeat("/a", size/2)}, "n": i},
	}
}

// TestWriteTimeout checks that an answer the client does not read is
// abandoned after WriteTimeout, freeing the handler and the connection.
func TestWriteTimeout(t *testing.T) {
	ts, _, _ := newTestServerOpts(t, func(o *Options) {
		o.WriteTimeout = testBodyTimeout
		// 100 alerts of 100 KB: 10 MB, more than the socket buffers hold.
		o.Alerts = bigBackend{o.Alerts.(*fakeBackend), 100, 100 << 10}
	})
	c, err := net.DialTimeout("tcp", ts.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /api/v1/alerts?limit=100 HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Read nothing until the server has given up on the connection (its
	// handler blocked in writing, it would hold it forever).
	ll := ts.Listener.(*limitListener)
	if !waitFor(10*time.Second, func() bool { return ll.open() == 0 }) {
		t.Fatalf("the connection is still open %v after WriteTimeout (%v)", 10*time.Second, testBodyTimeout)
	}
}

// waitFor polls cond until it holds or limit passes.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// open returns the number of open connections.
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// settled reports whether every connection is serving a request and
// waiting on its client, for body bytes or to read.
func (l *limitListener) settled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if c.state.Load() != connActive || !(c.inBody.Load() || c.inWrite.Load()) {
			return false
		}
	}
	return true
}

// TestConnectionLimit checks that a connection over MaxConnections is
// answered 503 with Connection: close at once when no open connection is
// waiting on its client, and let in once one closes.
func TestConnectionLimit(t *testing.T) {
	ts, _, _ := newTestServerOpts(t, func(o *Options) { o.MaxConnections = 3 })
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	// Websockets are never closed to make room.
	var conns []interface{ Close() error }
	for range 3 {
		c, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for range 2 {
		start := time.Now()
		resp, body := rawRequest(t, ts.Listener.Addr().String(), "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !resp.Close || !strings.Contains(body, "too many connections") {
			t.Errorf("connection over the limit = %d %v %s; want 503, Retry-After, Connection: close", resp.StatusCode, resp.Header, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the refusal took %v", d)
		}
	}
	conns[0].Close()
	ok := waitFor(5*time.Second, func() bool {
		resp, _ := rawRequest(t, ts.Listener.Addr().String(), "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		return resp.StatusCode == 200
	})
	if !ok {
		t.Error("no connection let in after one closed")
	}
	for _, c := range conns[1:] {
		c.Close()
	}
}

// TestIntakeReachableUnderSlowBodies is the attack of issue 16, item 2,
// scaled down: one host holds every connection, with login bodies that
// trickle in or with answers it does not read (and reconnects when cut);
// the intake, from another address, still gets its batch in at once.
func TestIntakeReachableUnderSlowBodies(t *testing.T) {
	for _, tt := range []struct {
		name string
		head string
	}{
		{"slow bodies", "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n"},
		// 300 pipelined requests for the dashboard's script, whose
		// answers (about 14 MB) are never read.
		{"unread answers", strings.Repeat("GET /app.js HTTP/1.1\r\nHost: localhost\r\n\r\n", 300)},
	} {
		t.Run(tt.name, func(t *testing.T) { intakeUnderAttack(t, tt.head) })
	}
}

// intakeUnderAttack runs the attack of TestIntakeReachableUnderSlowBodies
// with attackers that send head.
func intakeUnderAttack(t *testing.T, head string) {
	const (
		limit     = 32
		attackers = 3 * limit
	)
	ts, _, s := newTestServerOpts(t, func(o *Options) {
		o.MaxConnections = limit
		o.BodyTimeout = 2 * time.Second
	})
	addr := ts.Listener.Addr().String()
	other := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	if c, err := other.Dial("tcp", addr); err != nil {
		t.Skipf("cannot connect from 127.0.0.2 (this system has no such loopback address): %v", err)
	} else {
		c.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for range attackers {
		wg.Go(func() { trickle(ctx, addr, head, 200*time.Millisecond) })
	}
	// Every connection is taken, and each waits on its attacker (past
	// its request headers).
	ll := ts.Listener.(*limitListener)
	if !waitFor(10*time.Second, func() bool { return ll.open() >= limit && ll.settled() }) {
		t.Fatalf("the attackers hold %d connections (settled: %v); want %d", ll.open(), ll.settled(), limit)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: other.DialContext}, Timeout: 5 * time.Second}
	for i := range 5 {
		req, _ := http.NewRequest("POST", ts.URL+"/plain/batch", strings.NewReader(fmt.Sprintf("{\"RayID\":\"%d\"}\n", i)))
		req.Header.Set(IntakeKeyHeader, "key-a")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("intake under attack: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("intake under attack = %d %s; want 200", resp.StatusCode, b)
		}
		client.CloseIdleConnections() // a new connection each time
	}
	// The attackers were refused, not let in by closing one another.
	if n := testutil.ToFloat64(s.metrics.connsRefused); n == 0 {
		t.Error("no connection refused; want the attackers over the limit refused")
	}
	if n := testutil.ToFloat64(s.metrics.connsEvicted); n > 5 {
		t.Errorf("%v connections closed to make room; want at most one per intake request (5)", n)
	}
}

// trickle holds one connection at a time to addr, sending head then a byte
// every interval, and reconnects when the server cuts it, until ctx ends.
func trickle(ctx context.Context, addr, head string, interval time.Duration) {
	for ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		if _, err := io.WriteString(c, head); err == nil {
			tick := time.NewTicker(interval)
			for err == nil {
				select {
				case <-ctx.Done():
					err = ctx.Err()
				case <-tick.C:
					_, err = c.Write([]byte{' '})
				}
			}
			tick.Stop()
		}
		stop()
		c.Close()
	}
}
