// Package web serves raywatch over HTTP: the Logpush intake (POST
// /plain/batch), the REST API, the websocket feed of new alerts, /metrics
// and the embedded dashboard.
package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raywatch/raywatch/rules/alert"
)

//go:embed ui
var uiFS embed.FS

// IntakeKeyHeader is the header carrying the intake key, as SEKOIA.IO's
// intake expects it (Logpush sets it from destination_conf's
// header_X-SEKOIAIO-INTAKE-KEY parameter).
const IntakeKeyHeader = "X-SEKOIAIO-INTAKE-KEY"

// Errors that the interfaces below may wrap.
var (
	// ErrNotFound is returned by an AlertSource for an unknown id.
	ErrNotFound = errors.New("not found")
	// ErrBadRequest is returned by an AlertSource for an invalid request
	// (an unknown status); its message is shown to the client.
	ErrBadRequest = errors.New("bad request")
	// ErrBusy is returned by a Spool (or its writer) that is over its
	// budget: the intake answers 429 with Retry-After.
	ErrBusy = errors.New("spool full")
)

// Spool durably accepts batches. It must be safe for concurrent use.
type Spool interface {
	// Begin starts receiving a batch of the named intake; it fails with an
	// error wrapping ErrBusy when the spool is over its budget.
	Begin(intake string) (SpoolWriter, error)
}

// DecodedKeeper is implemented by a SpoolWriter that also takes the
// decompressed body (to process it from memory rather than inflate the
// spooled copy again). Writes to Decoded's writer must not fail the batch.
type DecodedKeeper interface {
	Decoded() io.Writer
}

// SpoolWriter receives the body of one batch, exactly as sent.
type SpoolWriter interface {
	// Write appends body bytes; it fails with an error wrapping ErrBusy
	// when the spool goes over its budget.
	io.Writer
	// Commit makes the batch durable under id and queues it for
	// processing. When it returns nil the batch survives a crash; duplicate
	// reports a batch with this id already spooled or processed (the bytes
	// are then discarded).
	Commit(id string, lines int) (duplicate bool, err error)
	// Abort discards the batch; it does nothing after Commit.
	Abort()
}

// AlertQuery selects alerts for listing. Empty fields do not filter.
type AlertQuery struct {
	Limit  int
	Cursor string
	Rule   string
	Level  string
	Status string
	Intake string
	From   time.Time
	To     time.Time
	Text   string // on source IP, host or user-agent
}

// AlertSource reads and updates stored alerts. It must be safe for
// concurrent use.
type AlertSource interface {
	ListAlerts(ctx context.Context, q AlertQuery) (alerts []alert.Alert, next string, err error)
	// GetAlert returns an error wrapping ErrNotFound for an unknown id.
	GetAlert(ctx context.Context, id string) (alert.Alert, error)
	// SetStatus sets an alert's status, recording by; errors wrap
	// ErrNotFound or ErrBadRequest.
	SetStatus(ctx context.Context, id, status, by string) (alert.Alert, error)
	// Stats returns the counters of /api/v1/stats.
	Stats(ctx context.Context) (Stats, error)
	// Rejects returns the malformed records kept for inspection, newest
	// first.
	Rejects(ctx context.Context, limit int) ([]RejectedRecord, error)
}

// StatusCommenter is implemented by an AlertSource that can keep an
// analyst's comment with a status change (PATCH /api/v1/alerts/{id} with
// "comment"); errors wrap ErrNotFound or ErrBadRequest as SetStatus's do.
type StatusCommenter interface {
	SetStatusComment(ctx context.Context, id, status, by, comment string) (alert.Alert, error)
}

// StatusChanger is implemented by an AlertSource that records a whole
// status change: who, when, the comment and, for a change to closed, the
// analyst's verdict (PATCH /api/v1/alerts/{id} with "reason"). When
// implemented it serves every PATCH. Errors wrap ErrNotFound or
// ErrBadRequest as SetStatus's do.
type StatusChanger interface {
	ChangeStatus(ctx context.Context, id string, ch alert.StatusChange) (alert.Alert, error)
}

// RuleLoadError is a rule file that could not be loaded, as GET
// /api/v1/rules lists it under "errors".
type RuleLoadError struct {
	File  string `json:"file"`
	Line  int    `json:"line,omitempty"`
	Error string `json:"error"`
}

