package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/raywatch/raywatch/engine/ioc"
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
	Group   map[string]string `json:"group,omitempty"`
	Matches []Match           `json:"matches"`
	Event   map[string]any    `json:"event"`
	// Samples are some of the events grouped into this alert (the earliest
	// ones, bounded), filled in by the alert store.
	Samples []Sample `json:"samples,omitempty"`
	// StatusHistory lists the status changes, oldest first.
	StatusHistory []StatusChange `json:"status_history,omitempty"`
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
}

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
	Indicator *ioc.Indicator `json:"indicator,omitempty"`
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
