package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	bolt "go.etcd.io/bbolt"
)

// Batch is what one processed batch brings to the store, committed
// atomically by [Store.Commit].
type Batch struct {
	// ID identifies the batch (see [Spool]); "" for none. Once committed, a
	// batch id is remembered for Options.BatchMemory: [Store.BatchDone]
	// reports it.
	ID string
	// Alerts are the matches of the batch: one alert per rule and record, as
	// [engine.Engine.Match] makes them, with RecordKey set to the record's
	// de-duplication key.
	Alerts []alert.Alert
	// Rejects are the malformed records of the batch to keep.
	Rejects []Reject
}

// Reject is a malformed record kept for inspection.
type Reject struct {
	Time   time.Time `json:"time"`
	Intake string    `json:"intake"`
	Batch  string    `json:"batch"`
	Record int       `json:"record"`
	Reason string    `json:"reason"`
	// Line is the start of the record as received (at most 1 KiB, invalid
	// UTF-8 replaced).
	Line string `json:"line"`
}

// ruleCounters are the per-rule counters of /api/v1/stats.
type ruleCounters struct {
	Alerts   int64     `json:"alerts"` // alerts created
	Events   int64     `json:"events"` // records counted into alerts
	LastSeen time.Time `json:"last_seen"`
	// Closed counts the changes to closed by reason (quality.go).
	Closed map[string]int64 `json:"closed,omitempty"`
}

