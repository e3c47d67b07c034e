package exception

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// event is a flat event for tests: field -> values.
type event map[string][]string

func (e event) Each(field string, fn func(string) bool) bool {
	vs, ok := e[field]
	for _, v := range vs {
		if !fn(v) {
			break
		}
	}
	return ok
}

func TestUnmarshalPOSTBody(t *testing.T) {
	body := `{"rule":"*","match":{"source.ip":"198.51.100.7","http.response.status_code":404,"url.path|startswith":["/health","/status"]},"comment":"scanner","expires":"2030-01-02T03:04:05Z"}`
	var x Exception
	if err := json.Unmarshal([]byte(body), &x); err != nil {
		t.Fatal(err)
	}
	want := Exception{
		Rule:    "*",
		Match:   map[string]Values{"source.ip": {"198.51.100.7"}, "http.response.status_code": {"404"}, "url.path|startswith": {"/health", "/status"}},
		Comment: "scanner",
		Expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if diff := cmp.Diff(want, x); diff != "" {
		t.Errorf("Unmarshal (-want +got):\n%s", diff)
	}
	for _, empty := range []string{`""`, `null`} {
		var y Exception
		if err := json.Unmarshal([]byte(`{"rule":"r","match":{"a":"b"},"comment":"c","expires":`+empty+`}`), &y); err != nil || !y.Expires.IsZero() {
			t.Errorf("expires %s: %v, %v; want no expiry", empty, y.Expires, err)
		}
	}
	out, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	var back Exception
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(out), `"source.ip":"198.51.100.7"`) || !strings.Contains(string(out), `"suppressed":0`) {
		t.Errorf("Marshal = %s; want one value as a scalar and a suppressed count", out)
	}
	for _, bad := range []string{`{"match":{"a":{"x":1}}}`, `{"match":{"a":[[1]]}}`, `{"expires":"tomorrow"}`} {
		var z Exception
		if err := json.Unmarshal([]byte(bad), &z); err == nil {
			t.Errorf("Unmarshal(%s) = nil error; want one", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := func(x Exception) Exception {
		if x.Rule == "" {
			x.Rule = "r1"
		}
		if x.Comment == "" {
			x.Comment = "why"
		}
		return x
	}
	tests := []struct {
		name    string
		x       Exception
		wantErr string
	}{
		{"plain ip", ok(Exception{Match: map[string]Values{"source.ip": {"198.51.100.7"}}}), ""},
		{"cidr on an ip field", ok(Exception{Match: map[string]Values{"source.ip": {"10.0.0.0/8", "2001:db8::/32"}}}), ""},
		{"cloudflare ip field", ok(Exception{Match: map[string]Values{"cloudflare.OriginIP": {"192.0.2.1"}}}), ""},
		{"operators", ok(Exception{Match: map[string]Values{"url.path|startswith": {"/h"}, "user_agent.original|contains": {"Nessus"}, "url.domain|endswith": {".example"}, "cloudflare.ClientIP|cidr": {"192.0.2.0/24"}}}), ""},
		{"empty equals is allowed", ok(Exception{Match: map[string]Values{"user_agent.original": {""}}}), ""},
		{"no rule", Exception{Comment: "c", Match: map[string]Values{"a": {"b"}}}, "rule"},
		{"no comment", Exception{Rule: "r", Comment: "  ", Match: map[string]Values{"a": {"b"}}}, "comment"},
		{"no match", ok(Exception{}), "match: want at least one field"},
		{"no value", ok(Exception{Match: map[string]Values{"url.path": {}}}), `match "url.path": no value`},
		{"bad ip", ok(Exception{Match: map[string]Values{"source.ip": {"example.com"}}}), `"example.com" is not an IP address`},
		{"bad cidr", ok(Exception{Match: map[string]Values{"url.path|cidr": {"10.0.0.0/33"}}}), "is not an IP address or CIDR"},
		{"unknown modifier", ok(Exception{Match: map[string]Values{"url.path|re": {"x"}}}), `modifier "re"`},
		{"wildcard field", ok(Exception{Match: map[string]Values{"url.*": {"x"}}}), "no spaces or wildcards"},
		{"empty contains", ok(Exception{Match: map[string]Values{"url.path|contains": {""}}}), "would match every event"},
	}
	for _, tc := range tests {
		err := tc.x.Validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: Validate() = %v; want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestSetMatch(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	xs := []Exception{
		{ID: "scanner", Rule: "*", Comment: "our scanner", Match: map[string]Values{"source.ip": {"198.51.100.7", "203.0.113.0/24"}}},
		{ID: "health", Rule: "r1", Comment: "health check", Match: map[string]Values{"url.path|startswith": {"/health"}, "user_agent.original|contains": {"kube-probe"}}},
		{ID: "expired", Rule: "r2", Comment: "old", Match: map[string]Values{"url.path": {"/old"}}, Expires: now.Add(-time.Second)},
		{ID: "later", Rule: "r2", Comment: "until tomorrow", Match: map[string]Values{"url.path": {"/NEW"}}, Expires: now.Add(24 * time.Hour)},
		{ID: "v6", Rule: "r3", Comment: "v6 partner", Match: map[string]Values{"source.ip": {"2001:db8::/32"}, "http.response.status_code": {"404"}}},
	}
	s, err := Compile(xs)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rule string
		ev   event
		want string // exception id, "" for none
	}{
		{"ip for any rule", "r9", event{"source.ip": {"198.51.100.7"}}, "scanner"},
		{"ip in a cidr", "r1", event{"source.ip": {"203.0.113.200"}}, "scanner"},
		{"ipv4-mapped ipv6", "r1", event{"source.ip": {"::ffff:198.51.100.7"}}, "scanner"},
		{"other ip", "r1", event{"source.ip": {"198.51.100.8"}}, ""},
		{"not an ip", "r1", event{"source.ip": {"nope"}}, ""},
		{"both conditions", "r1", event{"url.path": {"/healthz"}, "user_agent.original": {"Kube-Probe/1.29"}}, "health"},
		{"one condition only", "r1", event{"url.path": {"/healthz"}, "user_agent.original": {"curl"}}, ""},
		{"field absent", "r1", event{"url.path": {"/healthz"}}, ""},
		{"other rule", "r2", event{"url.path": {"/healthz"}, "user_agent.original": {"kube-probe"}}, ""},
		{"expired", "r2", event{"url.path": {"/old"}}, ""},
		{"not yet expired, case ignored", "r2", event{"url.path": {"/new"}}, "later"},
		{"equals is whole value", "r2", event{"url.path": {"/new/x"}}, ""},
		{"ipv6 and status", "r3", event{"source.ip": {"2001:db8::1"}, "http.response.status_code": {"404"}}, "v6"},
		{"any of the event's values", "r3", event{"source.ip": {"192.0.2.1", "2001:db8::1"}, "http.response.status_code": {"404"}}, "v6"},
	}
	for _, tc := range tests {
		i := s.Match(tc.rule, tc.ev, now)
		got := ""
		if i >= 0 {
			got = s.At(i).ID
		}
		if got != tc.want {
			t.Errorf("%s: Match(%q, %v) = %q; want %q", tc.name, tc.rule, tc.ev, got, tc.want)
		}
	}
	var none *Set
	if none.Match("r1", event{}, now) != -1 || none.Len() != 0 {
		t.Error("a nil Set matches")
	}
	if _, err := Compile([]Exception{{ID: "bad", Rule: "r"}}); err == nil || !strings.Contains(err.Error(), "exception bad") {
		t.Errorf("Compile(invalid) = %v; want an error naming it", err)
	}
}

func TestDoc(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(`{"source":{"ip":"198.51.100.7"},"http":{"response":{"status_code":404}},"related":{"ip":["192.0.2.1","198.51.100.7"]},"cloudflare":{"RequestHeaders":{"x-a.b":"v"}}}`), &doc); err != nil {
		t.Fatal(err)
	}
	s, err := Compile([]Exception{
		{ID: "a", Rule: "*", Comment: "c", Match: map[string]Values{"source.ip": {"198.51.100.0/24"}, "http.response.status_code": {"404"}}},
		{ID: "b", Rule: "*", Comment: "c", Match: map[string]Values{"related.ip": {"192.0.2.1"}}},
		{ID: "c", Rule: "*", Comment: "c", Match: map[string]Values{"cloudflare.RequestHeaders.x-a.b": {"V"}}},
		{ID: "d", Rule: "*", Comment: "c", Match: map[string]Values{"url.path": {"/"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, true, false} {
		if got := s.Matches(i, Doc(doc)); got != want {
			t.Errorf("Matches(%s, doc) = %v; want %v", s.At(i).ID, got, want)
		}
	}
}

func TestExportSigma(t *testing.T) {
	xs := []Exception{
		{ID: "0190a", Rule: "*", Comment: "Our scanner\nsecond line", CreatedBy: "ana", CreatedAt: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
			Match: map[string]Values{"source.ip": {"198.51.100.7", "203.0.113.0/24"}, "user_agent.original|contains": {"Nessus*"}}},
		{ID: "0190b", Rule: "r1", Comment: "health", Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
			Match: map[string]Values{"url.path": {`/a\b?`}}},
	}
	want := `title: 'raywatch exception 0190a: Our scanner'
id: raywatch-exception-0190a
description: |-
    Our scanner
    second line
author: ana
date: "2026-03-04"
logsource:
    product: cloudflare
filter:
    rules:
        - '*' # every rule (raywatch)
    selection:
        source.ip|cidr:
            - 198.51.100.7/32
            - 203.0.113.0/24
        user_agent.original|contains: Nessus\*
    condition: selection
---
# expires 2027-01-01T00:00:00Z: a Sigma filter does not expire; remove it by then
title: 'raywatch exception 0190b: health'
id: raywatch-exception-0190b
description: health
logsource:
    product: cloudflare
filter:
    rules:
        - r1
    selection:
        url.path: /a\\b\?
    condition: selection
`
	if diff := cmp.Diff(want, string(ExportSigma(xs))); diff != "" {
		t.Errorf("ExportSigma (-want +got):\n%s", diff)
	}
}
