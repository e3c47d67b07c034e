package cftest

import (
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"time"
)

var listName = regexp.MustCompile(`^[a-zA-Z0-9_]{1,50}$`)

func (l *List) json() map[string]any {
	return map[string]any{
		"id": l.ID, "name": l.Name, "description": l.Description, "kind": l.Kind,
		"num_items": len(l.Items), "num_referencing_filters": 0,
		"created_on": l.Created.Format(time.RFC3339), "modified_on": l.Created.Format(time.RFC3339),
	}
}

// ListByName returns the list named name, or nil.
func (s *Server) ListByName(name string) *List {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return s.listByName(name)
}

func (s *Server) listByName(name string) *List {
	for _, l := range s.Lists {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// ListIPs returns the addresses on the list named name, with their
// comments, as the list holds them now (nil when there is no such list).
func (s *Server) ListIPs(name string) map[string]string {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	l := s.listByName(name)
	if l == nil {
		return nil
	}
	out := map[string]string{}
	for _, it := range l.Items {
		out[it["ip"].(string)], _ = it["comment"].(string)
	}
	return out
}

// AddList seeds a list and returns its id.
func (s *Server) AddList(name, kind string, ips ...string) string {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	l := &List{ID: s.newID(), Name: name, Kind: kind, Created: time.Now().UTC()}
	for _, ip := range ips {
		l.Items = append(l.Items, s.item(ip, "seeded"))
	}
	s.Lists[l.ID] = l
	return l.ID
}

func (s *Server) item(ip, comment string) map[string]any {
	now := time.Now().UTC().Format(time.RFC3339)
	return map[string]any{"id": s.newID(), "ip": ip, "comment": comment, "created_on": now, "modified_on": now}
}

func (s *Server) listLists(w http.ResponseWriter, r *http.Request) {
	out := []any{}
	for _, id := range slices.Sorted(maps.Keys(s.Lists)) {
		out = append(out, s.Lists[id].json())
	}
	Reply(w, http.StatusOK, out, 0, "")
}

func (s *Server) createList(w http.ResponseWriter, r *http.Request) {
	body := objectBody(r)
	name, _ := body["name"].(string)
	kind, _ := body["kind"].(string)
	switch {
	case !listName.MatchString(name):
		Reply(w, http.StatusBadRequest, nil, 10013, "list name must be 1 to 50 characters: letters, digits and underscores")
		return
	case !slices.Contains([]string{"ip", "asn", "hostname", "redirect"}, kind):
		Reply(w, http.StatusBadRequest, nil, 10014, "invalid list kind")
		return
	case s.listByName(name) != nil:
		Reply(w, http.StatusBadRequest, nil, 10026, "a list with this name already exists")
		return
	}
	desc, _ := body["description"].(string)
	l := &List{ID: s.newID(), Name: name, Kind: kind, Description: desc, Created: time.Now().UTC()}
	s.Lists[l.ID] = l
	Reply(w, http.StatusOK, l.json(), 0, "")
}

func (s *Server) getList(w http.ResponseWriter, r *http.Request) {
	l, ok := s.Lists[r.PathValue("list")]
	if !ok {
		Reply(w, http.StatusNotFound, nil, 10006, "list not found")
		return
	}
	Reply(w, http.StatusOK, l.json(), 0, "")
}

func (s *Server) listItems(w http.ResponseWriter, r *http.Request) {
	l, ok := s.Lists[r.PathValue("list")]
	if !ok {
		Reply(w, http.StatusNotFound, nil, 10006, "list not found")
		return
	}
	perPage, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if perPage <= 0 {
		perPage = 25
	}
	perPage = min(perPage, 500)
	start := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		if _, err := fmt.Sscanf(c, "c%d", &start); err != nil || start < 0 || start > len(l.Items) {
			Reply(w, http.StatusBadRequest, nil, 10007, "invalid cursor")
			return
		}
	}
	end := min(start+perPage, len(l.Items))
	page := []any{}
	for _, it := range l.Items[start:end] {
		page = append(page, maps.Clone(it))
	}
	cursors := map[string]any{}
	if end < len(l.Items) {
		cursors["after"] = fmt.Sprintf("c%d", end)
	}
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, map[string]any{
		"success": true, "errors": []any{}, "messages": []any{}, "result": page,
		"result_info": map[string]any{"cursors": cursors},
	})
}