// RuleLister describes the loaded rules.
type RuleLister interface {
	Rules() []RuleStatus
}

// RuleStatus is one loaded rule as GET /api/v1/rules lists it: its Sigma
// metadata, where it came from, and how it has behaved.
type RuleStatus struct {
	ID             string    `json:"id"`
	Title          string    `json:"title"`
	Description    string    `json:"description,omitempty"`
	Level          string    `json:"level"`
	Status         string    `json:"status,omitempty"`
	Author         string    `json:"author,omitempty"`
	References     []string  `json:"references,omitempty"`
	Tags           []string  `json:"tags,omitempty"`
	FalsePositives []string  `json:"falsepositives,omitempty"`
	Source         string    `json:"source"`
	File           string    `json:"file"`
	Name           string    `json:"name,omitempty"`
	Logsource      Logsource `json:"logsource"`
	Enabled        bool      `json:"enabled"`
	// Kind is "detection", "correlation" or "filter" (a Sigma filter,
	// which keeps the rules of AppliesTo from alerting).
	Kind string `json:"kind,omitempty"`
	// Health says whether the rule can fire on raywatch's events.
	Health RuleHealth `json:"health"`
	// Alerts are the alerts the engine raised (before grouping).
	Alerts     int64  `json:"alerts"`
	EvalErrors int64  `json:"eval_errors"`
	LastError  string `json:"last_error,omitempty"`
	// Suppressed counts the events the rule matched that exceptions and
	// filters kept from alerting (for a filter: the events it kept from
	// alerting, and LastSuppressed when it last did).
	Suppressed             int64     `json:"suppressed"`
	SuppressedByExceptions int64     `json:"suppressed_by_exceptions"`
	SuppressedByFilters    int64     `json:"suppressed_by_filters"`
	LastSuppressed         time.Time `json:"last_suppressed,omitzero"`
	// AppliesTo lists, for a filter, the ids of the rules it applies to
	// ("*": every rule).
	AppliesTo []string `json:"applies_to,omitempty"`
	// EvalSecondsSampled is the rule's evaluation time measured on
	// sampled events and EvalShare its share (0 to 1) of that of all
	// rules.
	EvalSecondsSampled float64 `json:"eval_seconds_sampled"`
	EvalShare          float64 `json:"eval_share"`
	// Closed counts the rule's alerts closed by analysts, by reason
	// (false_positive, true_positive, benign).
	Closed map[string]int64 `json:"closed,omitempty"`
}

// Health states of [RuleHealth].
const (
	HealthOK     = "ok"
	HealthUnable = "unable_to_fire"
)

// RuleHealth says whether a rule can fire. State is HealthOK or
// HealthUnable; for HealthUnable, File, Line and Field locate the cause
// (the logsource, or a field that no Cloudflare record carries) and Reason
// says it.
type RuleHealth struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Field  string `json:"field,omitempty"`
}

// RuleSkip is a rule that was read but not loaded (deprecated or
// unsupported), as GET /api/v1/rules lists it under "skipped".
type RuleSkip struct {
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	ID     string `json:"id,omitempty"`
	Title  string `json:"title,omitempty"`
	Reason string `json:"reason"`
}

// Logsource is a rule's Sigma logsource.
type Logsource struct {
	Category string `json:"category,omitempty"`
	Product  string `json:"product,omitempty"`
	Service  string `json:"service,omitempty"`
}

