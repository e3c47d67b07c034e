package engine_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// Two rules as the Sigma filters specification's example names them (by
// id), on web traffic.
const (
	ruleRar = `title: Data Compressed - rar.exe
id: 6f3e2987-db24-4c78-a860-b4f4095a7095
name: rar_download
level: high
logsource: {category: proxy}
detection:
  sel:
    c-uri|endswith: '.rar'
  condition: sel
`
	ruleJump = `title: Login on jump host
id: df0841c0-9846-4e9f-ad8a-7df91571771b
level: medium
logsource: {category: webserver}
detection:
  sel:
    cs-uri-stem: /login
  condition: sel
`
	ruleOther = `title: Other rule
id: other
level: low
logsource: {category: proxy}
detection:
  sel:
    c-uri|endswith: '.rar'
  condition: sel
`
	// The specification's example filter, its selection on a field of web
	// traffic: administrators' accounts start with adm_ (here, a header
	// that carries the account).
	specFilterWeb = `title: Filter Administrator account
description: The valid administrator account start with adm_
logsource:
    category: proxy
filter:
    rules:
        - 6f3e2987-db24-4c78-a860-b4f4095a7095 # Data Compressed - rar.exe
        - df0841c0-9846-4e9f-ad8a-7df91571771b # Login on jump host
    selection:
        cloudflare.RequestHeaders.x-user|startswith: 'adm_'
    condition: selection
`
)

func userEvent(t testing.TB, uri, user, ip string) *normalize.Event {
	t.Helper()
	over := map[string]any{"ClientRequestURI": uri, "ClientRequestPath": uri, "ClientIP": ip, "RayID": "ray" + uri + user + ip}
	if user != "" {
		over["RequestHeaders"] = map[string]any{"x-user": user}
	}
	return httpEvent(t, over)
}

func alertIDs(e *engine.Engine, ev *normalize.Event) []string {
	var out []string
	for _, a := range e.Match(ev, "t", time.Now()) {
		out = append(out, a.Rule.ID)
	}
	slices.Sort(out)
	return out
}

func statusOf(t testing.TB, e *engine.Engine, id string) engine.RuleStatus {
	t.Helper()
	for _, st := range e.Rules() {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("rule %s not listed", id)
	return engine.RuleStatus{}
}

func TestSigmaFilters(t *testing.T) {
	const (
		rar  = "6f3e2987-db24-4c78-a860-b4f4095a7095"
		jump = "df0841c0-9846-4e9f-ad8a-7df91571771b"
	)
	byTitle := strings.Replace(specFilterWeb, "        - 6f3e2987-db24-4c78-a860-b4f4095a7095 # Data Compressed - rar.exe\n        - df0841c0-9846-4e9f-ad8a-7df91571771b # Login on jump host\n",
		"        - Data Compressed - rar.exe\n        - Login on jump host\n", 1)
	byName := strings.Replace(specFilterWeb, "        - 6f3e2987-db24-4c78-a860-b4f4095a7095 # Data Compressed - rar.exe\n        - df0841c0-9846-4e9f-ad8a-7df91571771b # Login on jump host\n",
		"        - rar_download\n", 1)
	everyRule := strings.Replace(specFilterWeb, "        - 6f3e2987-db24-4c78-a860-b4f4095a7095 # Data Compressed - rar.exe\n        - df0841c0-9846-4e9f-ad8a-7df91571771b # Login on jump host\n",
		"        - '*'\n", 1)
	tests := []struct {
		name    string
		filter  string
		applies []string
		want    map[string][]string // event -> alerting rules
	}{
		{"by id (spec example)", specFilterWeb, []string{rar, jump}, map[string][]string{
			"admin rar":   {"other"},
			"user rar":    {rar, "other"},
			"admin login": nil,
			"user login":  {jump},
			"anon rar":    {rar, "other"},
		}},
		{"by title", byTitle, []string{rar, jump}, map[string][]string{
			"admin rar":   {"other"},
			"admin login": nil,
			"user login":  {jump},
		}},
		{"by name", byName, []string{rar}, map[string][]string{
			"admin rar":   {"other"},
			"admin login": {jump},
		}},
		{"every rule", everyRule, []string{"*"}, map[string][]string{
			"admin rar":   nil,
			"admin login": nil,
			"user rar":    {rar, "other"},
		}},
	}
	events := map[string]*normalize.Event{
		"admin rar":   userEvent(t, "/files/a.rar", "adm_jane", "198.51.100.1"),
		"user rar":    userEvent(t, "/files/a.rar", "jane", "198.51.100.1"),
		"admin login": userEvent(t, "/login", "ADM_bob", "198.51.100.2"),
		"user login":  userEvent(t, "/login", "bob", "198.51.100.2"),
		"anon rar":    userEvent(t, "/files/b.rar", "", "198.51.100.3"),
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := parseRules(t, ruleRar+"---\n"+ruleJump+"---\n"+ruleOther+"---\n"+tc.filter)
			e, err := engine.New(rs)
			if err != nil {
				t.Fatal(err)
			}
			suppressed := 0
			for name, wantIDs := range tc.want {
				got := alertIDs(e, events[name])
				if strings.Join(got, ",") != strings.Join(wantIDs, ",") {
					t.Errorf("%s: alerts of %v; want %v", name, got, wantIDs)
				}
				suppressed += len(ruleHits(name)) - len(wantIDs)
			}
			f := statusOf(t, e, rs[3].ID)
			if f.Kind() != rules.KindFilter || f.Health.State != engine.HealthOK || !slices.Equal(f.AppliesTo, tc.applies) {
				t.Errorf("filter status: kind %s, health %v, applies to %v; want filter, ok, %v", f.Kind(), f.Health, f.AppliesTo, tc.applies)
			}
			if f.Suppressed != int64(suppressed) || f.LastSuppressed.IsZero() {
				t.Errorf("filter suppressed %d (last %v); want %d", f.Suppressed, f.LastSuppressed, suppressed)
			}
			if r := statusOf(t, e, rar); r.SuppressedByFilters == 0 || r.Suppressed != r.SuppressedByFilters {
				t.Errorf("rule rar suppressed by filters %d, total %d; want them equal and > 0", r.SuppressedByFilters, r.Suppressed)
			}
		})
	}
}