// pending reports whether a bulk operation is still running; Cloudflare
// runs one at a time per account and refuses another with 429.
func (s *Server) pending(w http.ResponseWriter) bool {
	for _, op := range s.ops {
		if op.status == "pending" || op.status == "running" {
			Reply(w, http.StatusTooManyRequests, nil, 10046, "Too many bulk operations already in progress. Please wait until one completes before retrying.")
			return true
		}
	}
	return false
}

// validIP checks a list item's ip as Cloudflare does: an address, or a
// range of /8 to /32 (IPv4) or /4 to /64 (IPv6).
func validIP(v string) bool {
	if _, err := netip.ParseAddr(v); err == nil {
		return true
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return false
	}
	if p.Addr().Is4() {
		return p.Bits() >= 8
	}
	return p.Bits() >= 4 && p.Bits() <= 64
}

func (s *Server) addItems(w http.ResponseWriter, r *http.Request) {
	l, ok := s.Lists[r.PathValue("list")]
	if !ok {
		Reply(w, http.StatusNotFound, nil, 10006, "list not found")
		return
	}
	arr, ok := bodyOf(r).([]any)
	if !ok {
		Reply(w, http.StatusBadRequest, nil, 10021, "the body must be an array of list items")
		return
	}
	type add struct{ ip, comment string }
	var adds []add
	for i, x := range arr {
		m, _ := x.(map[string]any)
		ip, _ := m["ip"].(string)
		comment, _ := m["comment"].(string)
		if !validIP(ip) {
			Reply(w, http.StatusBadRequest, nil, 10021, fmt.Sprintf("item %d: ip %q is not a valid IP address or range", i, ip))
			return
		}
		if len(comment) > 500 {
			Reply(w, http.StatusBadRequest, nil, 10021, fmt.Sprintf("item %d: comment longer than 500 characters", i))
			return
		}
		adds = append(adds, add{ip, comment})
	}
	if s.pending(w) {
		return
	}
	op := s.newOp(func() {
		for _, a := range adds {
			i := slices.IndexFunc(l.Items, func(it map[string]any) bool { return it["ip"] == a.ip })
			if i >= 0 { // an address already listed is updated
				l.Items[i]["comment"] = a.comment
				l.Items[i]["modified_on"] = time.Now().UTC().Format(time.RFC3339)
				continue
			}
			l.Items = append(l.Items, s.item(a.ip, a.comment))
		}
	})
	Reply(w, http.StatusOK, map[string]any{"operation_id": op.id}, 0, "")
}

func (s *Server) deleteItems(w http.ResponseWriter, r *http.Request) {
	l, ok := s.Lists[r.PathValue("list")]
	if !ok {
		Reply(w, http.StatusNotFound, nil, 10006, "list not found")
		return
	}
	items, _ := objectBody(r)["items"].([]any)
	ids := map[string]bool{}
	for _, x := range items {
		m, _ := x.(map[string]any)
		id, _ := m["id"].(string)
		if id == "" {
			Reply(w, http.StatusBadRequest, nil, 10021, "each item to delete needs an id")
			return
		}
		ids[id] = true
	}
	if s.pending(w) {
		return
	}
	op := s.newOp(func() {
		l.Items = slices.DeleteFunc(l.Items, func(it map[string]any) bool { return ids[it["id"].(string)] })
	})
	Reply(w, http.StatusOK, map[string]any{"operation_id": op.id}, 0, "")
}

func (s *Server) newOp(apply func()) *operation {
	op := &operation{id: s.newID(), left: s.OpPolls, apply: apply, status: "pending"}
	if s.FailOps > 0 {
		s.FailOps--
		op.fail = true
	}
	s.ops[op.id] = op
	return op
}

func (s *Server) bulkOperation(w http.ResponseWriter, r *http.Request) {
	op, ok := s.ops[r.PathValue("op")]
	if !ok {
		Reply(w, http.StatusNotFound, nil, 10006, "operation not found")
		return
	}
	switch {
	case op.status != "pending" && op.status != "running":
	case op.left > 0:
		op.left--
		op.status = "running"
	case op.fail:
		op.status, op.err = "failed", "the operation could not be applied: internal error"
	default:
		op.apply()
		op.status = "completed"
	}
	res := map[string]any{"id": op.id, "status": op.status}
	if op.status == "completed" || op.status == "failed" {
		res["completed"] = time.Now().UTC().Format(time.RFC3339)
	}
	if op.err != "" {
		res["error"] = op.err
	}
	Reply(w, http.StatusOK, res, 0, "")
}