// Options configures [New].
type Options struct {
	// IntakeKeys maps intake names to their keys. At least one is required.
	IntakeKeys map[string]string
	// DashboardToken, when not empty, is required by every API call, /ws
	// and /metrics: as "Authorization: Bearer <token>" or through the
	// session cookie that POST /login sets.
	DashboardToken string
	Spool          Spool
	Alerts         AlertSource
	Rules          RuleLister
	Hub            *Hub
	Logger         *slog.Logger
	// Registry, if set, receives the web metrics and is served on
	// /metrics.
	Registry *prometheus.Registry
	// MaxBodyBytes caps the request body as sent (compressed); 0 means 64 MiB.
	MaxBodyBytes int64
	// MaxDecompressedBytes caps the decompressed batch; 0 means 256 MiB.
	MaxDecompressedBytes int64
	// MaxLines caps the lines of an NDJSON batch; 0 means 1,000,000.
	MaxLines int
	// Reports are served at GET /api/v1/iocs, /coverage, /jobs and /outputs.
	Reports Reports
	// RuleCoverage, if set, returns per rule id whether the rule's fields
	// are arriving on each intake: the "coverage" member GET
	// /api/v1/rules adds to those rules.
	RuleCoverage func(ctx context.Context) map[string][]RuleCoverage
	// RuleErrors, if set, returns the rule files that failed to load, for
	// GET /api/v1/rules.
	RuleErrors func() []RuleLoadError
	// RuleSkipped, if set, returns the rules read but not loaded
	// (deprecated, unsupported), for GET /api/v1/rules.
	RuleSkipped func() []RuleSkip
	// Overview, if set, serves GET /api/v1/overview?range=D&to=T: a
	// summary of the alerts of the span rng ending at to (to is zero when
	// the request leaves it to the implementation).
	Overview func(ctx context.Context, to time.Time, rng time.Duration) (Overview, error)

	// Exceptions, if set, serves GET and POST /api/v1/exceptions and
	// DELETE /api/v1/exceptions/{id}.
	Exceptions ExceptionStore
	// SearchIOCs, if set, serves GET /api/v1/iocs/search?q=: at most
	// limit indicators in use that answer q.
	SearchIOCs func(ctx context.Context, q string, limit int) (IOCSearch, error)
	// Retro, if set, serves the batch archive's state and its retro-hunts
	// (GET /api/v1/retro) and queues a rule's (POST
	// /api/v1/rules/{id}/retro).
	Retro RetroHunter

	// Sessions keeps the dashboard's login sessions (see [SessionStore]);
	// nil keeps them in memory, so that a restart logs everyone out.
	Sessions SessionStore
	// ListenAddr is the address the server listens on (--listen). Without
	// a dashboard token, requests must name in Host a loopback host, the
	// address they arrived on, the host of ListenAddr (unless unspecified,
	// as in ":8080") or one of AllowedHosts; others get 421. The intake
	// and /healthz are not checked.
	ListenAddr string
	// AllowedHosts are the other host names (or host:port) that requests
	// may name without a dashboard token (--allowed-hosts).
	AllowedHosts []string
	// MaxWebsocketClients caps the open /ws connections; beyond it /ws
	// answers 503. 0 means 100.
	MaxWebsocketClients int
	// MaxConnections caps the open connections of [Server.LimitListener];
	// 0 means 1024, a negative value means no limit.
	MaxConnections int
	// BodyTimeout cuts a request body that brings no byte for this long
	// (an intake batch may take longer as long as it keeps coming; any
	// other body must arrive whole within it); it is also the time allowed
	// for request headers. 0 means 10 seconds.
	BodyTimeout time.Duration
	// WriteTimeout bounds the writing of an answer (all but /ws); 0 means
	// 60 seconds.
	WriteTimeout time.Duration
	// WebsocketWriteTimeout drops a websocket client that does not take a
	// message within it; 0 means 10 seconds.
	WebsocketWriteTimeout time.Duration
	// Blocks, if set, serves the edge block list: GET and POST
	// /api/v1/blocks, DELETE /api/v1/blocks/{ip}.
	Blocks Blocks
}

// Server is raywatch's HTTP handler.
type Server struct {
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	ready   atomic.Bool
	keys    []intakeKey
	token   []byte // nil when no dashboard token
	session []byte // key of the session cookie MAC
	wsWG    sync.WaitGroup
	// wsMu makes starting a websocket's goroutines and Wait exclusive, so
	// that wsWG.Add never runs concurrently with wsWG.Wait; wsDone refuses
	// connections upgraded after Wait began.
	wsMu      sync.Mutex
	wsDone    bool
	wsClients atomic.Int64
	metrics   *metrics
	// snapMu guards the websocket snapshot, and the Hub generation and
	// the time it was taken at.
	snapMu   sync.Mutex
	snap     *snapshot
	snapGen  uint64
	snapAt   time.Time
	sessions SessionStore
	hosts    []allowedHost

	rejectMu sync.Mutex
	rejected []RejectedBatch // ring of the last maxRejectedBatches
}

