package web

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxRefusing bounds the refused connections being answered at once;
// beyond it a refused connection is closed without an answer.
const maxRefusing = 128

// refusal is the answer to a connection over the limit.
var refusal = func() []byte {
	body := `{"error":"too many connections; retry later"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: application/json\r\n" +
		"Cache-Control: no-store\r\n" +
		"Retry-After: 5\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// Connection states that eviction looks at (see [Server.HTTPServer]).
const (
	connUnknown  int32 = iota // no state reported: never evicted
	connNew                   // accepted, request headers not read yet
	connActive                // serving a request
	connIdle                  // between requests
	connHijacked              // a websocket: the hub drops those itself
)

// limitListener is the listener of [Server.LimitListener].
type limitListener struct {
	net.Listener
	max      int
	metrics  *metrics
	mu       sync.Mutex
	conns    map[*limitedConn]struct{}
	sources  map[netip.Prefix]int // open connections by source
	refusing chan struct{}        // semaphore of the goroutines answering refusals
	wg       sync.WaitGroup
	closed   sync.Once
}

// limitedConn is a connection accepted by a limitListener.
type limitedConn struct {
	net.Conn
	l          *limitListener
	source     netip.Prefix
	state      atomic.Int32
	inBody     atomic.Bool  // a handler is waiting for body bytes
	inWrite    atomic.Bool  // a write is under way (blocked when the client does not read)
	lastActive atomic.Int64 // Unix nanoseconds of the last sign of life
	once       sync.Once
}

// LimitListener wraps ln so that at most Options.MaxConnections
// connections are open at once. A connection over the limit is let in only
// by closing one of the source holding the most connections (an IPv4
// address or an IPv6 /64), and only when its own source holds at least two
// fewer: the open connection of that source that has waited longest on its
// client (for request headers, between requests, for body bytes, or for
// it to read an answer) makes room. Otherwise the newcomer is answered at once with 503, Retry-After
// and Connection: close (plain HTTP: under TLS the client sees a failed
// handshake) and closed. So one host that opens connections it does not
// use cannot lock out the others (Logpush among them), nor make room by
// closing its own. Waiting is known only for connections served by an
// http.Server from [Server.HTTPServer]; others are never closed early, and
// neither are websockets (they count towards the limit; the hub drops
// those that do not read). Closing the returned listener closes ln and
// waits for the refusals being answered (each takes at most about 1 s). A
// negative MaxConnections returns ln unchanged.
//
// Over the limit of open files (ulimit -n), accept fails and the server
// can answer no one, the intake included; so when that limit is under
// twice MaxConnections, the limit is lowered to half of it (the other
// half is for the spool's files, the refusals and the rest), with a
// warning.
func (s *Server) LimitListener(ln net.Listener) net.Listener {
	if s.opts.MaxConnections < 0 {
		return ln
	}
	n := s.opts.MaxConnections
	if files := openFileLimit(); files > 0 && n > files/2 {
		n = max(files/2, 1)
		s.log.Warn("max connections lowered to half the open file limit; raise the limit (ulimit -n) to allow more",
			"max_connections", s.opts.MaxConnections, "open_file_limit", files, "effective", n)
	}
	return &limitListener{
		Listener: ln,
		max:      n,
		metrics:  s.metrics,
		conns:    map[*limitedConn]struct{}{},
		sources:  map[netip.Prefix]int{},
		refusing: make(chan struct{}, maxRefusing),
	}
}

// Accept returns the next connection within the limit, making room or
// answering refusals as LimitListener describes.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, source: sourceOf(c.RemoteAddr())}
		lc.touch()
		l.mu.Lock()
		var victim *limitedConn
		if len(l.conns) >= l.max {
			if heavy, n := l.heaviestLocked(); l.sources[lc.source]+1 < n {
				victim = l.longestWaitingLocked(heavy)
			}
			if victim == nil {
				l.mu.Unlock()
				l.refuse(c)
				continue
			}
			l.removeLocked(victim)
		}
		l.conns[lc] = struct{}{}
		l.sources[lc.source]++
		n := len(l.conns)
		l.mu.Unlock()
		if victim != nil {
			l.metrics.connsEvicted.Inc()
			victim.Conn.Close()
		}
		l.metrics.conns.Set(float64(n))
		return lc, nil
	}
}

// sourceOf returns the source a connection from addr counts against: its
// IPv4 address or its IPv6 /64 (one host usually has a whole /64).
func sourceOf(addr net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// heaviestLocked returns the source with the most open connections, and
// their number.
func (l *limitListener) heaviestLocked() (netip.Prefix, int) {
	var (
		heavy netip.Prefix
		most  int
	)
	for p, n := range l.sources {
		if n > most {
			heavy, most = p, n
		}
	}
	return heavy, most
}

// longestWaitingLocked returns the connection of source that has waited
// longest on its client, or nil if none is waiting.
func (l *limitListener) longestWaitingLocked(source netip.Prefix) *limitedConn {
	var (
		victim *limitedConn
		oldest int64
	)
	for c := range l.conns {
		if c.source != source {
			continue
		}
		switch c.state.Load() {
		case connNew, connIdle:
		case connActive:
			if !c.inBody.Load() && !c.inWrite.Load() {
				continue
			}
		default:
			continue
		}
		if t := c.lastActive.Load(); victim == nil || t < oldest {
			victim, oldest = c, t
		}
	}
	return victim
}

// removeLocked forgets c.
func (l *limitListener) removeLocked(c *limitedConn) {
	if _, ok := l.conns[c]; !ok {
		return
	}
	delete(l.conns, c)
	if l.sources[c.source]--; l.sources[c.source] <= 0 {
		delete(l.sources, c.source)
	}
}

// refuse answers c with 503 and closes it, in a goroutine of its own so
// that a client that does not read cannot slow Accept down.
func (l *limitListener) refuse(c net.Conn) {
	l.metrics.connsRefused.Inc()
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() { <-l.refusing }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(750 * time.Millisecond))
		if _, err := c.Write(refusal); err != nil {
			return
		}
		// Closing with the request unread would reset the connection and
		// could lose the answer: stop writing, then read what the client
		// sent for a moment.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		_, _ = io.CopyN(io.Discard, c, 64<<10)
	}()
}

// Close closes the listener and waits for the refusals being answered.
// The connections it accepted are the http.Server's to close.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closed.Do(l.wg.Wait)
	return err
}

func (c *limitedConn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// Write writes p, noting that the connection waits on its client while
// the write is blocked.
func (c *limitedConn) Write(p []byte) (int, error) {
	c.inWrite.Store(true)
	n, err := c.Conn.Write(p)
	c.inWrite.Store(false)
	if n > 0 {
		c.touch()
	}
	return n, err
}

// Close closes the connection and frees its place. It may be called more
// than once.
func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.removeLocked(c)
		n := len(c.l.conns)
		c.l.mu.Unlock()
		c.l.metrics.conns.Set(float64(n))
	})
	return c.Conn.Close()
}

// limitedOf returns the limitedConn under c (a TLS connection's included),
// or nil.
func limitedOf(c net.Conn) *limitedConn {
	for c != nil {
		switch v := c.(type) {
		case *limitedConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// connKey is the context key of the limitedConn of a request.
type connKey struct{}

// connOf returns the limitedConn that ctx's request came on, or nil.
func connOf(ctx context.Context) *limitedConn {
	c, _ := ctx.Value(connKey{}).(*limitedConn)
	return c
}

// HTTPServer returns the http.Server that serves s: header and idle
// timeouts, a 64 KiB header limit, and the hooks that tell
// [Server.LimitListener] which connections are waiting on their client.
// Serve it on the listener LimitListener returns (under TLS too:
// hs.ServeTLS(srv.LimitListener(ln), cert, key)). Body and write
// deadlines are set per request (see Options.BodyTimeout and
// Options.WriteTimeout). errorLog may be nil.
func (s *Server) HTTPServer(errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.BodyTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc := limitedOf(c); lc != nil {
				return context.WithValue(ctx, connKey{}, lc)
			}
			return ctx
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			lc := limitedOf(c)
			if lc == nil {
				return
			}
			switch st {
			case http.StateNew:
				lc.touch()
				lc.state.Store(connNew)
			case http.StateActive:
				lc.state.Store(connActive)
			case http.StateIdle:
				lc.touch()
				lc.state.Store(connIdle)
			case http.StateHijacked:
				lc.state.Store(connHijacked)
			case http.StateClosed:
				lc.state.Store(connUnknown)
			}
		},
	}
}
