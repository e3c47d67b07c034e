// Package normalize turns Cloudflare Logpush records into ECS events the way
// SEKOIA.IO's Cloudflare intake formats do, plus a flat dotted-name view used
// for rule matching.
package normalize

import (
	"encoding/json"
	"maps"
	"sort"
	"time"
)

// Event is one normalized Cloudflare record.
//
// An Event is immutable once returned by [Normalizer.Normalize] and may be read
// from any number of goroutines. Rule matching reads it through [Event.String],
// [Event.Each] and [Event.Range], which do not allocate; [Event.Doc] gives the
// nested ECS document.
type Event struct {
	// Dataset is the Logpush dataset id the record was decoded as, for
	// example "http_requests".
	Dataset string
	// Time is the event's own time in UTC (EdgeStartTimestamp for
	// http_requests, else its GraphQL-style datetime), or the zero Time when
	// the record carries none.
	Time time.Time
	// Key identifies the record for de-duplication: the RayID for
	// http_requests, else a hash of the raw record.
	Key string

	// doc is the nested ECS document. Objects are map[string]any, lists are
	// []any, numbers are json.Number (never float64, so 19-digit nanosecond
	// timestamps keep every digit), strings are string and booleans bool.
	// Empty strings and nulls are not present (as SEKOIA drops them).
	doc map[string]any
	// flat holds every leaf of doc by its dotted ECS name ("url.path",
	// "cloudflare.RayID"), plus the fields whose value is the empty string
	// (which doc drops), so that a rule can test for an empty user-agent.
	// Values are string, json.Number, bool, or []any for lists.
	flat map[string]any
}

// Doc returns the nested ECS document: objects are map[string]any, lists
// []any, numbers json.Number (exact), strings string and booleans bool;
// empty strings and nulls are absent. The caller must not modify it; it may
// keep it after the Event is gone.
func (e *Event) Doc() map[string]any { return e.doc }

// String returns the text of the scalar field at the dotted ECS name field
// ("url.path", "cloudflare.RayID") and whether it is present. Numbers are
// their JSON text, booleans "true"/"false". A field whose record value was
// the empty string is present with "". A list is not a scalar: use Each.
func (e *Event) String(field string) (string, bool) {
	v, ok := e.flat[field]
	if !ok {
		return "", false
	}
	return scalarText(v)
}

// Each calls fn with the text of each value of field: once for a scalar,
// once per scalar element for a list. It stops early when fn returns false,
// and reports whether the field is present.
func (e *Event) Each(field string, fn func(value string) bool) bool {
	v, ok := e.flat[field]
	if !ok {
		return false
	}
	if list, ok := v.([]any); ok {
		for _, x := range list {
			if s, ok := scalarText(x); ok && !fn(s) {
				break
			}
		}
		return true
	}
	if s, ok := scalarText(v); ok {
		fn(s)
	}
	return true
}

// Range calls fn for every scalar value of the event (list elements
// included) with its dotted field name, until fn returns false. The order is
// unspecified. Keyword searches use it.
func (e *Event) Range(fn func(field, value string) bool) {
	for name, v := range e.flat {
		if list, ok := v.([]any); ok {
			for _, x := range list {
				if s, ok := scalarText(x); ok && !fn(name, s) {
					return
				}
			}
			continue
		}
		if s, ok := scalarText(v); ok && !fn(name, s) {
			return
		}
	}
}

// Fields returns the dotted names of the event's fields, sorted.
func (e *Event) Fields() []string {
	names := make([]string, 0, len(e.flat))
	for name := range e.flat {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// FlatMap returns a copy of the flat view as a map from dotted names to
// values (string, json.Number, bool or []any). It allocates; it exists for
// tools and for evaluators that need a map, not for the hot path.
func (e *Event) FlatMap() map[string]any { return maps.Clone(e.flat) }

// scalarText returns the text of a scalar flat value.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}
