package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/raywatch/raywatch/rules/alert"
)

// budgetMemory is how long the per-minute counts of the runaway-rule guard
// are kept (by the minute's time, as of Prune's now).
const budgetMemory = 24 * time.Hour

// Throttle reports a rule that exceeded Options.RuleAlertBudget in one
// minute: the records beyond the budget that would have created new
// alerts were dropped (records of existing alerts were still counted).
type Throttle struct {
	Rule string `json:"rule"`
	// Minute is the minute of event time, UTC.
	Minute time.Time `json:"minute"`
	// Created is the number of new alerts the rule created in the minute
	// (the budget); Dropped the records dropped beyond it.
	Created int64 `json:"created"`
	Dropped int64 `json:"dropped"`
}

func budgetKey(rule string, minute int64) []byte {
	k := make([]byte, 8, 8+len(rule))
	binary.BigEndian.PutUint64(k, uint64(minute))
	return append(k, rule...)
}

// allowNew reports whether rule a may create a new alert under the
// runaway-rule guard, and counts the creation or the drop in the
// transaction (so that a rolled-back batch counts nothing).
func (g *grouper) allowNew(a *alert.Alert) (bool, error) {
	budget := g.s.opts.RuleAlertBudget
	if budget <= 0 {
		return true, nil
	}
	minute := a.FirstSeen.Unix() / 60
	if a.FirstSeen.Unix()%60 < 0 {
		minute-- // floor for times before 1970
	}
	b := g.tx.Bucket(bucketBudget)
	key := budgetKey(a.Rule.ID, minute)
	var created, dropped uint64
	if v := b.Get(key); len(v) == 16 {
		created, dropped = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	}
	ok := created < uint64(budget)
	if ok {
		created++
	} else {
		dropped++
		if dropped == 1 && g.s.opts.OnThrottle != nil {
			th := Throttle{Rule: a.Rule.ID, Minute: time.Unix(minute*60, 0).UTC(), Created: int64(created), Dropped: 1}
			hook := g.s.opts.OnThrottle
			g.tx.OnCommit(func() { hook(th) })
		}
	}
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, created)
	binary.BigEndian.PutUint64(v[8:], dropped)
	return ok, b.Put(key, v)
}

// Throttled returns the rules that exceeded their alert budget in the
// minutes from since on (kept for a day), newest first.
func (s *Store) Throttled(ctx context.Context, since time.Time) ([]Throttle, error) {
	out := []Throttle{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBudget).Cursor()
		start := make([]byte, 8)
		binary.BigEndian.PutUint64(start, uint64(max(since.Unix()/60, 0)))
		for k, v := c.Seek(start); k != nil; k, v = c.Next() {
			if len(k) < 8 || len(v) != 16 {
				continue
			}
			if dropped := binary.BigEndian.Uint64(v[8:]); dropped > 0 {
				out = append(out, Throttle{
					Rule:    string(k[8:]),
					Minute:  time.Unix(int64(binary.BigEndian.Uint64(k))*60, 0).UTC(),
					Created: int64(binary.BigEndian.Uint64(v)),
					Dropped: int64(dropped),
				})
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list throttled rules: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Minute.Equal(out[j].Minute) {
			return out[i].Minute.After(out[j].Minute)
		}
		return out[i].Rule < out[j].Rule
	})
	return out, nil
}

// forgetBudget deletes the guard's counts of minutes older than
// budgetMemory (at most pruneChunk of them per call).
func (s *Store) forgetBudget(tx *bolt.Tx, now time.Time) error {
	end := make([]byte, 8)
	binary.BigEndian.PutUint64(end, uint64(max(now.Add(-budgetMemory).Unix()/60, 0)))
	c := tx.Bucket(bucketBudget).Cursor()
	n := 0
	for k, _ := c.First(); k != nil && bytes.Compare(k, end) < 0 && n < pruneChunk; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
		n++
	}
	return nil
}
