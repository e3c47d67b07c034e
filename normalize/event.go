// Package normalize turns Cloudflare Logpush records into ECS events the way
// SEKOIA.IO's Cloudflare intake formats do, plus a flat dotted-name view used
// for rule matching.
package normalize

import "time"

// Event is one normalized Cloudflare record.
//
// An Event is immutable once returned by [Normalizer.Normalize] and may be read
// from any number of goroutines.
type Event struct {
	// Dataset is the Logpush dataset id the record was decoded as, for
	// example "http_requests".
	Dataset string
	// Doc is the nested ECS document. Objects are map[string]any, lists are
	// []any, numbers are json.Number (never float64, so 19-digit nanosecond
	// timestamps keep every digit), strings are string and booleans bool.
	// Empty strings and nulls are not present (as SEKOIA drops them).
	Doc map[string]any
	// Flat holds every leaf of Doc by its dotted ECS name ("url.path",
	// "cloudflare.RayID"), plus the fields whose value is the empty string
	// (which Doc drops), so that a rule can test for an empty user-agent.
	// Values are string, json.Number, bool, or []any for lists.
	Flat map[string]any
	// Time is the event's own time in UTC (EdgeStartTimestamp for
	// http_requests, else its GraphQL-style datetime), or the zero Time when
	// the record carries none.
	Time time.Time
	// Key identifies the record for de-duplication: the RayID for
	// http_requests, else a hash of the raw record.
	Key string
}

// String returns the flat field's value as text and whether it is present.
func (e *Event) String(field string) (string, bool) {
	v, ok := e.Flat[field]
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case interface{ String() string }:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}
