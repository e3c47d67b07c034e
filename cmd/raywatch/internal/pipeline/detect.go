package pipeline

import (
	"fmt"
	"slices"
	"time"

	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules/alert"
)

// Matcher matches one event against the rules and the IOC set; engine's
// *Engine is one. Match must be safe for concurrent use.
type Matcher interface {
	Match(ev *normalize.Event, intake string, received time.Time) []alert.Alert
}

// Detector turns a raw record into alerts: normalize, then match. Its
// fields are set once; Detect is safe for concurrent use with one
// [normalize.Event] per goroutine.
type Detector struct {
	Normalizer *normalize.Normalizer
	// Engine matches the events; nil means normalize only (no alerts).
	Engine Matcher
	// Dataset is the Logpush dataset of the records, or "auto" (or "") to
	// recognise each.
	Dataset string
}

// Detect normalizes one record into ev, which the caller owns and reuses
// from record to record, and returns its alerts. dataset overrides the
// detector's when not empty. The alerts keep ev's Doc, which stays valid
// after ev is reused. The error says why the record is malformed.
func (d *Detector) Detect(ev *normalize.Event, dataset string, raw []byte, intake string, now time.Time) ([]alert.Alert, error) {
	return d.detect(ev, dataset, raw, intake, now, nil)
}

// detect is Detect with a look at the event (onEvent, which may be nil)
// between normalizing and matching.
func (d *Detector) detect(ev *normalize.Event, dataset string, raw []byte, intake string, now time.Time, onEvent func(*normalize.Event) error) ([]alert.Alert, error) {
	if dataset == "" {
		dataset = d.Dataset
	}
	if err := d.Normalizer.NormalizeInto(ev, dataset, raw); err != nil {
		return nil, err
	}
	if onEvent != nil {
		if err := onEvent(ev); err != nil {
			return nil, err
		}
	}
	if d.Engine == nil {
		return nil, nil
	}
	alerts := d.Engine.Match(ev, intake, now)
	if key := DedupeKey(ev); key != ev.Key {
		for i := range alerts {
			alerts[i].RecordKey = key
			alerts[i].ID = alert.AlertID(ev.Time, alerts[i].Rule.ID, key)
		}
	}
	return alerts, nil
}

// DedupeKey is the key that identifies a record across Logpush retries:
// the RayID (normalize's Event.Key), except for firewall_events, where one
// request yields several events: RayID, RuleID, Source and MatchIndex (as
// normalize names them: rule.id, event.module, cloudflare.matchIndex).
func DedupeKey(ev *normalize.Event) string {
	if ev.Dataset != "firewall_events" {
		return ev.Key
	}
	ray, ok := ev.String("cloudflare.RayID")
	if !ok || ray == "" {
		return ev.Key
	}
	rule, _ := ev.String("rule.id")
	src, _ := ev.String("event.module")
	idx, _ := ev.String("cloudflare.matchIndex")
	return ray + "/" + rule + "/" + src + "/" + idx
}

// ValidDataset checks a --dataset value: "auto", "" or a Logpush dataset
// id that normalize decodes.
func ValidDataset(name string) error {
	if name == "auto" || name == "" || slices.Contains(normalize.Datasets, name) {
		return nil
	}
	return fmt.Errorf("--dataset %q: want auto or one of %v", name, normalize.Datasets)
}
