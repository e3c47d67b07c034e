// Package cftest is a fake of the parts of Cloudflare's v4 API that
// raywatch uses, for tests: zones, Logpush jobs and dataset fields,
// account IP lists with their items and asynchronous bulk operations, and
// the zone's custom-rules entry point ruleset. It answers with Cloudflare's
// envelope ({"success", "errors", "messages", "result"}) and error codes,
// checks the credentials, and can be told to fail.
package cftest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The identifiers and credentials the fake knows.
const (
	Zone     = "023e105f4ecef8ad9ca31a8372d0c353"
	ZoneName = "example.com"
	Account  = "01a7362d577a6c3019a474fd6f485823"
	Token    = "tok-Y2xvdWRmbGFyZS10b2tlbi1zZWNyZXQ"
	Email    = "admin@example.com"
	APIKey   = "c2547eb745079dac9320b638f5e225cf483cc5cfdda41"
)

// Route patterns, as Count and Bodies name them.
const (
	PZones           = "GET /client/v4/zones"
	PZone            = "GET /client/v4/zones/{zone}"
	PFields          = "GET /client/v4/zones/{zone}/logpush/datasets/{dataset}/fields"
	PValidate        = "POST /client/v4/zones/{zone}/logpush/validate/destination"
	PListJobs        = "GET /client/v4/zones/{zone}/logpush/jobs"
	PCreateJob       = "POST /client/v4/zones/{zone}/logpush/jobs"
	PUpdateJob       = "PUT /client/v4/zones/{zone}/logpush/jobs/{id}"
	PLists           = "GET /client/v4/accounts/{account}/rules/lists"
	PCreateList      = "POST /client/v4/accounts/{account}/rules/lists"
	PGetList         = "GET /client/v4/accounts/{account}/rules/lists/{list}"
	PItems           = "GET /client/v4/accounts/{account}/rules/lists/{list}/items"
	PAddItems        = "POST /client/v4/accounts/{account}/rules/lists/{list}/items"
	PDeleteItems     = "DELETE /client/v4/accounts/{account}/rules/lists/{list}/items"
	PBulkOperation   = "GET /client/v4/accounts/{account}/rules/lists/bulk_operations/{op}"
	PEntrypoint      = "GET /client/v4/zones/{zone}/rulesets/phases/{phase}/entrypoint"
	PCreateRuleset   = "POST /client/v4/zones/{zone}/rulesets"
	PCreateRule      = "POST /client/v4/zones/{zone}/rulesets/{ruleset}/rules"
	PEditRule        = "PATCH /client/v4/zones/{zone}/rulesets/{ruleset}/rules/{rule}"
	customRulesPhase = "http_request_firewall_custom"
)

// Server is the fake API. Its fields are guarded by Mu: lock it to read or
// change them while requests may arrive.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	Mu sync.Mutex
	// Fields are the http_requests fields the zone offers.
	Fields map[string]string
	// Jobs are the Logpush jobs by id, as the API returns them.
	Jobs map[int64]map[string]any
	// ZoneList is what GET /zones lists.
	ZoneList []map[string]any
	// Validate is the result of destination validation; nil means valid.
	Validate map[string]any
	// OpPolls is how many polls a bulk operation stays pending before it
	// completes (and its change shows); 0 completes it at the first poll.
	OpPolls int
	// FailOps makes the next bulk operations end "failed", changing
	// nothing, while it is above zero (each takes one).
	FailOps int
	// Lists are the account's lists by id.
	Lists map[string]*List
	// Ruleset is the zone's http_request_firewall_custom entry point; nil
	// until created.
	Ruleset map[string]any

	nextID int64
	calls  map[string]int
	bodies map[string][]any
	ops    map[string]*operation
	fails  []failure
}

// List is one account list.
type List struct {
	ID, Name, Kind, Description string
	Created                     time.Time
	// Items are the list's items in order: each has "id", "ip",
	// "comment", "created_on", "modified_on".
	Items []map[string]any
}

// operation is a bulk operation on a list's items.
type operation struct {
	id     string
	left   int
	apply  func()
	fail   bool
	status string
	err    string
}

// failure answers requests of pattern (every pattern when "") with an
// error; n counts the answers left (negative: forever).
type failure struct {
	pattern      string
	n            int
	status, code int
	msg          string
	retryAfter   string
}