// Commit stores a batch in one transaction: its alerts grouped into the
// stored ones, its rejects, and its id. A record already counted into an
// alert (same rule, same record key) is not counted again, so a retried
// record or batch never inflates a count. Commit returns the alerts that
// were created or changed, as stored; they are on disk when it returns.
//
// Concurrent calls are coalesced into shared transactions (bbolt's Batch).
func (s *Store) Commit(ctx context.Context, b Batch) ([]alert.Alert, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rejects, err := encodeRejects(b.Rejects)
	if err != nil {
		return nil, err
	}
	var changed []alert.Alert
	// The function may run more than once (bbolt retries a failed batch one
	// function at a time): it starts from the database alone each time.
	err = s.db.Batch(func(tx *bolt.Tx) error {
		var err error
		changed, err = s.commitTx(tx, &b, rejects)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commit batch %s: %w", b.ID, err)
	}
	return changed, nil
}

// CommitAll commits several batches in one transaction, in order, as if
// by one [Store.Commit] each, without waiting for other callers to share
// it: it suits a single committing goroutine. changed[i] holds the alerts
// that batch i created or changed. If the transaction fails, nothing is
// committed.
func (s *Store) CommitAll(ctx context.Context, bs []Batch) (changed [][]alert.Alert, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rejects := make([][][]byte, len(bs))
	for i := range bs {
		if rejects[i], err = encodeRejects(bs[i].Rejects); err != nil {
			return nil, err
		}
	}
	changed = make([][]alert.Alert, len(bs))
	err = s.db.Update(func(tx *bolt.Tx) error {
		for i := range bs {
			var err error
			if changed[i], err = s.commitTx(tx, &bs[i], rejects[i]); err != nil {
				return fmt.Errorf("batch %s: %w", bs[i].ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("commit %d batches: %w", len(bs), err)
	}
	return changed, nil
}

func encodeRejects(rs []Reject) ([][]byte, error) {
	out := make([][]byte, len(rs))
	for i := range rs {
		v, err := json.Marshal(&rs[i])
		if err != nil {
			return nil, fmt.Errorf("encode reject: %w", err)
		}
		out[i] = v
	}
	return out, nil
}

// commitTx folds batch b into the store within tx and returns the alerts
// it created or changed.
func (s *Store) commitTx(tx *bolt.Tx, b *Batch, rejects [][]byte) ([]alert.Alert, error) {
	if b.ID != "" && tx.Bucket(bucketBatches).Get([]byte(b.ID)) != nil {
		return nil, nil // committed before: nothing to do
	}
	g := grouper{s: s, tx: tx, touched: map[string]*alert.Alert{}, created: map[string]bool{}, rules: map[string]*ruleCounters{}}
	for i := range b.Alerts {
		if err := g.add(&b.Alerts[i]); err != nil {
			return nil, err
		}
	}
	out, err := g.flush()
	if err != nil {
		return nil, err
	}
	if err := s.queueCommitted(tx, &g); err != nil { // deliveries, in the same transaction
		return nil, err
	}
	if err := s.putRejects(tx, rejects); err != nil {
		return nil, err
	}
	if b.ID != "" {
		if err := tx.Bucket(bucketBatches).Put([]byte(b.ID), u64bytes(uint64(time.Now().UnixNano()))); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Put stores alerts without a batch id; see [Store.Commit].
func (s *Store) Put(ctx context.Context, alerts []alert.Alert) ([]alert.Alert, error) {
	return s.Commit(ctx, Batch{Alerts: alerts})
}

// BatchDone reports whether the batch id was committed (within
// Options.BatchMemory).
func (s *Store) BatchDone(id string) (bool, error) {
	var done bool
	err := s.db.View(func(tx *bolt.Tx) error {
		done = tx.Bucket(bucketBatches).Get([]byte(id)) != nil
		return nil
	})
	return done, err
}

// grouper folds per-record alerts into stored alerts within one
// transaction.
type grouper struct {
	s       *Store
	tx      *bolt.Tx
	touched map[string]*alert.Alert // by id, decoded or new
	created map[string]bool
	order   []string
	rules   map[string]*ruleCounters
}

// GroupID returns the id of the stored alert that a per-record alert a
// belongs to, given the grouping window: the slot start then a hash of the
// rule, intake, source IP and host, and whether a is a retro-hunt's (retro
// alerts are grouped apart, so that they stay marked); with no window, a's
// own id.
func GroupID(a *alert.Alert, window time.Duration) string {
	if window <= 0 {
		return alert.AlertID(a.FirstSeen, a.Rule.ID, a.RecordKey)
	}
	slot := a.FirstSeen.UTC().Truncate(window)
	ip, host, _ := entity(a.Event)
	key := "group\x00" + a.Intake + "\x00" + ip + "\x00" + host
	if a.Retro {
		key += "\x00retro"
	}
	return alert.AlertID(slot, a.Rule.ID, key)
}

func (g *grouper) add(a *alert.Alert) error {
	id := GroupID(a, g.s.opts.GroupWindow)
	rk := a.RecordKey
	if rk == "" {
		rk = a.ID
	}
	seen := g.tx.Bucket(bucketSeen)
	seenKey := []byte(id + "\x00" + rk)
	if seen.Get(seenKey) != nil {
		return nil // this record is counted already
	}
	if a.Retro && g.s.opts.GroupWindow > 0 {
		// A rule retro-run over batches the rule already saw live: the
		// record is counted in the live alert's group.
		live := *a
		live.Retro = false
		if seen.Get([]byte(GroupID(&live, g.s.opts.GroupWindow)+"\x00"+rk)) != nil {
			return nil
		}
	}
	cur := g.touched[id]
	if cur == nil {
		if v := g.tx.Bucket(bucketAlerts).Get([]byte(id)); v != nil {
			old, ok := g.s.hot.get(id, v)
			if !ok {
				var err error
				if old, err = decodeAlert(v); err != nil {
					return fmt.Errorf("decode alert %s: %w", id, err)
				}
			}
			cur = &old
		}
		if cur != nil {
			g.touched[id] = cur
			g.order = append(g.order, id)
		}
	}
	if cur == nil {
		// The runaway-rule guard (budget.go): a dropped record is not
		// marked seen, so nothing of it is kept.
		if ok, err := g.allowNew(a); err != nil || !ok {
			return err
		}
	}
	if err := seen.Put(seenKey, []byte{}); err != nil {
		return err
	}
	rc, err := g.counters(a.Rule.ID)
	if err != nil {
		return err
	}
	rc.Events++
	if a.LastSeen.After(rc.LastSeen) {
		rc.LastSeen = a.LastSeen
	}
	if cur == nil {
		n := *a
		n.ID = id
		n.Count = 1
		n.Status = alert.StatusNew
		n.Samples = []alert.Sample{{RecordKey: rk, Time: a.FirstSeen, Event: a.Event}}
		n.StatusHistory = nil
		g.touched[id] = &n
		g.created[id] = true
		g.order = append(g.order, id)
		rc.Alerts++
		return nil
	}
	cur.Count++
	if a.FirstSeen.Before(cur.FirstSeen) {
		cur.FirstSeen = a.FirstSeen
	}
	if a.LastSeen.After(cur.LastSeen) {
		cur.LastSeen = a.LastSeen
	}
	// The alert shows its earliest event (ties broken by record key), so
	// that the result does not depend on the order records arrive in.
	if earlier(a.FirstSeen, rk, sampleTime(cur), cur.RecordKey) {
		cur.Event, cur.Matches, cur.RecordKey = a.Event, a.Matches, rk
	}
	cur.Samples = append(cur.Samples, alert.Sample{RecordKey: rk, Time: a.FirstSeen, Event: a.Event})
	sort.SliceStable(cur.Samples, func(i, j int) bool {
		return earlier(cur.Samples[i].Time, cur.Samples[i].RecordKey, cur.Samples[j].Time, cur.Samples[j].RecordKey)
	})
	if len(cur.Samples) > g.s.opts.Samples {
		cur.Samples = cur.Samples[:g.s.opts.Samples]
	}
	return nil
}

// sampleTime is the time of the event an alert shows.
func sampleTime(a *alert.Alert) time.Time {
	for _, sm := range a.Samples {
		if sm.RecordKey == a.RecordKey {
			return sm.Time
		}
	}
	return a.FirstSeen
}

func earlier(t1 time.Time, k1 string, t2 time.Time, k2 string) bool {
	if !t1.Equal(t2) {
		return t1.Before(t2)
	}
	return k1 < k2
}

func (g *grouper) counters(rule string) (*ruleCounters, error) {
	if rc := g.rules[rule]; rc != nil {
		return rc, nil
	}
	rc := &ruleCounters{}
	if v := g.tx.Bucket(bucketRules).Get([]byte(rule)); v != nil {
		if err := json.Unmarshal(v, rc); err != nil {
			return nil, fmt.Errorf("decode counters of rule %s: %w", rule, err)
		}
	}
	g.rules[rule] = rc
	return rc, nil
}

// flush writes the touched alerts, their indexes and the counters.
func (g *grouper) flush() ([]alert.Alert, error) {
	alerts := g.tx.Bucket(bucketAlerts)
	out := make([]alert.Alert, 0, len(g.order))
	for _, id := range g.order {
		a := g.touched[id]
		v, err := g.s.encodeAlert(a)
		if err != nil {
			return nil, fmt.Errorf("encode alert %s: %w", id, err)
		}
		if err := alerts.Put([]byte(id), v); err != nil {
			return nil, err
		}
		g.s.hot.put(id, v, a)
		if g.created[id] {
			if err := g.tx.Bucket(bucketByRule).Put(indexKey(a.Rule.ID, id), []byte{}); err != nil {
				return nil, err
			}
			if err := g.tx.Bucket(bucketByStatus).Put(indexKey(a.Status, id), []byte{}); err != nil {
				return nil, err
			}
		}
		out = append(out, *a)
	}
	if n := len(g.created); n > 0 {
		if err := addMeta(g.tx, metaAlerts, int64(n)); err != nil {
			return nil, err
		}
	}
	for rule, rc := range g.rules {
		v, err := json.Marshal(rc)
		if err != nil {
			return nil, err
		}
		if err := g.tx.Bucket(bucketRules).Put([]byte(rule), v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func indexKey(prefix, id string) []byte {
	k := make([]byte, 0, len(prefix)+1+len(id))
	k = append(k, prefix...)
	k = append(k, 0)
	return append(k, id...)
}

func (s *Store) putRejects(tx *bolt.Tx, rejects [][]byte) error {
	if len(rejects) == 0 {
		return nil
	}
	b := tx.Bucket(bucketRejects)
	for _, v := range rejects {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(u64bytes(seq), v); err != nil {
			return err
		}
	}
	// Keep the newest MaxRejects.
	n := b.Stats().KeyN
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n > s.opts.MaxRejects; k, _ = c.First() {
		if err := b.Delete(k); err != nil {
			return err
		}
		n--
	}
	return nil
}

// Rejects returns up to limit kept malformed records, newest first.
func (s *Store) Rejects(ctx context.Context, limit int) ([]Reject, error) {
	if limit <= 0 || limit > s.opts.MaxRejects {
		limit = s.opts.MaxRejects
	}
	out := []Reject{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRejects).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var r Reject
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode reject %x: %w", k, err)
			}
			out = append(out, r)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list rejects: %w", err)
	}
	return out, nil
}

// Query selects alerts for [Store.List]. Empty fields do not filter.
type Query struct {
	// Limit is the page size; 0 means 50, and it is capped at 1000.
	Limit int
	// Cursor continues a listing: the Next of the previous page.
	Cursor string
	Rule   string // rule id
	Level  string
	Status string
	Intake string
	// From and To keep the alerts whose events overlap [From, To].
	From, To time.Time
	// Text keeps the alerts whose event's source IP, host, path (or URL)
	// or user-agent contains it, ignoring case.
	Text string
}

// maxScan bounds the alerts one List call examines; a listing with very
// selective filters may return a short (even empty) page with a Next to go
// on from.
const maxScan = 50000

// List returns alerts newest first (by ID, which starts with the time of the
// alert's slot) and the cursor of the next page ("" when there is none).
func (s *Store) List(ctx context.Context, q Query) ([]alert.Alert, string, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.Limit > 1000 {
		q.Limit = 1000
	}
	text := strings.ToLower(strings.TrimSpace(q.Text))
	pre := rawPrefilter(text)
	var out []alert.Alert
	next := ""
	err := s.db.View(func(tx *bolt.Tx) error {
		alerts := tx.Bucket(bucketAlerts)
		// Walk an index when one applies, else the alerts themselves.
		var prefix []byte
		c := alerts.Cursor()
		switch {
		case q.Rule != "":
			prefix, c = indexKey(q.Rule, ""), tx.Bucket(bucketByRule).Cursor()
		case q.Status != "":
			prefix, c = indexKey(q.Status, ""), tx.Bucket(bucketByStatus).Cursor()
		}
		// Start below the cursor and below the end of the time range.
		start := q.Cursor
		if !q.To.IsZero() {
			top := fmt.Sprintf("%012x", q.To.UnixMilli()+1)
			if start == "" || top < start {
				start = top
			}
		}
		var k, v []byte
		if start == "" {
			k, v = seekLast(c, prefix)
		} else {
			seek := append(slices.Clip(prefix), start...)
			k, v = c.Seek(seek)
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && bytes.Compare(k, seek) >= 0 {
				k, v = c.Prev()
			}
		}
		window := s.opts.GroupWindow
		for scanned := 0; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			id := k[len(prefix):]
			if t, ok := idTime(id); ok && !q.From.IsZero() && t.Add(window).Before(q.From) {
				return nil // this alert and every older one ended before From
			}
			if len(out) == q.Limit {
				next = out[len(out)-1].ID
				return nil
			}
			if scanned++; scanned > maxScan {
				next = string(id)
				return nil
			}
			if prefix != nil {
				v = alerts.Get(id)
				if v == nil {
					continue
				}
			}
			if pre != nil && !bytes.Contains(bytes.ToLower(v), pre) {
				continue // the text is nowhere in the alert
			}
			a, err := decodeAlert(v)
			if err != nil {
				return fmt.Errorf("decode alert %s: %w", id, err)
			}
			if !q.matches(&a, text) {
				continue
			}
			out = append(out, a)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, "", fmt.Errorf("list alerts: %w", err)
	}
	return out, next, nil
}

// rawPrefilter returns the bytes that a stored alert's JSON, lower-cased,
// must contain for its fields to contain text; nil when text could be
// escaped in JSON (then every alert is decoded and checked).
func rawPrefilter(text string) []byte {
	if text == "" {
		return nil
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return nil
		}
	}
	return []byte(text)
}

// idTime returns the time an alert id starts with.
func idTime(id []byte) (time.Time, bool) {
	if len(id) < 12 {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(string(id[:12]), 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// seekLast positions c on the last key with prefix (the last key when
// prefix is nil).
func seekLast(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
	if prefix == nil {
		return c.Last()
	}
	end := append(slices.Clip(prefix[:len(prefix)-1]), 1) // prefix's 0x00 separator + 1
	if k, _ := c.Seek(end); k == nil {
		return c.Last()
	}
	return c.Prev()
}

func (q *Query) matches(a *alert.Alert, text string) bool {
	switch {
	case q.Rule != "" && a.Rule.ID != q.Rule,
		q.Level != "" && !strings.EqualFold(a.Rule.Level, q.Level),
		q.Status != "" && a.Status != q.Status,
		q.Intake != "" && a.Intake != q.Intake,
		!q.From.IsZero() && a.LastSeen.Before(q.From),
		!q.To.IsZero() && a.FirstSeen.After(q.To):
		return false
	}
	if text == "" {
		return true
	}
	ip, host, ua := entity(a.Event)
	path := alert.Field(a.Event, "url.original", "url.path", "cloudflare.ClientRequestURI")
	for _, f := range []string{ip, host, ua, path} {
		if strings.Contains(strings.ToLower(f), text) {
			return true
		}
	}
	return false
}

// entity returns the source IP, host and user-agent of an ECS document.
func entity(doc map[string]any) (ip, host, ua string) {
	ip = alert.Field(doc, "source.ip", "client.ip", "cloudflare.ClientIP")
	host = alert.Field(doc, "destination.address", "url.domain", "cloudflare.ClientRequestHost")
	ua = alert.Field(doc, "user_agent.original", "cloudflare.ClientRequestUserAgent")
	return ip, host, ua
}

// Get returns one alert by id, or an error wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (alert.Alert, error) {
	var a alert.Alert
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAlerts).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		a, err = decodeAlert(v)
		return err
	})
	if err != nil {
		return alert.Alert{}, fmt.Errorf("get alert %q: %w", id, err)
	}
	return a, nil
}

// SetStatus sets the status of alert id (new, acknowledged or closed),
// recording who did it and when, and returns the alert as stored. Setting
// the status an alert already has changes nothing.
func (s *Store) SetStatus(ctx context.Context, id, status, by string, at time.Time) (alert.Alert, error) {
	return s.Transition(ctx, id, alert.StatusChange{Status: status, By: by, At: at})
}

// Transition is [Store.SetStatus] with a comment and a close reason:
// ch.Status becomes the alert's status and ch joins its StatusHistory. A
// change to the status the alert already has is recorded only when it
// carries a comment or a reason. A reason (alert.Reasons) is accepted only
// with status closed, and counted per rule (RuleStats.Closed).
func (s *Store) Transition(ctx context.Context, id string, ch alert.StatusChange) (alert.Alert, error) {
	status := ch.Status
	switch status {
	case alert.StatusNew, alert.StatusAcknowledged, alert.StatusClosed:
	default:
		return alert.Alert{}, fmt.Errorf("%w %q: want new, acknowledged or closed", ErrBadStatus, status)
	}
	if err := checkReason(ch); err != nil {
		return alert.Alert{}, err
	}
	var a alert.Alert
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		if a, err = decodeAlert(v); err != nil {
			return err
		}
		if a.Status == status && ch.Comment == "" && ch.Reason == "" {
			return nil
		}
		changed := a.Status != status
		if changed {
			idx := tx.Bucket(bucketByStatus)
			if err := idx.Delete(indexKey(a.Status, id)); err != nil {
				return err
			}
			if err := idx.Put(indexKey(status, id), []byte{}); err != nil {
				return err
			}
		}
		if err := countClose(tx, &a, ch); err != nil {
			return err
		}
		a.Status = status
		ch.At = ch.At.UTC()
		a.StatusHistory = append(a.StatusHistory, ch)
		a.StatusHistory, a.StatusHistoryDropped = boundHistory(a.StatusHistory, a.StatusHistoryDropped)
		nv, err := json.Marshal(&a)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(id), nv); err != nil {
			return err
		}
		if changed { // deliveries, in the same transaction
			return s.queueStatus(tx, &a)
		}
		return nil
	})
	if err != nil {
		return alert.Alert{}, fmt.Errorf("set status of alert %q: %w", id, err)
	}
	return a, nil
}

// historyFirst and historyLast bound an alert's StatusHistory: the first
// change (who first looked at it) and the latest ones are kept.
const (
	historyFirst = 1
	historyLast  = 20
)

// boundHistory cuts h to its first historyFirst and last historyLast
// entries, adding the number left out to dropped.
func boundHistory(h []alert.StatusChange, dropped int) ([]alert.StatusChange, int) {
	if len(h) <= historyFirst+historyLast {
		return h, dropped
	}
	cut := len(h) - historyFirst - historyLast
	h = append(h[:historyFirst], h[historyFirst+cut:]...)
	return h, dropped + cut
}

// RuleStats are the counters of one rule.
type RuleStats struct {
	Rule     string    `json:"rule"`
	Title    string    `json:"title,omitempty"` // filled in by the caller, which knows the rules
	Alerts   int64     `json:"alerts"`          // alerts created (grouped)
	Events   int64     `json:"events"`          // records counted into them
	LastSeen time.Time `json:"last_seen"`
	// Closed counts the changes of the rule's alerts to closed, by reason
	// (false_positive, true_positive, benign; changes without a reason
	// are not counted).
	Closed map[string]int64 `json:"closed,omitempty"`
}

// Stats describes the store.
type Stats struct {
	Alerts   int64            `json:"alerts"` // alerts stored now
	ByStatus map[string]int64 `json:"by_status"`
	Rules    []RuleStats      `json:"rules"`
	Bytes    int64            `json:"bytes"`
}

// Stats returns counters per rule (since the store was created) and the
// number of stored alerts by status.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	st := Stats{ByStatus: map[string]int64{}, Rules: []RuleStats{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		st.Alerts = int64(u64(tx.Bucket(bucketMeta).Get(metaAlerts)))
		st.Bytes = tx.Size()
		err := tx.Bucket(bucketRules).ForEach(func(k, v []byte) error {
			var rc ruleCounters
			if err := json.Unmarshal(v, &rc); err != nil {
				return err
			}
			st.Rules = append(st.Rules, RuleStats{Rule: string(k), Alerts: rc.Alerts, Events: rc.Events, LastSeen: rc.LastSeen, Closed: rc.Closed})
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketByStatus).ForEach(func(k, _ []byte) error {
			if i := bytes.IndexByte(k, 0); i >= 0 {
				st.ByStatus[string(k[:i])]++
			}
			return ctx.Err()
		})
	})
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// pruneChunk bounds the deletions of one Prune transaction.
const pruneChunk = 1000

// Prune applies retention as of now: it deletes alerts older than MaxAge,
// then the oldest beyond MaxAlerts, with their indexes and record marks, and
// forgets batch ids older than BatchMemory. It returns the number of alerts
// deleted. It works in short transactions so as not to hold up commits.
func (s *Store) Prune(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := 0
		more := false
		err := s.db.Update(func(tx *bolt.Tx) error {
			n, more = 0, false
			count := int64(u64(tx.Bucket(bucketMeta).Get(metaAlerts)))
			cutoff := now.Add(-s.opts.MaxAge)
			alerts := tx.Bucket(bucketAlerts)
			var victims [][]byte
			c := alerts.Cursor()
			for k, v := c.First(); k != nil && len(victims) < pruneChunk; k, v = c.Next() {
				if s.opts.MaxAlerts > 0 && count-int64(len(victims)) > int64(s.opts.MaxAlerts) {
					victims = append(victims, bytes.Clone(k))
					continue
				}
				if s.opts.MaxAge <= 0 {
					break
				}
				// Keys are in slot order, not last-seen order: look no
				// further than the slots that end before the cutoff.
				if t, ok := idTime(k); ok && !t.Add(s.opts.GroupWindow).Before(cutoff) {
					break
				}
				a, err := decodeAlert(v)
				if err != nil {
					return fmt.Errorf("decode alert %s: %w", k, err)
				}
				if a.LastSeen.Before(cutoff) {
					victims = append(victims, bytes.Clone(k))
				}
			}
			more = len(victims) == pruneChunk
			for _, k := range victims {
				if err := s.deleteAlert(tx, k, alerts.Get(k)); err != nil {
					return err
				}
				n++
			}
			if n > 0 {
				if err := addMeta(tx, metaAlerts, -int64(n)); err != nil {
					return err
				}
			}
			if err := s.forgetBudget(tx, now); err != nil {
				return err
			}
			return s.forgetBatches(tx, now)
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("prune alerts: %w", err)
		}
		if !more {
			return total, nil
		}
	}
}

func (s *Store) deleteAlert(tx *bolt.Tx, k, v []byte) error {
	id := string(k)
	a, err := decodeAlert(v)
	if err != nil {
		return fmt.Errorf("decode alert %s: %w", id, err)
	}
	if err := tx.Bucket(bucketByRule).Delete(indexKey(a.Rule.ID, id)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketByStatus).Delete(indexKey(a.Status, id)); err != nil {
		return err
	}
	seen := tx.Bucket(bucketSeen).Cursor()
	prefix := indexKey(id, "")
	for sk, _ := seen.Seek(prefix); sk != nil && bytes.HasPrefix(sk, prefix); sk, _ = seen.Seek(prefix) {
		if err := seen.Delete(); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketAlerts).Delete(k)
}

func (s *Store) forgetBatches(tx *bolt.Tx, now time.Time) error {
	cutoff := uint64(now.Add(-s.opts.BatchMemory).UnixNano())
	b := tx.Bucket(bucketBatches)
	var old [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if binary.BigEndian.Uint64(v) < cutoff && len(old) < pruneChunk {
			old = append(old, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// decodeAlert decodes a stored alert, keeping numbers exact. The decoder
// copies what it keeps, so v may be memory owned by a bbolt transaction.
func decodeAlert(v []byte) (alert.Alert, error) {
	var a alert.Alert
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	err := d.Decode(&a)
	return a, err
}
