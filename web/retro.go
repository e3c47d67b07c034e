package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// RetroHunter is the batch archive and the retro-hunts run over it: GET
// /api/v1/retro and POST /api/v1/rules/{id}/retro. Its methods must be
// safe for concurrent use.
type RetroHunter interface {
	// Retro returns the archive's state and the hunts.
	Retro(ctx context.Context) (RetroReport, error)
	// HuntRule queues a hunt of the rule over the archive and returns the
	// hunt's id. Its errors wrap ErrNotFound for an unknown rule, or
	// ErrBadRequest, with a message for the user, when the rule cannot be
	// hunted (no archive, the intelligence-feed rule, a correlation).
	HuntRule(ctx context.Context, id string) (string, error)
}

// RetroReport is GET /api/v1/retro.
type RetroReport struct {
	Archive ArchiveStats `json:"archive"`
	// Hunts lists the running and queued hunts first, then the finished
	// ones, newest first.
	Hunts []RetroHunt `json:"hunts"`
}

// ArchiveStats describe the batch archive (serve --archive-dir): its size
// and the received times it spans.
type ArchiveStats struct {
	Enabled bool      `json:"enabled"`
	Bytes   int64     `json:"bytes"`
	Objects int       `json:"objects"`
	Oldest  time.Time `json:"oldest,omitzero"`
	Newest  time.Time `json:"newest,omitzero"`
	// Retention and MaxBytes are the archive's bounds (0: none); the
	// retention is in seconds.
	RetentionSeconds int64 `json:"retention_seconds"`
	MaxBytes         int64 `json:"max_bytes"`
}

// RetroHunt is one retro-hunt: of the indicators an IOC reload added
// (kind "indicators") or of one rule (kind "rule").
type RetroHunt struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Rule is the rule hunted, or the intelligence-feed rule.
	Rule string `json:"rule"`
	// Indicators counts the indicators hunted; Shown lists the first ones
	// ("type:value (file:line)").
	Indicators int       `json:"indicators,omitempty"`
	Shown      []string  `json:"shown,omitempty"`
	State      string    `json:"state"` // queued, running, done, failed, canceled
	Queued     time.Time `json:"queued"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	// Since and Until bound the received times of the batches read.
	Since        time.Time `json:"since,omitzero"`
	Until        time.Time `json:"until"`
	Objects      int       `json:"objects"`
	ObjectsTotal int       `json:"objects_total"`
	Bytes        int64     `json:"bytes"`
	BytesTotal   int64     `json:"bytes_total"`
	Records      int64     `json:"records"`
	// Matches are the alerts raised (before the store's de-duplication).
	Matches    int    `json:"matches"`
	Unreadable int    `json:"unreadable,omitempty"`
	Error      string `json:"error,omitempty"`
}

// routeRetro registers the retro-hunt endpoints when opts.Retro is set.
func (s *Server) routeRetro() {
	if s.opts.Retro == nil {
		return
	}
	s.mux.HandleFunc("GET /api/v1/retro", s.requireAuth(handleReport(s, "retro", s.opts.Retro.Retro)))
	s.mux.HandleFunc("POST /api/v1/rules/{id}/retro", s.requireAuth(s.handleRetroRule))
}

// handleRetroRule serves POST /api/v1/rules/{id}/retro: 202 with the
// hunt's id, 404 for an unknown rule, 400 for a rule that cannot be
// hunted.
func (s *Server) handleRetroRule(w http.ResponseWriter, r *http.Request) {
	id, err := s.opts.Retro.HuntRule(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "no such rule")
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, userMessage(err))
	case err != nil:
		s.log.Error("retro-hunt a rule", "rule", r.PathValue("id"), "err", err)
		writeError(w, http.StatusInternalServerError, "cannot queue the hunt")
	default:
		writeJSON(w, http.StatusAccepted, map[string]string{"hunt": id})
	}
}

// userMessage is err's message without the ErrBadRequest prefix the
// wrapping adds.
func userMessage(err error) string {
	return strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": ")
}