// New starts a fake API that lives until the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:        t,
		Fields:   map[string]string{},
		Jobs:     map[int64]map[string]any{},
		ZoneList: []map[string]any{{"id": Zone, "name": ZoneName, "status": "active", "account": map[string]any{"id": Account, "name": "Example account"}}},
		Lists:    map[string]*List{},
		nextID:   100,
		calls:    map[string]int{},
		bodies:   map[string][]any{},
		ops:      map[string]*operation{},
		OpPolls:  2,
	}
	// http_requests as a zone without Bot Management offers it: no JA3Hash.
	for _, name := range []string{
		"BotScore", "CacheCacheStatus", "ClientASN", "ClientCountry", "ClientDeviceType", "ClientIP",
		"ClientRequestBytes", "ClientRequestHost", "ClientRequestMethod", "ClientRequestPath",
		"ClientRequestProtocol", "ClientRequestReferer", "ClientRequestScheme", "ClientRequestURI",
		"ClientRequestUserAgent", "ClientSSLCipher", "ClientSSLProtocol", "ClientSrcPort",
		"EdgeEndTimestamp", "EdgeResponseBytes", "EdgeResponseStatus", "EdgeStartTimestamp",
		"RayID", "SecurityAction", "WAFAttackScore", "ZoneName",
	} {
		s.Fields[name] = "Description of " + name
	}
	mux := http.NewServeMux()
	for pattern, h := range map[string]http.HandlerFunc{
		PZones: s.listZones, PZone: s.getZone,
		PFields: s.datasetFields, PValidate: s.validateDestination,
		PListJobs: s.listJobs, PCreateJob: s.createJob, PUpdateJob: s.updateJob,
		PLists: s.listLists, PCreateList: s.createList, PGetList: s.getList,
		PAddItems: s.addItems, PDeleteItems: s.deleteItems,
		PEntrypoint: s.getEntrypoint, PCreateRuleset: s.createRuleset, PCreateRule: s.createRule, PEditRule: s.editRule,
	} {
		mux.HandleFunc(pattern, s.wrap(pattern, h))
	}
	// GET .../lists/{list}/items and .../lists/bulk_operations/{op} overlap
	// as patterns: one handler tells them apart.
	items, bulk := s.wrap(PItems, s.listItems), s.wrap(PBulkOperation, s.bulkOperation)
	mux.HandleFunc("GET /client/v4/accounts/{account}/rules/lists/{list}/{sub}", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.PathValue("list") == "bulk_operations":
			r.SetPathValue("op", r.PathValue("sub"))
			bulk(w, r)
		case r.PathValue("sub") == "items":
			items(w, r)
		default:
			t.Errorf("fake Cloudflare: unexpected %s %s", r.Method, r.URL.Path)
			Reply(w, http.StatusBadRequest, nil, 7000, "No route for that URI")
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fake Cloudflare: unexpected %s %s", r.Method, r.URL.Path)
		Reply(w, http.StatusBadRequest, nil, 7000, "No route for that URI")
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the API's base URL, for RAYWATCH_CLOUDFLARE_API_URL.
func (s *Server) URL() string { return s.srv.URL + "/client/v4" }

// Fail answers the requests of pattern ("" for every request) with status
// and a Cloudflare error of code and msg: the next n of them, or all of
// them when n is negative. A non-empty retryAfter is sent as Retry-After.
func (s *Server) Fail(pattern string, n, status, code int, msg, retryAfter string) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	s.fails = append(s.fails, failure{pattern: pattern, n: n, status: status, code: code, msg: msg, retryAfter: retryAfter})
}

// takeFailure returns the failure that answers a request of pattern, if
// any, counting it.
func (s *Server) takeFailure(pattern string) (failure, bool) {
	for i := range s.fails {
		f := &s.fails[i]
		if (f.pattern == "" || f.pattern == pattern) && f.n != 0 {
			if f.n > 0 {
				f.n--
			}
			return *f, true
		}
	}
	return failure{}, false
}

func (s *Server) wrap(pattern string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body any
		if r.Body != nil && r.Method != http.MethodGet {
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				s.t.Errorf("fake Cloudflare: %s: body is not JSON: %v", pattern, err)
			}
		}
		s.Mu.Lock()
		defer s.Mu.Unlock()
		s.calls[pattern]++
		s.bodies[pattern] = append(s.bodies[pattern], body)
		auth := r.Header.Get("Authorization") == "Bearer "+Token ||
			(r.Header.Get("X-Auth-Email") == Email && r.Header.Get("X-Auth-Key") == APIKey)
		switch {
		case !auth:
			Reply(w, http.StatusBadRequest, nil, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
			return
		case r.PathValue("zone") != "" && r.PathValue("zone") != Zone:
			Reply(w, http.StatusBadRequest, nil, 7003, "Could not route to /zones/"+r.PathValue("zone")+"/logpush/jobs, perhaps your object identifier is invalid?")
			return
		case r.PathValue("account") != "" && r.PathValue("account") != Account:
			Reply(w, http.StatusForbidden, nil, 9109, "Unauthorized to access requested resource")
			return
		}
		if f, ok := s.takeFailure(pattern); ok {
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			Reply(w, f.status, nil, f.code, f.msg)
			return
		}
		ctx := context.WithValue(r.Context(), bodyKey{}, body)
		h(w, r.WithContext(ctx))
	}
}

type bodyKey struct{}

func bodyOf(r *http.Request) any { return r.Context().Value(bodyKey{}) }

