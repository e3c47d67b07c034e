package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/gorilla/websocket"
)

const (
	wsWriteWait  = 10 * time.Second
	wsPongWait   = 60 * time.Second
	wsPingPeriod = wsPongWait * 9 / 10
	// wsSnapshot is how many recent alerts a new client receives.
	wsSnapshot = 200
)

// The default CheckOrigin refuses a browser Origin whose host differs from
// the request's Host, so other sites cannot read the feed.
var upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 16 << 10}

// wsMessage is one websocket frame: {"type":"alert","alert":{...}}.
type wsMessage struct {
	Type  string       `json:"type"`
	Alert *alert.Alert `json:"alert,omitempty"`
}

// handleWS streams alerts: first the most recent ones from the store (oldest
// of them first), then every new one, each alert once.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered the client
	}
	s.wsMu.Lock()
	if s.wsDone {
		s.wsMu.Unlock()
		conn.Close()
		return
	}
	s.wsWG.Add(2)
	s.wsMu.Unlock()
	sub, ok := s.opts.Hub.subscribe()
	if !ok {
		s.wsWG.Add(-2)
		conn.Close()
		return
	}
	go s.wsReader(conn)
	go s.wsWriter(conn, sub)
}

// wsReader reads (and discards) client frames so that pongs and close frames
// are processed; it ends when the connection fails or closes.
func (s *Server) wsReader(conn *websocket.Conn) {
	defer s.wsWG.Done()
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

func (s *Server) wsWriter(conn *websocket.Conn, sub *hubClient) {
	defer s.wsWG.Done()
	defer s.opts.Hub.unsubscribe(sub)
	defer conn.Close()
	send := func(msg wsMessage) bool {
		b, err := json.Marshal(msg)
		if err != nil {
			return false
		}
		_ = conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
		return conn.WriteMessage(websocket.TextMessage, b) == nil
	}
	// Subscribed first, snapshot second: nothing committed in between is
	// missed, and the ids of the snapshot filter the live duplicates.
	// The request's context ends when the handler returns, so the snapshot
	// gets its own.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	recent, _, err := s.opts.Alerts.ListAlerts(ctx, AlertQuery{Limit: wsSnapshot})
	cancel()
	if err != nil {
		s.log.Error("websocket snapshot", "err", err)
		return
	}
	// An alert changes (its count grows, its status moves): a live copy is
	// skipped only when it is the very version the snapshot sent.
	sent := make(map[string]string, len(recent))
	for i := len(recent) - 1; i >= 0; i-- {
		sent[recent[i].ID] = version(&recent[i])
		if !send(wsMessage{Type: "alert", Alert: &recent[i]}) {
			return
		}
	}
	if !send(wsMessage{Type: "ready"}) {
		return
	}
	ping := time.NewTicker(wsPingPeriod)
	defer ping.Stop()
	for {
		select {
		case a := <-sub.send:
			if v, ok := sent[a.ID]; ok {
				delete(sent, a.ID)
				if v == version(&a) {
					continue
				}
			}
			if !send(wsMessage{Type: "alert", Alert: &a}) {
				return
			}
		case <-sub.closed:
			_ = conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, "server dropped this client"),
				time.Now().Add(time.Second))
			return
		case <-ping.C:
			_ = conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
			if err := conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// version identifies the state of an alert that the dashboard shows.
func version(a *alert.Alert) string {
	return fmt.Sprint(a.Count, "|", a.Status, "|", a.LastSeen.UnixNano(), "|", len(a.StatusHistory))
}
