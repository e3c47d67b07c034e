package app

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// WebLimits are serve's protections of the API, the dashboard and the
// connections: which names the dashboard may be reached by without a
// token, and how many websockets and connections may be open at once.
type WebLimits struct {
	// AllowedHosts are the host names (or host:port) that requests may
	// name in Host without a dashboard token, beside loopback names and
	// the --listen host; others get 421 (against DNS rebinding).
	AllowedHosts HostList
	// MaxWebsocketClients caps the open dashboard websockets; beyond it
	// /ws answers 503.
	MaxWebsocketClients int
	// MaxConnections caps the open connections; beyond it a newcomer gets
	// 503 at once. 0 means no limit.
	MaxConnections int
}

// flags registers the web limit flags on fs, with defaults taken from the
// environment.
func (w *WebLimits) flags(fs *flag.FlagSet, env Env) {
	if v := env("RAYWATCH_ALLOWED_HOSTS"); v != "" {
		_ = w.AllowedHosts.Set(v) // validate says what is wrong with it
	}
	fs.Var(&w.AllowedHosts, "allowed-hosts", "comma-separated host names (or host:port) by which the dashboard and API may be reached without RAYWATCH_DASHBOARD_TOKEN, beside localhost and the --listen host; others get 421 (RAYWATCH_ALLOWED_HOSTS)")
	fs.IntVar(&w.MaxWebsocketClients, "max-websocket-clients", int(env.Int("RAYWATCH_MAX_WEBSOCKET_CLIENTS", 100)), "most dashboard websockets open at once; more get 503 (RAYWATCH_MAX_WEBSOCKET_CLIENTS)")
	fs.IntVar(&w.MaxConnections, "max-connections", int(env.Int("RAYWATCH_MAX_CONNECTIONS", 1024)), "most connections open at once; more get 503 at once, unless one source holds many more; lowered to half of ulimit -n; 0 means no limit (RAYWATCH_MAX_CONNECTIONS)")
}

// validate checks the web limits; each error names its flag.
func (w *WebLimits) validate() []error {
	var errs []error
	for _, h := range w.AllowedHosts {
		if err := checkHost(h); err != nil {
			errs = append(errs, fmt.Errorf("--allowed-hosts %q: %w", h, err))
		}
	}
	if w.MaxWebsocketClients < 1 {
		errs = append(errs, errors.New("--max-websocket-clients must be at least 1"))
	}
	switch {
	case w.MaxConnections < 0:
		errs = append(errs, errors.New("--max-connections cannot be negative (0 means no limit)"))
	case w.MaxConnections > 0 && w.MaxWebsocketClients >= w.MaxConnections:
		// With as many websockets allowed as connections, idle dashboards
		// could take every connection and lock the intake out.
		errs = append(errs, fmt.Errorf("--max-websocket-clients (%d) must be under --max-connections (%d), or websockets could take every connection", w.MaxWebsocketClients, w.MaxConnections))
	}
	return errs
}

// webMaxConnections is MaxConnections as web.Options takes it: negative
// for no limit.
func (w *WebLimits) webMaxConnections() int {
	if w.MaxConnections == 0 {
		return -1
	}
	return w.MaxConnections
}

// checkHost checks one --allowed-hosts entry: a host name or address,
// with an optional port, not a URL.
func checkHost(h string) error {
	if strings.Contains(h, "://") || strings.ContainsAny(h, "/?#@ ") {
		return errors.New("want a host name or host:port, not a URL")
	}
	return nil
}

// HostList is a comma-separated list of host names, as a flag.Value: each
// Set replaces the list; empty entries are dropped.
type HostList []string

// String returns the list as given.
func (l *HostList) String() string { return strings.Join(*l, ",") }

// Set replaces the list with the entries of v.
func (l *HostList) Set(v string) error {
	*l = nil
	for _, h := range strings.Split(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			*l = append(*l, h)
		}
	}
	return nil
}