// ruleHits are the rules that match each test event without filters.
func ruleHits(event string) []string {
	if strings.HasSuffix(event, "rar") {
		return []string{"rar", "other"}
	}
	return []string{"jump"}
}

func TestSigmaFilterReloadAndProblems(t *testing.T) {
	base := parseRules(t, ruleRar+"---\n"+ruleJump)
	filter := parseRules(t, specFilterWeb)
	e, err := engine.New(append(slices.Clone(base), filter...))
	if err != nil {
		t.Fatal(err)
	}
	ev := userEvent(t, "/x.rar", "adm_x", "198.51.100.1")
	if got := alertIDs(e, ev); len(got) != 0 {
		t.Fatalf("with the filter: alerts of %v; want none", got)
	}
	// Hot reload without the filter: the rule alerts again.
	if problems := e.Reload(base); len(problems) > 0 {
		t.Fatal(problems)
	}
	if got := alertIDs(e, ev); len(got) != 1 {
		t.Errorf("after removing the filter: alerts of %v; want the rar rule", got)
	}

	// A filter naming no loaded rule, or on another logsource, cannot
	// fire, and says why.
	nowhere := parseRules(t, strings.Replace(specFilterWeb, "category: proxy", "category: process_creation\n    product: windows", 1))
	unknown := parseRules(t, "title: f\nid: fu\nlogsource: {category: proxy}\nfilter:\n  rules: [no-such-rule]\n  sel:\n    c-uri: /x\n  condition: sel\n")
	unmapped := parseRules(t, "title: f\nid: fm\nlogsource: {category: proxy}\nfilter:\n  rules: [6f3e2987-db24-4c78-a860-b4f4095a7095]\n  sel:\n    User|startswith: adm_\n  condition: sel\n")
	statuses, problems := engine.Diagnose(append(append(append(slices.Clone(base), nowhere...), unknown...), unmapped...), engine.Options{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	want := map[string]string{
		nowhere[0].ID: "logsource category process_creation, product windows is not web traffic",
		"fu":          `names no loaded rule (["no-such-rule"])`,
		"fm":          `field "User" has no mapping`,
	}
	for _, st := range statuses {
		w, ok := want[st.ID]
		if !ok {
			continue
		}
		if st.Health.State != engine.HealthUnable || !strings.HasPrefix(st.Health.Reason, w) {
			t.Errorf("filter %s: health %v; want unable_to_fire: %s", st.ID, st.Health, w)
		}
	}
	// A filter that cannot fire suppresses nothing.
	e2, err := engine.New(append(slices.Clone(base), unmapped...))
	if err != nil {
		t.Fatal(err)
	}
	if got := alertIDs(e2, ev); len(got) != 1 {
		t.Errorf("with a filter unable to fire: alerts of %v; want the rar rule", got)
	}
}

// TestSigmaFilterOnAggregation checks that a filtered event does not count
// towards the rule's aggregation, as the specification's "condition and
// not filter" reading implies.
func TestSigmaFilterOnAggregation(t *testing.T) {
	rs := parseRules(t, `title: many 404
id: agg
level: high
logsource: {category: proxy}
detection:
  sel:
    sc-status: 404
  timeframe: 1m
  condition: sel | count() by c-ip >= 3
---
title: not the health checker
logsource: {category: proxy}
filter:
  rules: [agg]
  sel:
    c-uri|startswith: /health
  condition: sel
`)
	e, err := engine.New(rs)
	if err != nil {
		t.Fatal(err)
	}
	ip := "198.51.100.9"
	var fired int
	for i, uri := range []string{"/a", "/health/1", "/health/2", "/b", "/health/3"} {
		fired += len(e.Match(at(t, i, ip, "404", uri), "t", time.Now()))
	}
	if fired != 0 {
		t.Errorf("aggregation fired %d times on 2 unfiltered events; want 0", fired)
	}
	if n := len(e.Match(at(t, 9, ip, "404", "/c"), "t", time.Now())); n != 1 {
		t.Errorf("third unfiltered event: %d alerts; want 1", n)
	}
}
