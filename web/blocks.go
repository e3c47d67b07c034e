package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// BlockEntry is an address on the edge block list (the Cloudflare IP
// list raywatch fills), as GET /api/v1/blocks lists it.
type BlockEntry struct {
	// Address is "203.0.113.7", or an IPv6 /64 ("2001:db8:1:2::/64").
	Address string    `json:"address"`
	Listed  time.Time `json:"listed"`
	Until   time.Time `json:"until"`
	// Who listed it: "rule:<rule id>" or a person.
	Who     string `json:"who"`
	Rule    string `json:"rule,omitempty"`
	Alert   string `json:"alert,omitempty"`
	Reason  string `json:"reason"`
	Comment string `json:"comment,omitempty"`
	// DryRun marks an entry that a dry run only pretended to list.
	DryRun bool `json:"dry_run,omitempty"`
}

// BlockHold is an address a person unblocked, which the rules do not
// list again before Until.
type BlockHold struct {
	Address string    `json:"address"`
	Until   time.Time `json:"until"`
	Who     string    `json:"who"`
}

// BlockAudit is one record of the block list's audit trail.
type BlockAudit struct {
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Action is block, extend, unblock or expire.
	Action  string    `json:"action"`
	Address string    `json:"address"`
	Who     string    `json:"who"`
	Rule    string    `json:"rule,omitempty"`
	Alert   string    `json:"alert,omitempty"`
	Reason  string    `json:"reason"`
	Until   time.Time `json:"until,omitzero"`
	DryRun  bool      `json:"dry_run,omitempty"`
}

// BlocksReport is GET /api/v1/blocks: the block list's settings, its
// entries and holds, and its audit trail (newest first).
type BlocksReport struct {
	List        string       `json:"list"`
	DryRun      bool         `json:"dry_run"`
	MinLevel    string       `json:"min_level"`
	Rules       []string     `json:"rules"`
	TTLSeconds  int64        `json:"ttl_seconds"`
	Max         int          `json:"max"`
	Listed      int          `json:"listed"`
	Full        bool         `json:"full"`
	Evicted     int64        `json:"evicted"`
	LastEvicted time.Time    `json:"last_evicted,omitzero"`
	LastError   string       `json:"last_error,omitempty"`
	LastErrorAt time.Time    `json:"last_error_at,omitzero"`
	Entries     []BlockEntry `json:"entries"`
	Holds       []BlockHold  `json:"holds"`
	Audit       []BlockAudit `json:"audit"`
}

// BlockRequest is the body of POST /api/v1/blocks.
type BlockRequest struct {
	IP     string `json:"ip"`
	Reason string `json:"reason"`
	Alert  string `json:"alert"`
	// By optionally names the person; the audit trail records it with the
	// principal that authenticated ("alice via dashboard").
	By string `json:"by"`
}

// Blocks is the edge block list. Its methods must be safe for concurrent
// use.
type Blocks interface {
	// Report returns the list's state and up to limit records of the
	// audit trail; with ip set, only what concerns that address. Errors
	// wrap ErrBadRequest for an ip that is not an address.
	Report(ctx context.Context, ip string, limit int) (BlocksReport, error)
	// Block lists an address by hand, recording who. Errors wrap
	// ErrBadRequest (with the reason, for the client) when it is not an
	// address or may never be listed; others mean the Cloudflare list
	// could not be changed.
	Block(ctx context.Context, r BlockRequest, who string) (BlockEntry, error)
	// Unblock takes an address off the list, recording who and why. Errors
	// wrap ErrNotFound when it is not listed and ErrBadRequest when it is
	// not an address.
	Unblock(ctx context.Context, ip, reason, who string) (BlockEntry, error)
}

const maxBlockReason = 256

// handleBlocks serves GET /api/v1/blocks?ip=&limit=.
func (s *Server) handleBlocks(w http.ResponseWriter, r *http.Request) {
	limit := 200
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "limit must be between 1 and 10000")
			return
		}
		limit = n
	}
	rep, err := s.opts.Blocks.Report(r.Context(), r.URL.Query().Get("ip"), limit)
	s.blockAnswer(w, "read the block list", rep, err)
}

// handleBlock serves POST /api/v1/blocks with {"ip", "reason", "alert"}.
func (s *Server) handleBlock(w http.ResponseWriter, r *http.Request) {
	var body BlockRequest
	if err := readSmallJSON(w, r, &body, false); err != nil {
		writeError(w, http.StatusBadRequest, `body must be {"ip": "...", "reason": "...", "alert": "..."}: `+err.Error())
		return
	}
	if err := checkBlockText(body.Reason, body.Alert, body.By); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if strings.TrimSpace(body.IP) == "" {
		writeError(w, http.StatusBadRequest, "ip is required")
		return
	}
	e, err := s.opts.Blocks.Block(r.Context(), body, s.blockWho(r, body.By))
	s.blockAnswer(w, "block "+body.IP, e, err)
}

// handleUnblock serves DELETE /api/v1/blocks/{ip...} with an optional
// body {"reason": "...", "by": "..."}.
func (s *Server) handleUnblock(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
		By     string `json:"by"`
	}
	if err := readSmallJSON(w, r, &body, true); err != nil {
		writeError(w, http.StatusBadRequest, `body must be empty or {"reason": "..."}: `+err.Error())
		return
	}
	if err := checkBlockText(body.Reason, "", body.By); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ip := r.PathValue("ip")
	e, err := s.opts.Blocks.Unblock(r.Context(), ip, strings.TrimSpace(body.Reason), s.blockWho(r, body.By))
	s.blockAnswer(w, "unblock "+ip, e, err)
}

// blockWho is who the audit trail names: the principal, and the name the
// client gave.
func (s *Server) blockWho(r *http.Request, by string) string {
	p := s.principal(r)
	if by = strings.TrimSpace(by); by != "" {
		return by + " via " + p
	}
	return p
}

func (s *Server) blockAnswer(w http.ResponseWriter, what string, v any, err error) {
	switch {
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not on the block list")
	case err != nil:
		s.log.Warn("block list", "op", what, "err", err)
		writeError(w, http.StatusBadGateway, "cannot change the Cloudflare list: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

// readSmallJSON decodes one JSON object of known members (an empty body
// too when empty is true) into v.
func readSmallJSON(w http.ResponseWriter, r *http.Request, v any, empty bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, smallBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if empty && errors.Is(err, io.EOF) {
			return nil
		}
		return errors.New("not a JSON object of the known members")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON object")
	}
	return nil
}

// checkBlockText checks the free text of a block or unblock.
func checkBlockText(reason, alertID, by string) error {
	switch {
	case utf8.RuneCountInString(reason) > maxBlockReason:
		return fmt.Errorf("reason must be at most %d characters", maxBlockReason)
	case hasControl(reason, ""):
		return errors.New("reason must not hold control characters")
	case len(alertID) > 64 || strings.Trim(alertID, "0123456789abcdef") != "":
		return errors.New("alert must be an alert id")
	case utf8.RuneCountInString(by) > maxBy || hasControl(by, ""):
		return fmt.Errorf("by must be at most %d characters, without control characters", maxBy)
	}
	return nil
}
