package web

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/gorilla/websocket"
)

// clientBuffer is how many messages a websocket client may have waiting
// before it is dropped as too slow. Messages are shared by all clients, so
// a full buffer holds pointers, not copies.
const clientBuffer = 256

// frame is one websocket message, encoded once and shared by every client
// that sends it. It must not be modified.
type frame struct {
	id      string // of the alert; "" for other messages
	version string // of the alert, see version
	size    int    // bytes of JSON
	msg     *websocket.PreparedMessage
}

// newFrame encodes v as a message.
func newFrame(v any) (*frame, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		return nil, err
	}
	return &frame{size: len(b), msg: pm}, nil
}

// alertFrame encodes a as {"type":"alert","alert":{...}}.
func alertFrame(a *alert.Alert) (*frame, error) {
	f, err := newFrame(wsMessage{Type: "alert", Alert: a})
	if err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	f.id, f.version = a.ID, version(a)
	return f, nil
}

// readyFrame is {"type":"ready"}: the snapshot is over.
var readyFrame = func() *frame {
	f, err := newFrame(wsMessage{Type: "ready"})
	if err != nil {
		panic(err)
	}
	return f
}()

// Hub fans new alerts out to the websocket clients. One goroutine (Run) owns
// the set of clients and encodes each alert once for all of them; Publish
// never blocks on a client: a client whose buffer is full is dropped and
// must reconnect.
type Hub struct {
	register   chan *hubClient
	unregister chan *hubClient
	broadcast  chan []alert.Alert
	count      chan chan int
	done       chan struct{}
	stopOnce   sync.Once
	// gen counts the calls to Publish: a snapshot of the store taken when
	// it had another value may lack an alert that clients subscribed since
	// will not receive live.
	gen atomic.Uint64
}

type hubClient struct {
	send chan *frame
	// closed is closed by the hub when it drops the client.
	closed chan struct{}
}

// offer queues f for c without waiting; false means c's queue is full.
func (c *hubClient) offer(f *frame) bool {
	select {
	case c.send <- f:
		return true
	default:
		return false
	}
}

// NewHub returns a Hub; call Run to start it.
func NewHub() *Hub {
	return &Hub{
		register:   make(chan *hubClient),
		unregister: make(chan *hubClient),
		broadcast:  make(chan []alert.Alert, 64),
		count:      make(chan chan int),
		done:       make(chan struct{}),
	}
}

// Run serves the hub until ctx is cancelled, then drops every client.
func (h *Hub) Run(ctx context.Context) {
	clients := map[*hubClient]bool{}
	drop := func(c *hubClient) {
		if clients[c] {
			delete(clients, c)
			close(c.closed)
		}
	}
	defer func() {
		for c := range clients {
			drop(c)
		}
		h.stopOnce.Do(func() { close(h.done) })
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-h.register:
			clients[c] = true
		case c := <-h.unregister:
			drop(c)
		case reply := <-h.count:
			reply <- len(clients)
		case alerts := <-h.broadcast:
			if len(clients) == 0 {
				continue
			}
			frames := make([]*frame, 0, len(alerts))
			for i := range alerts {
				// An alert that cannot be encoded cannot be sent either;
				// clients find it in the store.
				if f, err := alertFrame(&alerts[i]); err == nil {
					frames = append(frames, f)
				}
			}
			for c := range clients {
				for _, f := range frames {
					if !c.offer(f) {
						drop(c) // too slow: never let a client hold up detection
						break
					}
				}
			}
		}
	}
}

// Publish hands alerts to every connected client. It must be called only
// after the alerts are committed to the store. It does not block on slow
// clients; it waits while the hub's own queue is full, and returns at once
// once the hub has stopped.
func (h *Hub) Publish(alerts []alert.Alert) {
	if len(alerts) == 0 {
		return
	}
	h.gen.Add(1)
	select {
	case h.broadcast <- alerts:
	case <-h.done:
	}
}

// Clients returns the number of connected websocket clients.
func (h *Hub) Clients() int {
	reply := make(chan int, 1)
	select {
	case h.count <- reply:
		return <-reply
	case <-h.done:
		return 0
	}
}

func (h *Hub) subscribe() (*hubClient, bool) {
	c := &hubClient{send: make(chan *frame, clientBuffer), closed: make(chan struct{})}
	select {
	case h.register <- c:
		return c, true
	case <-h.done:
		return nil, false
	}
}

func (h *Hub) unsubscribe(c *hubClient) {
	select {
	case h.unregister <- c:
	case <-h.done:
	}
}
