package web

import (
	"context"
	"sync"

	"github.com/raywatch/raywatch/rules/alert"
)

// clientBuffer is how many alerts a websocket client may have waiting before
// it is dropped as too slow.
const clientBuffer = 256

// Hub fans new alerts out to the websocket clients. One goroutine (Run) owns
// the set of clients; Publish never blocks on a client: a client whose buffer
// is full is dropped and must reconnect.
type Hub struct {
	register   chan *hubClient
	unregister chan *hubClient
	broadcast  chan []alert.Alert
	count      chan chan int
	done       chan struct{}
	stopOnce   sync.Once
}

type hubClient struct {
	send chan alert.Alert
	// closed is closed by the hub when it drops the client.
	closed chan struct{}
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
			for c := range clients {
				for _, a := range alerts {
					select {
					case c.send <- a:
					default:
						drop(c) // too slow: never let a client hold up detection
					}
					if !clients[c] {
						break
					}
				}
			}
		}
	}
}

// Publish hands alerts to every connected client. It must be called only
// after the alerts are committed to the store. It does not block on slow
// clients; if the hub itself is saturated the alerts are not broadcast, and
// clients catch up from the store when they reconnect.
func (h *Hub) Publish(alerts []alert.Alert) {
	if len(alerts) == 0 {
		return
	}
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
	c := &hubClient{send: make(chan alert.Alert, clientBuffer), closed: make(chan struct{})}
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
