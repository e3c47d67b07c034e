// Package alert holds the types of raywatch's alerts: what the engine
// produces, the store keeps and the API, the websocket and `raywatch scan`
// print. It imports nothing of raywatch's, so that the store and the web
// server can use alerts without the detection engine.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Alert statuses.
const (
	StatusNew          = "new"
	StatusAcknowledged = "acknowledged"
	StatusClosed       = "closed"
)

// Alert is one detection: a rule that matched an event.
//
// Its JSON form is part of raywatch's interface (REST API, websocket,
// `raywatch scan` output).
type Alert struct {
	// ID is stable for a rule and a record: the event time in milliseconds
	// (12 hex digits, so IDs sort by time) then a hash of the rule id and
	// the record key. A retried batch therefore yields the same IDs.
	ID        string    `json:"id"`
	Rule      RuleRef   `json:"rule"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Status    string    `json:"status"`
	Intake    string    `json:"intake"`
	Dataset   string    `json:"dataset"`
	RecordKey string    `json:"record_key"`
	// Group holds, for an aggregation or correlation alert, the values of
	// the fields the events were grouped by; Count is then the number of
	// events that contributed.
	Group map[string]string `json:"group,omitempty"`
	// Retro is set on an alert that a retro-hunt raised: an indicator (or
	// rule) added later matched an archived event. FirstSeen and LastSeen
	// are still the event's own time.
	Retro bool `json:"retro,omitempty"`
	// Replayed is set on an alert that `raywatch replay --data-dir` added
	// to a store from archived Logpush objects.
	Replayed bool           `json:"replayed,omitempty"`
	Matches  []Match        `json:"matches"`
	Event    map[string]any `json:"event"`
	// Samples are some of the events grouped into this alert (the earliest
	// ones, bounded), filled in by the alert store.
	Samples []Sample `json:"samples,omitempty"`
	// StatusHistory lists the status changes, oldest first. The store keeps
	// it bounded: the first change and the latest ones, with the number of
	// changes left out between them in StatusHistoryDropped.
	StatusHistory        []StatusChange `json:"status_history,omitempty"`
	StatusHistoryDropped int            `json:"status_history_dropped,omitempty"`
}

// Sample is one event that contributed to a grouped alert.
type Sample struct {
	RecordKey string         `json:"record_key"`
	Time      time.Time      `json:"time"`
	Event     map[string]any `json:"event"`
}

// StatusChange records who set an alert's status, and when.
type StatusChange struct {
	Status string    `json:"status"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	// Comment is the analyst's note on the change, if any.
	Comment string `json:"comment,omitempty"`
	// Reason is, for a change to closed, the analyst's verdict: one of
	// ReasonFalsePositive, ReasonTruePositive, ReasonBenign, or "".
	Reason string `json:"reason,omitempty"`
}

// Reasons for closing an alert ([StatusChange.Reason]).
const (
	ReasonFalsePositive = "false_positive"
	ReasonTruePositive  = "true_positive"
	ReasonBenign        = "benign"
)

// Reasons lists the valid close reasons.
var Reasons = []string{ReasonFalsePositive, ReasonTruePositive, ReasonBenign}

// RuleRef describes the rule of an alert.
type RuleRef struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Level       string   `json:"level"`
	Tags        []string `json:"tags"`
	Description string   `json:"description,omitempty"`
	References  []string `json:"references,omitempty"`
}

// Match is one field of the event that a rule tested and found matching.
type Match struct {
	Field string `json:"field"`
	Value any    `json:"value"`
	// Indicator is, for an intelligence-feed alert, the indicator of
	// compromise that matched: its type, value, file, line and metadata.
	Indicator *Indicator `json:"indicator,omitempty"`
}

