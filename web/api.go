package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/raywatch/raywatch/rules/alert"
)

// parseTime accepts RFC 3339 or Unix seconds.
func parseTime(v string) (time.Time, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Parse(time.RFC3339Nano, v)
}

// handleListAlerts serves GET /api/v1/alerts?limit=N&cursor=C&rule=&level=
// &status=&intake=&from=&to=&q=.
func (s *Server) handleListAlerts(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := AlertQuery{
		Cursor: v.Get("cursor"),
		Rule:   v.Get("rule"),
		Level:  v.Get("level"),
		Status: v.Get("status"),
		Intake: v.Get("intake"),
		Text:   v.Get("q"),
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		q.Limit = n
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if x := v.Get(p.name); x != "" {
			t, err := parseTime(x)
			if err != nil {
				writeError(w, http.StatusBadRequest, p.name+" must be RFC 3339 or Unix seconds")
				return
			}
			*p.dst = t
		}
	}
	alerts, next, err := s.opts.Alerts.ListAlerts(r.Context(), q)
	if err != nil {
		s.log.Error("list alerts", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot list alerts")
		return
	}
	if alerts == nil {
		alerts = []alert.Alert{}
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

// Bounds of a status change: the comment in bytes, the name in
// characters.
const (
	maxComment = 1 << 10
	maxBy      = 64
)

// patchBody is the body of PATCH /api/v1/alerts/{id}.
type patchBody struct {
	Status  string `json:"status"`
	By      string `json:"by"`
	Comment string `json:"comment"`
	// Reason is the verdict of a change to closed: false_positive,
	// true_positive or benign (optional).
	Reason string `json:"reason"`
}

// readPatch decodes and checks the body of a PATCH: one JSON object with
// known members, nothing after it, a name of at most maxBy characters and
// a comment of at most maxComment bytes, neither with control characters
// (the comment may hold line breaks and tabs). The error is for the
// client.
func readPatch(w http.ResponseWriter, r *http.Request) (patchBody, error) {
	var body patchBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, smallBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return body, errors.New(`body must be {"status": "new" | "acknowledged" | "closed", "by": "...", "comment": "...", "reason": "false_positive" | "true_positive" | "benign"}`)
	}
	if _, err := dec.Token(); err != io.EOF {
		return body, errors.New("body must hold one JSON object and nothing after it")
	}
	body.By = strings.TrimSpace(body.By)
	body.Comment = strings.TrimSpace(body.Comment)
	switch {
	case utf8.RuneCountInString(body.By) > maxBy:
		return body, fmt.Errorf("by must be at most %d characters", maxBy)
	case hasControl(body.By, ""):
		return body, errors.New("by must not hold control characters")
	case len(body.Comment) > maxComment:
		return body, fmt.Errorf("comment must be at most %d bytes", maxComment)
	case hasControl(body.Comment, "\n\t"):
		return body, errors.New("comment must not hold control characters other than line breaks and tabs")
	case body.Reason != "" && !slices.Contains(alert.Reasons, body.Reason):
		return body, fmt.Errorf("reason %q: want %s", body.Reason, strings.Join(alert.Reasons, ", "))
	case body.Reason != "" && body.Status != alert.StatusClosed:
		return body, errors.New(`a reason goes only with "status": "closed"`)
	}
	return body, nil
}

// hasControl reports whether s holds a control character (C0, DEL or C1)
// other than those of allowed.
func hasControl(s, allowed string) bool {
	for _, c := range s {
		if unicode.IsControl(c) && !strings.ContainsRune(allowed, c) {
			return true
		}
	}
	return false
}

// handlePatchAlert serves PATCH /api/v1/alerts/{id} with {"status": "new" |
// "acknowledged" | "closed", "by": "optional name", "comment": "optional
// note", "reason": "false_positive" | "true_positive" | "benign" (only with
// closed)}.
func (s *Server) handlePatchAlert(w http.ResponseWriter, r *http.Request) {
	body, err := readPatch(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	by := body.By
	if by == "" {
		by = s.principal(r)
	}
	var a alert.Alert
	if sc, ok := s.opts.Alerts.(StatusChanger); ok {
		a, err = sc.ChangeStatus(r.Context(), r.PathValue("id"), alert.StatusChange{
			Status: body.Status, By: by, At: time.Now(), Comment: body.Comment, Reason: body.Reason,
		})
	} else if body.Reason != "" {
		writeError(w, http.StatusBadRequest, "this raywatch does not record close reasons")
		return
	} else if sc, ok := s.opts.Alerts.(StatusCommenter); ok && body.Comment != "" {
		a, err = sc.SetStatusComment(r.Context(), r.PathValue("id"), body.Status, by, body.Comment)
	} else {
		a, err = s.opts.Alerts.SetStatus(r.Context(), r.PathValue("id"), body.Status, by)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "no such alert")
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, `status must be "new", "acknowledged" or "closed"`)
	case err != nil:
		s.log.Error("set alert status", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot update alert")
	default:
		s.opts.Hub.Publish([]alert.Alert{a})
		writeJSON(w, http.StatusOK, a)
	}
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// handleRules serves GET /api/v1/rules: {"rules": [...], "errors": [...],
// "skipped": [...]}.
func (s *Server) handleRules(w http.ResponseWriter, r *http.Request) {
	var rs []RuleStatus
	if s.opts.Rules != nil {
		rs = s.opts.Rules.Rules()
	}
	if rs == nil {
		rs = []RuleStatus{}
	}
	loadErrors := []RuleLoadError{}
	if s.opts.RuleErrors != nil {
		loadErrors = append(loadErrors, s.opts.RuleErrors()...)
	}
	skipped := []RuleSkip{}
	if s.opts.RuleSkipped != nil {
		skipped = append(skipped, s.opts.RuleSkipped()...)
	}
	if s.opts.RuleCoverage == nil {
		writeJSON(w, http.StatusOK, map[string]any{"rules": rs, "errors": loadErrors, "skipped": skipped})
		return
	}
	cov := s.opts.RuleCoverage(r.Context())
	out := make([]ruleWithCoverage, len(rs))
	for i := range rs {
		out[i] = ruleWithCoverage{RuleStatus: rs[i], Coverage: cov[rs[i].ID]}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": out, "errors": loadErrors, "skipped": skipped})
}

// ruleWithCoverage is a rule of GET /api/v1/rules with its coverage on
// each intake that has received records (no member when none has).
type ruleWithCoverage struct {
	RuleStatus
	Coverage []RuleCoverage `json:"coverage,omitempty"`
}

// handleOverview serves GET /api/v1/overview?range=24h&to=T.
func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	rng := 24 * time.Hour
	if x := v.Get("range"); x != "" {
		d, err := time.ParseDuration(x)
		if err != nil || d < time.Minute || d > 366*24*time.Hour {
			writeError(w, http.StatusBadRequest, "range must be a duration between 1m and 8784h (for example 24h)")
			return
		}
		rng = d
	}
	var to time.Time
	if x := v.Get("to"); x != "" {
		t, err := parseTime(x)
		if err != nil {
			writeError(w, http.StatusBadRequest, "to must be RFC 3339 or Unix seconds")
			return
		}
		to = t
	}
	ov, err := s.opts.Overview(r.Context(), to, rng)
	if err != nil {
		s.log.Error("overview", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot build the overview")
		return
	}
	writeJSON(w, http.StatusOK, ov)
}

// handleReport serves one of Options.Reports.
func handleReport[T any](s *Server, name string, rep func(context.Context) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := rep(r.Context())
		if err != nil {
			s.log.Error("report", "report", name, "err", err)
			writeError(w, http.StatusInternalServerError, "cannot build the "+name+" report")
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.opts.Alerts.Stats(r.Context())
	if err != nil {
		s.log.Error("stats", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot read stats")
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// handleRejects serves GET /api/v1/rejects?limit=N: the malformed records
// kept for inspection and the batches the intake refused lately.
func (s *Server) handleRejects(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		limit = n
	}
	recs, err := s.opts.Alerts.Rejects(r.Context(), limit)
	if err != nil {
		s.log.Error("rejects", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot read rejects")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": recs, "batches": s.rejectedBatches()})
}