type intakeKey struct {
	name string
	key  []byte
}

// New returns a Server. It is not ready (healthz and the intake answer 503)
// until SetReady(true).
func New(opts Options) (*Server, error) {
	if len(opts.IntakeKeys) == 0 {
		return nil, errors.New("no intake key configured")
	}
	if opts.Spool == nil || opts.Alerts == nil || opts.Hub == nil {
		return nil, errors.New("web: Spool, Alerts and Hub are required")
	}
	opts.setDefaults()
	s := &Server{
		opts:     opts,
		log:      opts.Logger.With("component", "web"),
		mux:      http.NewServeMux(),
		sessions: opts.Sessions,
		hosts:    parseAllowedHosts(opts.AllowedHosts, opts.ListenAddr),
	}
	for name, key := range opts.IntakeKeys {
		if key == "" {
			return nil, errors.New("intake " + strconv.Quote(name) + " has an empty key")
		}
		s.keys = append(s.keys, intakeKey{name: name, key: []byte(key)})
	}
	if opts.DashboardToken != "" {
		s.token = []byte(opts.DashboardToken)
		k := sha256.Sum256([]byte("raywatch session key\x00" + opts.DashboardToken))
		s.session = k[:]
	}
	s.metrics = newMetrics(opts.Registry, opts.Hub)
	ui, err := fs.Sub(uiFS, "ui")
	if err != nil {
		return nil, err
	}
	s.routes(http.FileServerFS(ui))
	return s, nil
}

// setDefaults fills in the zero fields of o that have a default.
func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&o.MaxBodyBytes, 64<<20)
	setDefault(&o.MaxDecompressedBytes, 256<<20)
	setDefault(&o.MaxLines, 1_000_000)
	setDefault(&o.MaxWebsocketClients, 100)
	setDefault(&o.MaxConnections, 1024)
	setDefault(&o.BodyTimeout, 10*time.Second)
	setDefault(&o.WriteTimeout, 60*time.Second)
	setDefault(&o.WebsocketWriteTimeout, 10*time.Second)
	if o.Sessions == nil {
		o.Sessions = newMemSessions()
	}
}

// routes registers every endpoint on s.mux; the optional ones only when
// their Options field is set. static serves the dashboard's files.
func (s *Server) routes(static http.Handler) {
	opts := s.opts
	s.mux.HandleFunc("POST /plain/batch", s.handleBatch)
	s.mux.HandleFunc("PUT /plain/batch", s.handleBatch)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.HandleFunc("POST /login", s.handleLogin)
	s.mux.HandleFunc("POST /logout", s.handleLogout)
	s.mux.HandleFunc("GET /api/v1/alerts", s.requireAuth(s.handleListAlerts))
	s.mux.HandleFunc("GET /api/v1/alerts/{id}", s.requireAuth(s.handleGetAlert))
	s.mux.HandleFunc("PATCH /api/v1/alerts/{id}", s.requireAuth(s.handlePatchAlert))
	s.mux.HandleFunc("GET /api/v1/rules", s.requireAuth(s.handleRules))
	s.mux.HandleFunc("GET /api/v1/stats", s.requireAuth(s.handleStats))
	s.mux.HandleFunc("GET /api/v1/rejects", s.requireAuth(s.handleRejects))
	s.mux.HandleFunc("GET /api/v1/attack/layer", s.requireAuth(s.handleAttackLayer))
	if opts.Overview != nil {
		s.mux.HandleFunc("GET /api/v1/overview", s.requireAuth(s.handleOverview))
	}
	if rep := opts.Reports.IOCs; rep != nil {
		s.mux.HandleFunc("GET /api/v1/iocs", s.requireAuth(handleReport(s, "iocs", rep)))
	}
	if rep := opts.Reports.Coverage; rep != nil {
		s.mux.HandleFunc("GET /api/v1/coverage", s.requireAuth(handleReport(s, "coverage", rep)))
	}
	if rep := opts.Reports.Jobs; rep != nil {
		s.mux.HandleFunc("GET /api/v1/jobs", s.requireAuth(handleReport(s, "jobs", rep)))
	}
	if rep := opts.Reports.Outputs; rep != nil {
		s.mux.HandleFunc("GET /api/v1/outputs", s.requireAuth(handleReport(s, "outputs", rep)))
	}
	if opts.Blocks != nil {
		s.mux.HandleFunc("GET /api/v1/blocks", s.requireAuth(s.handleBlocks))
		s.mux.HandleFunc("POST /api/v1/blocks", s.requireAuth(s.handleBlock))
		s.mux.HandleFunc("DELETE /api/v1/blocks/{ip...}", s.requireAuth(s.handleUnblock))
	}
	if rep := opts.Reports.Throttled; rep != nil {
		s.mux.HandleFunc("GET /api/v1/throttled", s.requireAuth(handleReport(s, "throttled", rep)))
	}
	if opts.SearchIOCs != nil {
		s.mux.HandleFunc("GET /api/v1/iocs/search", s.requireAuth(s.handleIOCSearch))
	}
	if opts.Exceptions != nil {
		s.mux.HandleFunc("GET /api/v1/exceptions", s.requireAuth(s.handleListExceptions))
		s.mux.HandleFunc("POST /api/v1/exceptions", s.requireAuth(s.handleAddException))
		s.mux.HandleFunc("DELETE /api/v1/exceptions/{id}", s.requireAuth(s.handleDeleteException))
	}
	s.routeRetro()
	s.mux.HandleFunc("GET /api/", s.requireAuth(s.handleNoAPI))
	s.mux.HandleFunc("GET /ws", s.requireAuth(s.handleWS))
	if opts.Registry != nil {
		s.mux.Handle("GET /metrics", s.requireAuth(promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}).ServeHTTP))
	}
	// The page itself needs a session; its scripts and styles hold no data.
	s.mux.HandleFunc("GET /{$}", s.handleIndex(static))
	s.mux.HandleFunc("GET /index.html", s.handleIndex(static))
	s.mux.Handle("GET /", files(static))
}

