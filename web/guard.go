package web

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
)

// guard applies to every request, before routing, what no handler may
// forget: a canonical path, deadlines on reading the body and writing the
// answer, and (without a dashboard token) a Host that names this server.
// It returns the request to route, or nil when it has answered.
func (s *Server) guard(w http.ResponseWriter, r *http.Request) *http.Request {
	// Deadlines first: whatever the answer, the body it leaves unread is
	// discarded under them.
	intake := (r.Method == http.MethodPost || r.Method == http.MethodPut) && r.URL.Path == "/plain/batch"
	r = s.guardBody(w, r, intake)
	// Route on the cleaned, decoded path: "/%2e/", "/%2e%2e/" and
	// "/x/..%2f" must not reach the file server as a directory (which
	// serves index.html past the login), and "%2F" must not make the mux
	// and a handler see different paths.
	if c := cleanPath(r.URL.Path); c != r.URL.Path {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusNotFound, "no such path")
			return nil
		}
		target := c
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return nil
	}
	if r.URL.RawPath != "" {
		r = r.WithContext(r.Context())
		u := *r.URL
		u.RawPath = ""
		r.URL = &u
	}
	// The intake is authenticated by its key, and Logpush names the public
	// host; /healthz says nothing but "ok", to probes that name the pod.
	if !intake && !(r.Method == http.MethodGet && r.URL.Path == "/healthz") && !s.hostAllowed(r) {
		s.metrics.misdirected.Inc()
		writeError(w, http.StatusMisdirectedRequest,
			"host "+strconv.Quote(truncate(r.Host, 100))+" is not this server's: without a dashboard token, name localhost or a host of --allowed-hosts")
		return nil
	}
	return r
}

// cleanPath returns the canonical form of the decoded path p: rooted,
// without "." or ".." elements or doubled slashes, keeping a trailing
// slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c
}

// guardBody sets the deadlines of r's connection: the answer must be
// written within Options.WriteTimeout (except on /ws, which sets its own),
// and the body must make progress every Options.BodyTimeout. The intake's
// body may take as long as it keeps moving; any other body must arrive
// whole within BodyTimeout. It returns r, or a shallow copy whose Body
// enforces that; the server's own request keeps the original body, so that
// whatever a handler left unread is discarded under the same deadline.
func (s *Server) guardBody(w http.ResponseWriter, r *http.Request, intake bool) *http.Request {
	rc := http.NewResponseController(w)
	now := time.Now()
	if r.URL.Path != "/ws" {
		// An error means the writer cannot (a test recorder); nothing to do.
		_ = rc.SetWriteDeadline(now.Add(s.opts.WriteTimeout))
	}
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	_ = rc.SetReadDeadline(now.Add(s.opts.BodyTimeout))
	r2 := r.WithContext(r.Context())
	b := &progressBody{body: r.Body, rc: rc, conn: connOf(r.Context())}
	if intake {
		b.extend, b.timeout, b.writeTimeout = true, s.opts.BodyTimeout, s.opts.WriteTimeout
	}
	r2.Body = b
	return r2
}

// progressBody is a request body under a read deadline: each read that
// brings bytes pushes the deadline (and the write deadline) back when
// extend is set; the end of the body lifts it.
type progressBody struct {
	body                  io.ReadCloser
	rc                    *http.ResponseController
	conn                  *limitedConn // nil when not served through LimitListener
	extend                bool
	timeout, writeTimeout time.Duration
}

func (b *progressBody) Read(p []byte) (int, error) {
	if b.conn != nil {
		b.conn.inBody.Store(true)
	}
	n, err := b.body.Read(p)
	if b.conn != nil {
		b.conn.inBody.Store(false)
		if n > 0 {
			b.conn.touch()
		}
	}
	switch {
	case err == io.EOF:
		// The whole body is in: no read may time out now (net/http then
		// reads in the background to notice a client that goes away).
		_ = b.rc.SetReadDeadline(time.Time{})
	case n > 0 && b.extend:
		now := time.Now()
		_ = b.rc.SetReadDeadline(now.Add(b.timeout))
		_ = b.rc.SetWriteDeadline(now.Add(b.writeTimeout))
	}
	return n, err
}

func (b *progressBody) Close() error { return b.body.Close() }

// hostAllowed reports whether r may be served given its Host. With a
// dashboard token, any Host is (the token protects). Without one, a web
// page could reach the server through DNS rebinding (its own name
// resolving to 127.0.0.1), so the Host must be a loopback name or address,
// the address the connection arrived on, the host of Options.ListenAddr,
// or one of Options.AllowedHosts.
func (s *Server) hostAllowed(r *http.Request) bool {
	if s.token != nil {
		return true
	}
	name, port := splitHost(r.Host)
	if name == "" {
		return false
	}
	if name == "localhost" {
		return true
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		ip = ip.Unmap()
		if ip.IsLoopback() {
			return true
		}
		// An address literal cannot be a rebinding: the page's origin
		// would then be this address.
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(la.String()); err == nil && ap.Addr().Unmap() == ip {
				return true
			}
		}
	}
	for _, h := range s.hosts {
		if h.name == name && (h.port == "" || h.port == port) {
			return true
		}
	}
	return false
}

// allowedHost is one entry of Options.AllowedHosts (or the listen
// address): a lower-case name and, if given, a port.
type allowedHost struct{ name, port string }

// parseAllowedHosts reads Options.AllowedHosts and Options.ListenAddr
// ("host", "host:port", "[v6]:port"); the unspecified addresses of a
// listen address (":8080", "0.0.0.0:8080") add nothing.
func parseAllowedHosts(hosts []string, listen string) []allowedHost {
	var out []allowedHost
	for _, h := range hosts {
		if name, port := splitHost(strings.TrimSpace(h)); name != "" {
			out = append(out, allowedHost{name, port})
		}
	}
	if name, _ := splitHost(listen); name != "" {
		if ip, err := netip.ParseAddr(name); err != nil || !ip.IsUnspecified() {
			out = append(out, allowedHost{name: name})
		}
	}
	return out
}

// splitHost splits a Host header (or listen address) into a lower-case
// name without a trailing dot or IPv6 brackets, and a port ("" if none).
func splitHost(h string) (name, port string) {
	h = strings.ToLower(h)
	if n, p, err := net.SplitHostPort(h); err == nil {
		h, port = n, p
	} else {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	}
	return strings.TrimSuffix(h, "."), port
}
