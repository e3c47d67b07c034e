package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/raywatch/raywatch/rules/alert"
)

// checkReason validates the close reason of a status change: one of
// alert.Reasons, and only on a change to closed. Errors wrap ErrBadStatus.
func checkReason(ch alert.StatusChange) error {
	switch {
	case ch.Reason == "":
		return nil
	case !slices.Contains(alert.Reasons, ch.Reason):
		return fmt.Errorf("%w: reason %q: want %s", ErrBadStatus, ch.Reason, strings.Join(alert.Reasons, ", "))
	case ch.Status != alert.StatusClosed:
		return fmt.Errorf("%w: reason %q applies only when closing", ErrBadStatus, ch.Reason)
	}
	return nil
}

// countClose counts a change of alert a to closed with a reason into the
// counters of its rule, within tx, unless a is closed with that reason
// already.
func countClose(tx *bolt.Tx, a *alert.Alert, ch alert.StatusChange) error {
	if ch.Status != alert.StatusClosed || ch.Reason == "" {
		return nil
	}
	if a.Status == alert.StatusClosed && lastCloseReason(a) == ch.Reason {
		return nil
	}
	rule := a.Rule.ID
	b := tx.Bucket(bucketRules)
	var rc ruleCounters
	if v := b.Get([]byte(rule)); v != nil {
		if err := json.Unmarshal(v, &rc); err != nil {
			return fmt.Errorf("decode counters of rule %s: %w", rule, err)
		}
	}
	if rc.Closed == nil {
		rc.Closed = map[string]int64{}
	}
	rc.Closed[ch.Reason]++
	v, err := json.Marshal(&rc)
	if err != nil {
		return err
	}
	return b.Put([]byte(rule), v)
}

// lastCloseReason is the reason of a's latest change to closed.
func lastCloseReason(a *alert.Alert) string {
	for i := len(a.StatusHistory) - 1; i >= 0; i-- {
		if a.StatusHistory[i].Status == alert.StatusClosed {
			return a.StatusHistory[i].Reason
		}
	}
	return ""
}

// RuleStats returns the counters of every rule (Stats' Rules) without
// counting the stored alerts: it reads one small bucket, and suits callers
// that ask often (the rules page).
func (s *Store) RuleStats(ctx context.Context) ([]RuleStats, error) {
	out := []RuleStats{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRules).ForEach(func(k, v []byte) error {
			var rc ruleCounters
			if err := json.Unmarshal(v, &rc); err != nil {
				return fmt.Errorf("decode counters of rule %s: %w", k, err)
			}
			out = append(out, RuleStats{Rule: string(k), Alerts: rc.Alerts, Events: rc.Events, LastSeen: rc.LastSeen, Closed: rc.Closed})
			return ctx.Err()
		})
	})
	if err != nil {
		return nil, fmt.Errorf("rule stats: %w", err)
	}
	return out, nil
}