// setDefault sets *v to def when it is zero.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// files serves the dashboard's scripts and styles. A directory (which the
// file server would answer with index.html, past the login) is not found:
// the page is served by handleIndex. Neither is a name that no file can
// have (the file server answers those with 500).
func files(static http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || !fs.ValidPath(strings.TrimPrefix(r.URL.Path, "/")) {
			writeError(w, http.StatusNotFound, "no such path")
			return
		}
		static.ServeHTTP(w, r)
	}
}

// SetReady marks the server ready (or not) to accept batches.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// ServeHTTP implements http.Handler. Before routing, every request gets
// security headers, a cleaned path (see guard), body and write deadlines,
// and without a dashboard token a Host check; serve it through
// [Server.HTTPServer] and [Server.LimitListener] for the connection-level
// limits.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	if r = s.guard(w, r); r == nil {
		return
	}
	// Under /api/, a method that the mux does not route gets a JSON answer
	// too (its own 405 is plain text).
	if strings.HasPrefix(r.URL.Path, "/api/") {
		if _, pattern := s.mux.Handler(r); pattern == "" {
			s.requireAuth(s.handleNoAPI)(w, r)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// handleNoAPI answers a request under /api/ that no endpoint takes.
func (s *Server) handleNoAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		writeError(w, http.StatusNotFound, "no such API endpoint")
		return
	}
	writeError(w, http.StatusMethodNotAllowed, "no API endpoint takes "+r.Method+" on this path")
}

// Wait waits for the websocket connections to end (they end when the Hub
// stops). A connection upgraded after Wait began is closed at once.
func (s *Server) Wait() {
	s.wsMu.Lock()
	s.wsDone = true
	s.wsMu.Unlock()
	s.wsWG.Wait()
}

// intakeFor returns the intake whose key is key, comparing in constant time
// against every configured key.
func (s *Server) intakeFor(key string) (string, bool) {
	found := ""
	ok := false
	for _, k := range s.keys {
		if subtle.ConstantTimeCompare([]byte(key), k.key) == 1 {
			found, ok = k.name, true
		}
	}
	return found, ok
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleIndex(static http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			http.Redirect(w, r, "/login.html", http.StatusSeeOther)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/"
		static.ServeHTTP(w, r2)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
