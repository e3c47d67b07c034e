package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/gorilla/websocket"
)

const (
	wsPongWait   = 60 * time.Second
	wsPingPeriod = wsPongWait * 9 / 10
	// wsSnapshot is how many recent alerts a new client receives at most,
	// and maxSnapshotBytes how many bytes of them (the newest that fit).
	wsSnapshot       = 200
	maxSnapshotBytes = 1 << 20
	// maxSnapshotAge bounds how long a snapshot is shared: the store also
	// changes without a Publish (retention).
	maxSnapshotAge = 5 * time.Second
	// wsSendBuffer is the kernel send buffer of a websocket: without it
	// the kernel takes up to 4 MB for a client that does not read before
	// a write blocks and its deadline can drop the client.
	wsSendBuffer = 256 << 10
)

// The default CheckOrigin refuses a browser Origin whose host differs from
// the request's Host, so other sites cannot read the feed. Messages are
// prepared once for all clients (WritePreparedMessage), so no client needs
// a write buffer of its own.
var upgrader = websocket.Upgrader{
	ReadBufferSize:   1024,
	WriteBufferPool:  &sync.Pool{},
	HandshakeTimeout: 10 * time.Second,
}

// wsMessage is one websocket frame: {"type":"alert","alert":{...}}.
type wsMessage struct {
	Type  string       `json:"type"`
	Alert *alert.Alert `json:"alert,omitempty"`
}

// snapshot is what a new client receives first: the most recent alerts,
// encoded once and shared by every client that connects before the next
// Publish.
type snapshot struct {
	frames []*frame          // oldest first
	sent   map[string]string // alert id -> version, of the frames
}

// handleWS streams alerts: first the most recent ones from the store (oldest
// of them first), then every new one, each alert once. Beyond
// Options.MaxWebsocketClients it answers 503.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if n := s.wsClients.Add(1); n > int64(s.opts.MaxWebsocketClients) {
		s.wsClients.Add(-1)
		s.metrics.wsRefused.Inc()
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many websocket clients (at most %d); retry later", s.opts.MaxWebsocketClients))
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.wsClients.Add(-1)
		return // Upgrade has answered the client
	}
	s.wsMu.Lock()
	if s.wsDone {
		s.wsMu.Unlock()
		s.wsClients.Add(-1)
		conn.Close()
		return
	}
	s.wsWG.Add(2)
	s.wsMu.Unlock()
	if tc := tcpOf(conn.NetConn()); tc != nil {
		_ = tc.SetWriteBuffer(wsSendBuffer)
	}
	sub, ok := s.opts.Hub.subscribe()
	if !ok {
		s.wsWG.Add(-2)
		s.wsClients.Add(-1)
		conn.Close()
		return
	}
	gone := make(chan struct{})
	go s.wsReader(conn, gone)
	go s.wsWriter(conn, sub, gone)
}

// wsReader reads (and discards) client frames so that pongs and close frames
// are processed; it ends when the connection fails or closes, and then
// closes gone so that the writer ends too.
func (s *Server) wsReader(conn *websocket.Conn, gone chan<- struct{}) {
	defer s.wsWG.Done()
	defer close(gone)
	defer conn.Close()
	conn.SetReadLimit(4096)
	_ = conn.SetReadDeadline(time.Now().Add(wsPongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(wsPongWait)) })
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
	}
}

// wsWriter sends the snapshot, then the live alerts, to one client. A
// message not taken within Options.WebsocketWriteTimeout drops the client;
// a client gone (the reader has ended) is forgotten at once, freeing its
// place under Options.MaxWebsocketClients.
func (s *Server) wsWriter(conn *websocket.Conn, sub *hubClient, gone <-chan struct{}) {
	defer s.wsWG.Done()
	defer s.wsClients.Add(-1)
	defer s.opts.Hub.unsubscribe(sub)
	defer conn.Close()
	send := func(f *frame) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(s.opts.WebsocketWriteTimeout))
		return conn.WritePreparedMessage(f.msg) == nil
	}
	// Subscribed first, snapshot second: nothing committed in between is
	// missed, and the versions of the snapshot filter the live duplicates.
	snap, err := s.snapshot()
	if err != nil {
		s.log.Error("websocket snapshot", "err", err)
		return
	}
	for _, f := range snap.frames {
		if !send(f) {
			return
		}
	}
	if !send(readyFrame) {
		return
	}
	ping := time.NewTicker(wsPingPeriod)
	defer ping.Stop()
	for {
		select {
		case f := <-sub.send:
			// An alert changes (its count grows, its status moves): a live
			// copy is skipped only when it is the very version the
			// snapshot sent.
			if v, ok := snap.sent[f.id]; ok && v == f.version {
				continue
			}
			if !send(f) {
				return
			}
		case <-gone:
			return
		case <-sub.closed:
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, "server dropped this client"),
				time.Now().Add(time.Second))
			return
		case <-ping.C:
			_ = conn.SetWriteDeadline(time.Now().Add(s.opts.WebsocketWriteTimeout))
			if err := conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// snapshot returns the recent alerts for a client that has just
// subscribed: the cached snapshot if nothing was published since it was
// taken and it is younger than maxSnapshotAge, else a new one. One snapshot is built at a time; clients that
// connect meanwhile wait for it and share it. The newest alerts are kept
// up to wsSnapshot alerts and maxSnapshotBytes bytes of JSON.
func (s *Server) snapshot() (*snapshot, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	// Read before listing: an alert published after this is either in the
	// list or (for a client subscribed by then) sent live.
	gen := s.opts.Hub.gen.Load()
	if s.snap != nil && s.snapGen == gen && time.Since(s.snapAt) < maxSnapshotAge {
		return s.snap, nil
	}
	now := time.Now()
	// The request's context ends when the handler returns, so the
	// snapshot gets its own.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recent, _, err := s.opts.Alerts.ListAlerts(ctx, AlertQuery{Limit: wsSnapshot})
	if err != nil {
		return nil, err
	}
	snap := &snapshot{sent: make(map[string]string, len(recent))}
	budget := maxSnapshotBytes
	for i := range recent { // newest first
		f, err := alertFrame(&recent[i])
		if err != nil {
			s.log.Warn("websocket snapshot", "err", err)
			continue
		}
		if f.size > budget {
			break
		}
		budget -= f.size
		snap.frames = append(snap.frames, f)
		snap.sent[f.id] = f.version
	}
	slices.Reverse(snap.frames)
	s.snap, s.snapGen, s.snapAt = snap, gen, now
	return snap, nil
}

// tcpOf returns the TCP connection under c (through TLS and
// LimitListener), or nil.
func tcpOf(c net.Conn) *net.TCPConn {
	if lc := limitedOf(c); lc != nil {
		c = lc.Conn
	}
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// version identifies the state of an alert that the dashboard shows.
func version(a *alert.Alert) string {
	return fmt.Sprint(a.Count, "|", a.Status, "|", a.LastSeen.UnixNano(), "|", len(a.StatusHistory), "|", a.StatusHistoryDropped)
}
