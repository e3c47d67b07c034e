package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/rules/exception"
)

// ExceptionStore keeps the alert exceptions served at /api/v1/exceptions.
// It must be safe for concurrent use.
type ExceptionStore interface {
	// ListExceptions returns every exception, expired ones included,
	// oldest first, with its suppression count and last suppression up
	// to date.
	ListExceptions(ctx context.Context) ([]exception.Exception, error)
	// AddException stores x (a new exception: no ID; CreatedBy is set)
	// and applies it from the next event on. With close set, it then
	// closes the open (new or acknowledged) alerts that x matches and
	// returns them as stored. Errors wrap ErrBadRequest for an exception
	// that is refused (the message says why and is shown to the client).
	AddException(ctx context.Context, x exception.Exception, close *CloseMatching) (exception.Exception, []alert.Alert, error)
	// DeleteException deletes the exception id, which stops applying at
	// once; the error wraps ErrNotFound for an unknown id.
	DeleteException(ctx context.Context, id string) error
}

// CloseMatching asks [ExceptionStore.AddException] to close the open
// alerts that the new exception matches, as By, with Reason (one of
// alert.Reasons, or "").
type CloseMatching struct {
	By     string
	Reason string
}

// maxExceptionBody bounds the body of POST /api/v1/exceptions: a match
// may list a few hundred addresses.
const maxExceptionBody = 256 << 10

// exceptionKeys are the members POST /api/v1/exceptions takes.
var exceptionKeys = []string{"rule", "match", "comment", "expires", "by", "close_matching", "close_reason"}

// exceptionPost is the body of POST /api/v1/exceptions beside the
// exception itself.
type exceptionPost struct {
	By            string `json:"by"`
	CloseMatching bool   `json:"close_matching"`
	CloseReason   string `json:"close_reason"`
}

// listedException is an exception as GET /api/v1/exceptions lists it.
type listedException struct {
	exception.Exception
	// Expired reports that the exception no longer applies.
	Expired bool `json:"expired"`
}

// handleListExceptions serves GET /api/v1/exceptions: {"exceptions":
// [...]}, each with "suppressed", "last_suppressed" and "expired".
func (s *Server) handleListExceptions(w http.ResponseWriter, r *http.Request) {
	xs, err := s.opts.Exceptions.ListExceptions(r.Context())
	if err != nil {
		s.log.Error("list exceptions", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot list exceptions")
		return
	}
	now := time.Now()
	out := make([]listedException, len(xs))
	for i, x := range xs {
		out[i] = listedException{Exception: x, Expired: !x.Active(now)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"exceptions": out})
}

// readException decodes and checks the body of POST /api/v1/exceptions:
// one JSON object with only the members of exceptionKeys. The error is for
// the client.
func readException(w http.ResponseWriter, r *http.Request) (exception.Exception, exceptionPost, error) {
	var x exception.Exception
	var p exceptionPost
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxExceptionBody))
	if err != nil {
		return x, p, fmt.Errorf("body: at most %d bytes", maxExceptionBody)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return x, p, errors.New(`body must be {"rule": "<rule id>" | "*", "match": {"<ECS field>[|contains|startswith|endswith|cidr]": value or [values]}, "comment": "...", "expires": "<RFC 3339>"}`)
	}
	var unknown []string
	for k := range members {
		if !slices.Contains(exceptionKeys, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return x, p, fmt.Errorf("unknown member %q; the members are %s", unknown[0], strings.Join(exceptionKeys, ", "))
	}
	if err := json.Unmarshal(b, &x); err != nil {
		return x, p, fmt.Errorf("exception: %v", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return x, p, fmt.Errorf("body: %v", err)
	}
	x.Rule = strings.TrimSpace(x.Rule)
	x.Comment = strings.TrimSpace(x.Comment)
	p.By = strings.TrimSpace(p.By)
	switch {
	case len(x.Comment) > maxComment:
		return x, p, fmt.Errorf("comment must be at most %d bytes", maxComment)
	case hasControl(x.Comment, "\n\t"):
		return x, p, errors.New("comment must not hold control characters other than line breaks and tabs")
	case utf8.RuneCountInString(p.By) > maxBy || hasControl(p.By, ""):
		return x, p, fmt.Errorf("by must be at most %d printable characters", maxBy)
	case p.CloseReason != "" && !slices.Contains(alert.Reasons, p.CloseReason):
		return x, p, fmt.Errorf("close_reason %q: want %s", p.CloseReason, strings.Join(alert.Reasons, ", "))
	case p.CloseReason != "" && !p.CloseMatching:
		return x, p, errors.New("close_reason goes with close_matching")
	}
	return x, p, nil
}

// handleAddException serves POST /api/v1/exceptions: 201 with the stored
// exception, plus "closed_alerts" (the number of open alerts closed) when
// the body asked for "close_matching".
func (s *Server) handleAddException(w http.ResponseWriter, r *http.Request) {
	x, p, err := readException(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	by := p.By
	if by == "" {
		by = s.principal(r)
	}
	x.ID, x.CreatedBy, x.CreatedAt, x.Suppressed, x.LastSuppressed = "", by, time.Time{}, 0, time.Time{}
	var closeOpts *CloseMatching
	if p.CloseMatching {
		closeOpts = &CloseMatching{By: by, Reason: p.CloseReason}
	}
	x, closed, err := s.opts.Exceptions.AddException(r.Context(), x, closeOpts)
	switch {
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
		return
	case err != nil && x.ID == "":
		s.log.Error("add exception", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot store the exception")
		return
	case err != nil:
		// Stored and applied; closing the matching alerts failed midway.
		s.log.Error("close the alerts an exception matches", "exception", x.ID, "err", err)
	}
	if len(closed) > 0 {
		s.opts.Hub.Publish(closed)
	}
	if !p.CloseMatching {
		writeJSON(w, http.StatusCreated, x)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		exception.Exception
		ClosedAlerts int    `json:"closed_alerts"`
		CloseError   string `json:"close_error,omitempty"`
	}{x, len(closed), errText(err, "some matching alerts could not be closed")})
}

// errText is msg when err is not nil.
func errText(err error, msg string) string {
	if err == nil {
		return ""
	}
	return msg
}

// handleDeleteException serves DELETE /api/v1/exceptions/{id}: 204, or
// 404 for an unknown id.
func (s *Server) handleDeleteException(w http.ResponseWriter, r *http.Request) {
	err := s.opts.Exceptions.DeleteException(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "no such exception")
	case err != nil:
		s.log.Error("delete exception", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot delete the exception")
	default:
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	}
}