// AlertID returns the ID of the alert of rule ruleID on the record with key
// recordKey that happened at t.
func AlertID(t time.Time, ruleID, recordKey string) string {
	var ms int64
	if !t.IsZero() && t.UnixMilli() > 0 {
		ms = t.UnixMilli()
	}
	h := sha256.Sum256([]byte(ruleID + "\x00" + recordKey))
	return fmt.Sprintf("%012x", ms) + hex.EncodeToString(h[:10])
}

// IndicatorType is the kind of an indicator, which decides the event fields it is
// matched against.
type IndicatorType string

// The indicator types. An address or range of either family has type
// TypeIPv4, TypeIPv6 or TypeCIDR; the others are compared as normalised
// strings.
const (
	TypeIPv4   IndicatorType = "ipv4"
	TypeIPv6   IndicatorType = "ipv6"
	TypeCIDR   IndicatorType = "cidr"
	TypeDomain IndicatorType = "domain"
	TypeURL    IndicatorType = "url"
	TypeUA     IndicatorType = "ua"
	TypeJA3    IndicatorType = "ja3"
)

// IndicatorTypes lists every indicator type in a stable order.
var IndicatorTypes = []IndicatorType{TypeIPv4, TypeIPv6, TypeCIDR, TypeDomain, TypeURL, TypeUA, TypeJA3}

// Indicator is one indicator of compromise read from a file in the IOC
// folder. Indicators are immutable once loaded: the IOC set and every
// match share them, and callers must not modify them.
type Indicator struct {
	// Type is the indicator's type.
	Type IndicatorType `json:"type"`
	// Value is the indicator as the file gives it, trimmed and without a
	// type prefix ("ua:"); matching uses its normalised form.
	Value string `json:"value"`
	// File is the name of the file it came from, relative to the IOC folder.
	File string `json:"file"`
	// Line is the 1-based line of the file where the indicator (or, for
	// STIX, its indicator object) starts.
	Line int `json:"line"`
	// Meta is the metadata the source gives, or nil when it gives none (a
	// plain-text line without a comment). Several indicators may share one
	// Meta, for example the comparisons of one STIX pattern.
	Meta *IndicatorMeta `json:"meta,omitempty"`
}

// IndicatorMeta is the metadata of an indicator. Fields the source does not give are
// zero.
type IndicatorMeta struct {
	// ID is the STIX object id or the MISP attribute uuid.
	ID string `json:"id,omitempty"`
	// Name is the STIX name, the MISP comment, or the comment after a
	// plain-text indicator.
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	// Confidence is the STIX confidence (0-100); 0 when the source gives
	// none, which STIX also reads as "none".
	Confidence int `json:"confidence,omitempty"`
	// IndicatorTypes is the STIX indicator_types list
	// ("malicious-activity", "compromised", ...).
	IndicatorTypes []string `json:"indicator_types,omitempty"`
	// KillChainPhases lists the STIX kill-chain phase names
	// ("command-and-control").
	KillChainPhases []string `json:"kill_chain_phases,omitempty"`
	// Category and Event are the MISP attribute category and event id.
	Category string `json:"category,omitempty"`
	Event    string `json:"event,omitempty"`
	// ValidFrom and ValidUntil bound the indicator's validity; a zero
	// ValidUntil means it does not expire.
	ValidFrom  time.Time `json:"valid_from,omitzero"`
	ValidUntil time.Time `json:"valid_until,omitzero"`
	// Modified is the STIX modified time: a newer version of the same ID
	// supersedes older ones, in any file of the folder.
	Modified time.Time `json:"modified,omitzero"`
}

// Field returns, as text, the first of the dotted fields (such as
// "source.ip") present with a non-empty value in doc, an alert's nested
// ECS document; "" when none is. Strings, JSON numbers and float64 numbers
// count; other values do not.
func Field(doc map[string]any, names ...string) string {
	for _, name := range names {
		var v any = doc
		for part := range strings.SplitSeq(name, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[part]
		}
		switch x := v.(type) {
		case string:
			if x != "" {
				return x
			}
		case json.Number:
			return string(x)
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
	}
	return ""
}