func objectBody(r *http.Request) map[string]any {
	m, _ := bodyOf(r).(map[string]any)
	return m
}

// Reply writes Cloudflare's envelope. A code makes it an error answer.
func Reply(w http.ResponseWriter, status int, result any, code int, msg string) {
	env := map[string]any{"success": code == 0, "errors": []any{}, "messages": []any{}, "result": result}
	if code != 0 {
		env["errors"] = []any{map[string]any{"code": code, "message": msg}}
		env["result"] = nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(env)
}

// Count returns the requests made to pattern.
func (s *Server) Count(pattern string) int {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return s.calls[pattern]
}

// Bodies returns the JSON bodies of the requests made to pattern.
func (s *Server) Bodies(pattern string) []any {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return slices.Clone(s.bodies[pattern])
}

// LastBody returns the body of the last request to pattern as an object,
// failing the test when there was none.
func (s *Server) LastBody(pattern string) map[string]any {
	s.t.Helper()
	b := s.Bodies(pattern)
	if len(b) == 0 {
		s.t.Fatalf("no %s request", pattern)
	}
	m, _ := b[len(b)-1].(map[string]any)
	return m
}

func (s *Server) newID() string {
	s.nextID++
	return fmt.Sprintf("%032x", s.nextID)
}

// ---------------------------------------------------------------- zones

func (s *Server) listZones(w http.ResponseWriter, r *http.Request) {
	var result []map[string]any
	if p := r.URL.Query().Get("page"); p == "" || p == "1" {
		result = s.ZoneList
	}
	env := map[string]any{
		"success": true, "errors": []any{}, "messages": []any{}, "result": result,
		"result_info": map[string]any{"page": 1, "per_page": 50, "count": len(result), "total_count": len(s.ZoneList)},
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(env)
}

func (s *Server) getZone(w http.ResponseWriter, r *http.Request) {
	for _, z := range s.ZoneList {
		if z["id"] == r.PathValue("zone") {
			Reply(w, http.StatusOK, z, 0, "")
			return
		}
	}
	Reply(w, http.StatusNotFound, nil, 1001, "Invalid zone identifier")
}

// ---------------------------------------------------------------- Logpush

func (s *Server) datasetFields(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("dataset") != "http_requests" {
		Reply(w, http.StatusBadRequest, nil, 1000, "invalid dataset")
		return
	}
	Reply(w, http.StatusOK, s.Fields, 0, "")
}

func (s *Server) validateDestination(w http.ResponseWriter, r *http.Request) {
	if _, ok := objectBody(r)["destination_conf"].(string); !ok {
		Reply(w, http.StatusBadRequest, nil, 1001, "destination_conf is required")
		return
	}
	if s.Validate != nil {
		Reply(w, http.StatusOK, s.Validate, 0, "")
		return
	}
	Reply(w, http.StatusOK, map[string]any{"valid": true, "message": ""}, 0, "")
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	ids := slices.Sorted(maps.Keys(s.Jobs))
	list := make([]any, 0, len(ids))
	for _, id := range ids {
		list = append(list, s.Jobs[id])
	}
	Reply(w, http.StatusOK, list, 0, "")
}

// WithDefaults fills a job's output_options as Cloudflare's API returns
// them.
func WithDefaults(o map[string]any) map[string]any {
	out := map[string]any{
		"output_type": "ndjson", "record_prefix": "{", "record_suffix": "}\n", "field_delimiter": ",",
		"sample_rate": 1.0, "CVE-2021-44228": false, "timestamp_format": "unixnano",
	}
	maps.Copy(out, o)
	return out
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request) {
	body := objectBody(r)
	s.nextID++
	job := map[string]any{
		"id": s.nextID, "dataset": nil, "enabled": false, "name": nil, "kind": "", "frequency": "high",
		"error_message": nil, "last_complete": nil, "last_error": nil, "logpull_options": nil,
		"max_upload_bytes": 0, "max_upload_records": 0, "max_upload_interval_seconds": 0,
	}
	maps.Copy(job, body)
	if o, ok := body["output_options"].(map[string]any); ok {
		job["output_options"] = WithDefaults(o)
	}
	s.Jobs[s.nextID] = job
	Reply(w, http.StatusOK, job, 0, "")
}

func (s *Server) updateJob(w http.ResponseWriter, r *http.Request) {
	body := objectBody(r)
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	job, ok := s.Jobs[id]
	if !ok {
		Reply(w, http.StatusNotFound, nil, 1003, "job not found")
		return
	}
	maps.Copy(job, body)
	if o, ok := body["output_options"].(map[string]any); ok {
		job["output_options"] = WithDefaults(o)
	}
	Reply(w, http.StatusOK, job, 0, "")
}

// AddJob seeds a job as the API would list it and returns its id.
func (s *Server) AddJob(job map[string]any) int64 {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	s.nextID++
	job["id"] = s.nextID
	s.Jobs[s.nextID] = job
	return s.nextID
}
