package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
)

// ThrottleReport is GET /api/v1/throttled: the runaway-rule guard's budget
// (new alerts per rule and minute; 0 means no guard) and the rules that
// went over it lately, newest first.
type ThrottleReport struct {
	Budget    int            `json:"budget"`
	Since     time.Time      `json:"since"`
	Throttled []RuleThrottle `json:"throttled"`
}

// RuleThrottle is a rule that created its budget of new alerts in one
// minute (of event time): Dropped records that would have created more
// were dropped.
type RuleThrottle struct {
	Rule    string    `json:"rule"`
	Title   string    `json:"title,omitempty"`
	Minute  time.Time `json:"minute"`
	Created int64     `json:"created"`
	Dropped int64     `json:"dropped"`
}

// IOCSearch is GET /api/v1/iocs/search?q=: the indicators in use that
// answer the query, with the file and line that hold each.
type IOCSearch struct {
	Query   string     `json:"query"`
	Matches []IOCMatch `json:"matches"`
	// More reports that more indicators answer than are listed.
	More bool `json:"more"`
}

// IOCMatch is an indicator that answers an IOC search. How is "equal"
// (the value is the query), "covers" (a range holding the queried
// address, a parent domain of the queried host) or "contains" (the value
// holds the query).
type IOCMatch struct {
	Type  alert.IndicatorType `json:"type"`
	Value string              `json:"value"`
	File  string              `json:"file"`
	Line  int                 `json:"line"`
	How   string              `json:"how"`
}

// maxIOCQuery bounds the query of an IOC search.
const maxIOCQuery = 512

// handleIOCSearch serves GET /api/v1/iocs/search?q=VALUE&limit=N (N at
// most 1000, 100 by default).
func (s *Server) handleIOCSearch(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := strings.TrimSpace(v.Get("q"))
	if q == "" || len(q) > maxIOCQuery {
		writeError(w, http.StatusBadRequest, "q must hold the value to look for (at most "+strconv.Itoa(maxIOCQuery)+" bytes)")
		return
	}
	limit := 100
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to 1000")
			return
		}
		limit = n
	}
	res, err := s.opts.SearchIOCs(r.Context(), q, limit)
	if err != nil {
		s.log.Error("search indicators", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot search the indicators")
		return
	}
	if res.Matches == nil {
		res.Matches = []IOCMatch{}
	}
	writeJSON(w, http.StatusOK, res)
}
