// Package exception holds raywatch's alert exceptions: an analyst's
// statement that events matching some field values must not raise alerts
// of one rule (or of every rule). It defines their JSON form (the body of
// POST /api/v1/exceptions and what the store keeps), validates them,
// compiles them into an immutable [Set] that the engine consults at
// detection time, and exports them as Sigma filters ([ExportSigma]).
//
// It imports nothing of raywatch's, so that the store, the web server and
// the engine can share it.
//
// # Match keys
//
// Match maps an ECS field name of raywatch's events, optionally followed
// by a Sigma-style modifier, to a value or a list of values (any of them
// may match; every key must match):
//
//	{"source.ip": "198.51.100.7"}                   equals
//	{"source.ip": ["198.51.100.7", "10.0.0.0/8"]}   an IP field takes addresses and CIDRs
//	{"url.path|startswith": "/health"}              startswith
//	{"user_agent.original|contains": "Nessus"}      contains
//	{"url.domain|endswith": ".partner.example"}     endswith
//	{"cloudflare.OriginIP|cidr": "192.0.2.0/24"}    cidr
//
// Text comparisons ignore case, as Sigma's do. A field is an IP field when
// its last name is "ip" or ends in "IP" (source.ip, cloudflare.ClientIP).
package exception

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AnyRule is the [Exception.Rule] of an exception that applies to every
// rule.
const AnyRule = "*"

// Modifiers of a match key.
const (
	OpEquals     = ""
	OpContains   = "contains"
	OpStartsWith = "startswith"
	OpEndsWith   = "endswith"
	OpCIDR       = "cidr"
)

// Exception is one exception. Its JSON form is part of raywatch's API.
type Exception struct {
	// ID is given by the store when the exception is created.
	ID string `json:"id"`
	// Rule is the id of the rule the exception applies to, or AnyRule.
	Rule string `json:"rule"`
	// Match holds the conditions, all of which an event must meet.
	Match map[string]Values `json:"match"`
	// Comment says why (required).
	Comment   string    `json:"comment"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Expires is when the exception stops applying; zero for never.
	Expires time.Time `json:"expires,omitzero"`
	// Suppressed counts the events the exception kept from alerting, and
	// LastSuppressed is when it last did (as persisted by the store, plus
	// what the engine has counted since, when the caller adds it).
	Suppressed     int64     `json:"suppressed"`
	LastSuppressed time.Time `json:"last_suppressed,omitzero"`
}

// Values is the value, or list of values, of a match key. In JSON it is a
// string, number or boolean, or a list of them; one value is written as a
// scalar.
type Values []string

// UnmarshalJSON accepts a scalar or a list of scalars.
func (v *Values) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		out := make(Values, 0, len(raw))
		for _, r := range raw {
			s, err := scalar(r)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		*v = out
		return nil
	}
	s, err := scalar(b)
	if err != nil {
		return err
	}
	*v = Values{s}
	return nil
}

func scalar(b []byte) (string, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return "", err
	}
	switch y := x.(type) {
	case string:
		return y, nil
	case json.Number:
		return y.String(), nil
	case bool:
		return strconv.FormatBool(y), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, got %s", b)
}

// MarshalJSON writes one value as a scalar and several as a list.
func (v Values) MarshalJSON() ([]byte, error) {
	if len(v) == 1 {
		return json.Marshal(v[0])
	}
	return json.Marshal([]string(v))
}

// UnmarshalJSON reads an exception, accepting "" and null for expires (no
// expiry).
func (x *Exception) UnmarshalJSON(b []byte) error {
	type plain Exception
	var aux struct {
		plain
		Expires        json.RawMessage `json:"expires"`
		CreatedAt      json.RawMessage `json:"created_at"`
		LastSuppressed json.RawMessage `json:"last_suppressed"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*x = Exception(aux.plain)
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *time.Time
	}{{"expires", aux.Expires, &x.Expires}, {"created_at", aux.CreatedAt, &x.CreatedAt}, {"last_suppressed", aux.LastSuppressed, &x.LastSuppressed}} {
		t, err := parseTime(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = t
	}
	return nil
}

func parseTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `""` {
		return time.Time{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time: %w", err)
	}
	return t, nil
}

// ParseKey splits a match key into its field and modifier.
func ParseKey(key string) (field, op string, err error) {
	field, op, _ = strings.Cut(key, "|")
	field = strings.TrimSpace(field)
	switch {
	case field == "":
		return "", "", fmt.Errorf("match key %q names no field", key)
	case strings.ContainsAny(field, " \t*?|"):
		return "", "", fmt.Errorf("match key %q: a field name has no spaces or wildcards", key)
	}
	switch op {
	case OpEquals, OpContains, OpStartsWith, OpEndsWith, OpCIDR:
		return field, op, nil
	}
	return "", "", fmt.Errorf("match key %q: modifier %q is not one of contains, startswith, endswith, cidr", key, op)
}

// IPField reports whether field holds IP addresses: its last name is "ip"
// or ends in "IP".
func IPField(field string) bool {
	last := field[strings.LastIndexByte(field, '.')+1:]
	return last == "ip" || strings.HasSuffix(last, "IP")
}

// ParseNet parses an address or a CIDR range (an address is a range of
// one).
func ParseNet(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR range", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Validate checks an exception's form: a rule, at least one valid match
// key with values, and a comment. Errors name the key or value at fault.
func (x *Exception) Validate() error {
	if strings.TrimSpace(x.Rule) == "" {
		return errors.New(`rule: want a rule id or "*"`)
	}
	if strings.TrimSpace(x.Comment) == "" {
		return errors.New("comment: say why the exception is needed")
	}
	if len(x.Match) == 0 {
		return errors.New("match: want at least one field")
	}
	for _, key := range x.Keys() {
		field, op, err := ParseKey(key)
		if err != nil {
			return fmt.Errorf("match: %w", err)
		}
		vals := x.Match[key]
		if len(vals) == 0 {
			return fmt.Errorf("match %q: no value", key)
		}
		for _, v := range vals {
			switch {
			case op == OpCIDR || (op == OpEquals && IPField(field)):
				if _, err := ParseNet(v); err != nil {
					return fmt.Errorf("match %q: %w", key, err)
				}
			case op != OpEquals && v == "":
				return fmt.Errorf("match %q: an empty value would match every event", key)
			}
		}
	}
	return nil
}

// Keys returns the match keys, sorted.
func (x *Exception) Keys() []string {
	keys := make([]string, 0, len(x.Match))
	for k := range x.Match {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Fields returns the event fields the exception tests, sorted, without
// modifiers.
func (x *Exception) Fields() []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range x.Keys() {
		f, _, _ := strings.Cut(k, "|")
		f = strings.TrimSpace(f)
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// Active reports whether the exception applies at t (it has not expired).
func (x *Exception) Active(t time.Time) bool {
	return x.Expires.IsZero() || t.Before(x.Expires)
}
