// Package web serves raywatch over HTTP: the Logpush intake (POST
// /plain/batch), the REST API, the websocket feed of new alerts and the
// embedded dashboard.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/raywatch/raywatch/engine"
)

//go:embed ui
var uiFS embed.FS

// IntakeKeyHeader is the header carrying the intake key, as SEKOIA.IO's
// intake expects it (Logpush sets it from destination_conf's
// header_X-SEKOIAIO-INTAKE-KEY parameter).
const IntakeKeyHeader = "X-SEKOIAIO-INTAKE-KEY"

// Ingester processes one decompressed Logpush batch for the named intake. It
// returns only once the batch's alerts are committed, so that a 2xx answer
// never loses an alert. It must be safe for concurrent use.
type Ingester interface {
	Ingest(ctx context.Context, intake string, body []byte) (IngestResult, error)
}

// IngestResult summarises one ingested batch.
type IngestResult struct {
	Records   int      `json:"records"`
	Malformed int      `json:"malformed"`
	Alerts    int      `json:"alerts"`
	New       int      `json:"new_alerts"`
	Errors    []string `json:"errors,omitempty"` // the first malformed records, with their number
}

// AlertQuery selects alerts for listing.
type AlertQuery struct {
	Limit  int
	Cursor string
}

// AlertSource reads stored alerts. It must be safe for concurrent use.
type AlertSource interface {
	ListAlerts(ctx context.Context, q AlertQuery) (alerts []engine.Alert, next string, err error)
	GetAlert(ctx context.Context, id string) (engine.Alert, error)
}

// RuleLister describes the loaded rules.
type RuleLister interface {
	Rules() []engine.RuleStatus
}

// ErrNotFound is returned by an AlertSource for an unknown id.
var ErrNotFound = errors.New("not found")

// Options configures [New].
type Options struct {
	// IntakeKeys maps intake names to their keys. At least one is required.
	IntakeKeys map[string]string
	Ingester   Ingester
	Alerts     AlertSource
	Rules      RuleLister
	Hub        *Hub
	Logger     *slog.Logger
	// MaxBodyBytes caps the request body as sent (compressed); 0 means 64 MiB.
	MaxBodyBytes int64
	// MaxDecompressedBytes caps the decompressed batch; 0 means 256 MiB.
	MaxDecompressedBytes int64
}

// Server is raywatch's HTTP handler.
type Server struct {
	opts  Options
	log   *slog.Logger
	mux   *http.ServeMux
	ready atomic.Bool
	keys  []intakeKey
	wsWG  sync.WaitGroup
}

type intakeKey struct {
	name string
	key  []byte
}

// New returns a Server. It is not ready (healthz answers 503) until
// SetReady(true).
func New(opts Options) (*Server, error) {
	if len(opts.IntakeKeys) == 0 {
		return nil, errors.New("no intake key configured")
	}
	if opts.Ingester == nil || opts.Alerts == nil || opts.Hub == nil {
		return nil, errors.New("web: Ingester, Alerts and Hub are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 64 << 20
	}
	if opts.MaxDecompressedBytes == 0 {
		opts.MaxDecompressedBytes = 256 << 20
	}
	s := &Server{opts: opts, log: opts.Logger.With("component", "web"), mux: http.NewServeMux()}
	for name, key := range opts.IntakeKeys {
		if key == "" {
			return nil, errors.New("intake " + strconv.Quote(name) + " has an empty key")
		}
		s.keys = append(s.keys, intakeKey{name: name, key: []byte(key)})
	}
	ui, err := fs.Sub(uiFS, "ui")
	if err != nil {
		return nil, err
	}
	s.mux.HandleFunc("POST /plain/batch", s.handleBatch)
	s.mux.HandleFunc("PUT /plain/batch", s.handleBatch)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.HandleFunc("GET /api/v1/alerts", s.handleListAlerts)
	s.mux.HandleFunc("GET /api/v1/alerts/{id}", s.handleGetAlert)
	s.mux.HandleFunc("GET /api/v1/rules", s.handleRules)
	s.mux.HandleFunc("GET /ws", s.handleWS)
	s.mux.Handle("GET /", http.FileServerFS(ui))
	return s, nil
}

// SetReady marks the server ready (or not) to accept batches.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	s.mux.ServeHTTP(w, r)
}

// Wait waits for the websocket connections to end (they end when the Hub
// stops).
func (s *Server) Wait() { s.wsWG.Wait() }

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

func (s *Server) handleListAlerts(w http.ResponseWriter, r *http.Request) {
	q := AlertQuery{Cursor: r.URL.Query().Get("cursor")}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		q.Limit = n
	}
	alerts, next, err := s.opts.Alerts.ListAlerts(r.Context(), q)
	if err != nil {
		s.log.Error("list alerts", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot list alerts")
		return
	}
	if alerts == nil {
		alerts = []engine.Alert{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": alerts, "next": next})
}

func (s *Server) handleGetAlert(w http.ResponseWriter, r *http.Request) {
	a, err := s.opts.Alerts.GetAlert(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "no such alert")
	case err != nil:
		s.log.Error("get alert", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot read alert")
	default:
		writeJSON(w, http.StatusOK, a)
	}
}

func (s *Server) handleRules(w http.ResponseWriter, r *http.Request) {
	var rs []engine.RuleStatus
	if s.opts.Rules != nil {
		rs = s.opts.Rules.Rules()
	}
	if rs == nil {
		rs = []engine.RuleStatus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": rs})
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
