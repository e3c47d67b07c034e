package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	bolt "go.etcd.io/bbolt"
)

// The outbox holds the deliveries that the notification outputs owe:
// one job per alert event and output, written in the transaction that
// commits the alert or its status change, so that an alert on disk is an
// alert that every output will receive (at least once), even if raywatch
// is killed before sending it.
//
// Layout, inside the bucket "outbox":
//
//	q\x00<output>  seq (8 bytes, big endian) -> job JSON: the queue, oldest first
//	p\x00<output>  alert id \x00 class -> seq: the job still queued for an alert
//	f\x00<output>  seq -> failed job JSON: the last permanent failures
//	n              counter name -> uint64: queued, dropped and failed per output, total queued
//	instance       8 random bytes naming this store in delivery ids
//
// The sequence is the outbox bucket's, shared by all outputs, so that the
// oldest job of all outputs is the one with the smallest key.
//
// A job does not snapshot the alert: the output reads it from the store
// when it sends, and so sends the alert as it is then. A grouped alert
// changes with most commits; a copy per change would fill the outbox with
// near-identical documents of up to hundreds of kilobytes each (samples
// carry whole events), while the latest state is what a receiver wants.
// It also lets changes coalesce: while an alert has a job of the same
// class queued (class: new or updated, or status), a further change only
// bumps that job's generation instead of queuing another, so an output
// that is down holds at most two jobs per alert, and one that is slow
// sends a hot alert as often as it can, not once per commit. Jobs of one
// alert keep their order: a new job is always queued behind the alert's
// earlier ones, and changes fold into jobs that are already in line.
//
// A job whose generation changed while it was being sent (the commit
// landed after the output read the alert) is not deleted by [Outbox.Ack]:
// it stays in place as an alert.updated to send the newer state.

// Kinds of delivery jobs, as the webhook's "kind" field names them.
const (
	// KindNew is the first delivery of an alert a commit created.
	KindNew = "alert.new"
	// KindUpdated is the delivery of an alert that grew (more events).
	KindUpdated = "alert.updated"
	// KindStatus is the delivery of an alert whose status changed.
	KindStatus = "alert.status"
)

const (
	defaultOutboxMax = 1_000_000
	// maxFailedJobs bounds the permanent failures kept per output.
	maxFailedJobs = 1000
)

var (
	outboxInstance = []byte("instance")
	outboxCounters = []byte("n")
	counterTotal   = []byte("\x00total")
)

// Job is a delivery of one alert to one output, queued in the outbox.
type Job struct {
	// Output is the name of the output (one of Options.Outputs).
	Output string `json:"output"`
	// Seq is the job's place in the outbox: smaller is older.
	Seq uint64 `json:"seq"`
	// DeliveryID names this delivery uniquely and stays the same across
	// retries; it changes when a newer state of the alert is folded into
	// the job (Gen), since that is another delivery.
	DeliveryID string `json:"delivery_id"`
	// Kind is KindNew, KindUpdated or KindStatus.
	Kind    string `json:"kind"`
	AlertID string `json:"alert_id"`
	// Attempt counts the failed attempts so far.
	Attempt int `json:"attempt"`
	// NextAt is when the job may be tried again; zero for now.
	NextAt    time.Time `json:"next_at,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	// Gen counts the changes of the alert folded into the job.
	Gen uint64 `json:"gen"`
	// LastError is the reason given to the last [Outbox.Retry].
	LastError string `json:"last_error,omitempty"`
}

// FailedJob is a job that failed permanently, kept for inspection.
type FailedJob struct {
	Job
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// OutboxStats describes the queue of one output.
type OutboxStats struct {
	// Queued is the number of jobs waiting.
	Queued int64 `json:"queued"`
	// Oldest is when the oldest waiting job was queued; zero when none.
	Oldest time.Time `json:"oldest,omitzero"`
	// Dropped counts the jobs dropped because the outbox was full, since
	// the store was created.
	Dropped int64 `json:"dropped"`
	// Failed counts the jobs that failed permanently, since the store was
	// created.
	Failed int64 `json:"failed"`
}

// Outbox is the store's queue of deliveries (see Options.Outputs). Its
// methods are safe for concurrent use; each output should have one
// consumer, which reads its due jobs with [Outbox.Due] and settles each
// with [Outbox.Ack], [Outbox.Retry] or [Outbox.Fail].
type Outbox struct {
	s *Store
}

// Outbox returns the store's outbox.
func (s *Store) Outbox() *Outbox { return &Outbox{s: s} }

func outboxKey(prefix byte, output string) []byte {
	return append([]byte{prefix, 0}, output...)
}

func pendingKey(alertID, kind string) []byte {
	class := byte('s') // new and updated share a job
	if kind == KindStatus {
		class = 't'
	}
	return append(indexKey(alertID, ""), class)
}

func counterKey(output, name string) []byte {
	return []byte(output + "\x00" + name)
}

// sub returns the nested bucket of the outbox, creating it when the
// transaction is writable; nil when it does not exist in a read-only one.
func sub(root *bolt.Bucket, key []byte) (*bolt.Bucket, error) {
	if b := root.Bucket(key); b != nil || !root.Tx().Writable() {
		return b, nil
	}
	return root.CreateBucket(key)
}

func addCounter(root *bolt.Bucket, key []byte, delta int64) error {
	b, err := sub(root, outboxCounters)
	if err != nil {
		return err
	}
	n := int64(u64(b.Get(key))) + delta
	if n < 0 {
		n = 0
	}
	return b.Put(key, u64bytes(uint64(n)))
}

func counter(root *bolt.Bucket, key []byte) int64 {
	if b := root.Bucket(outboxCounters); b != nil {
		return int64(u64(b.Get(key)))
	}
	return 0
}

func decodeJob(output string, k, v []byte) (Job, error) {
	var j Job
	if err := json.Unmarshal(v, &j); err != nil {
		return Job{}, fmt.Errorf("decode job %d of output %s: %w", u64(k), output, err)
	}
	j.Output, j.Seq = output, u64(k)
	return j, nil
}

func encodeJob(j *Job) ([]byte, error) {
	c := *j
	c.Output, c.Seq, c.DeliveryID = "", 0, "" // from the key and the instance
	return json.Marshal(&c)
}

// queueCommitted queues the deliveries of the alerts that g wrote:
// alert.new for those it created, alert.updated for the others.
func (s *Store) queueCommitted(tx *bolt.Tx, g *grouper) error {
	if len(s.opts.Outputs) == 0 || len(g.order) == 0 {
		return nil
	}
	for _, id := range g.order {
		kind := KindUpdated
		if g.created[id] {
			kind = KindNew
		}
		if err := s.queue(tx, g.touched[id], kind); err != nil {
			return err
		}
	}
	return s.trimOutbox(tx)
}

// queueStatus queues the deliveries of a status change of a.
func (s *Store) queueStatus(tx *bolt.Tx, a *alert.Alert) error {
	if len(s.opts.Outputs) == 0 {
		return nil
	}
	if err := s.queue(tx, a, KindStatus); err != nil {
		return err
	}
	return s.trimOutbox(tx)
}

// queue queues a job of kind for a on every output that takes it, or
// folds the change into the job of the same class a already has queued.
func (s *Store) queue(tx *bolt.Tx, a *alert.Alert, kind string) error {
	root := tx.Bucket(bucketOutbox)
	if root.Get(outboxInstance) == nil {
		id := make([]byte, 8)
		_, _ = rand.Read(id)
		if err := root.Put(outboxInstance, id); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	pk := pendingKey(a.ID, kind)
	for _, out := range s.opts.Outputs {
		if f := s.opts.OutboxFilter; f != nil && !f(out, a) {
			continue
		}
		jobs, err := sub(root, outboxKey('q', out))
		if err != nil {
			return err
		}
		pend, err := sub(root, outboxKey('p', out))
		if err != nil {
			return err
		}
		if seq := pend.Get(pk); seq != nil {
			if v := jobs.Get(seq); v != nil {
				j, err := decodeJob(out, seq, v)
				if err != nil {
					return err
				}
				j.Gen++
				if err := putJob(jobs, &j); err != nil {
					return err
				}
				continue
			}
		}
		seq, err := root.NextSequence()
		if err != nil {
			return err
		}
		j := Job{Output: out, Seq: seq, Kind: kind, AlertID: a.ID, CreatedAt: now}
		if err := putJob(jobs, &j); err != nil {
			return err
		}
		if err := pend.Put(pk, u64bytes(seq)); err != nil {
			return err
		}
		if err := addCounter(root, counterKey(out, "queued"), 1); err != nil {
			return err
		}
		if err := addCounter(root, counterTotal, 1); err != nil {
			return err
		}
	}
	return nil
}

func putJob(jobs *bolt.Bucket, j *Job) error {
	v, err := encodeJob(j)
	if err != nil {
		return err
	}
	return jobs.Put(u64bytes(j.Seq), v)
}

// removeJob deletes job j (as stored) of its output's queue.
func removeJob(root *bolt.Bucket, j *Job) error {
	jobs := root.Bucket(outboxKey('q', j.Output))
	if err := jobs.Delete(u64bytes(j.Seq)); err != nil {
		return err
	}
	if pend := root.Bucket(outboxKey('p', j.Output)); pend != nil {
		pk := pendingKey(j.AlertID, j.Kind)
		if u64(pend.Get(pk)) == j.Seq {
			if err := pend.Delete(pk); err != nil {
				return err
			}
		}
	}
	if err := addCounter(root, counterKey(j.Output, "queued"), -1); err != nil {
		return err
	}
	return addCounter(root, counterTotal, -1)
}

// trimOutbox drops the oldest jobs of all outputs beyond OutboxMax.
func (s *Store) trimOutbox(tx *bolt.Tx) error {
	root := tx.Bucket(bucketOutbox)
	for counter(root, counterTotal) > int64(s.opts.OutboxMax) {
		// The oldest job is the first of one of the queues.
		var (
			oldest []byte
			output string
			value  []byte
		)
		c := root.Cursor()
		prefix := []byte{'q', 0}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if v != nil {
				continue // not a bucket
			}
			fk, fv := root.Bucket(k).Cursor().First()
			if fk != nil && (oldest == nil || bytes.Compare(fk, oldest) < 0) {
				oldest, output, value = fk, string(k[2:]), fv
			}
		}
		if oldest == nil {
			// The queues are empty, so the total is off (it cannot be,
			// but a stuck loop would be worse): set it right.
			b, err := sub(root, outboxCounters)
			if err != nil {
				return err
			}
			return b.Put(counterTotal, u64bytes(0))
		}
		j, err := decodeJob(output, oldest, value)
		if err != nil {
			return err
		}
		if err := removeJob(root, &j); err != nil {
			return err
		}
		if err := addCounter(root, counterKey(output, "dropped"), 1); err != nil {
			return err
		}
	}
	return nil
}

// deliveryID returns the delivery id of j in the store instance inst.
func deliveryID(inst []byte, j *Job) string {
	return fmt.Sprintf("%x-%s-%d-%d", inst, j.Output, j.Seq, j.Gen)
}

// maxDueScan bounds the jobs not yet due that one [Outbox.Due] call steps
// over.
const maxDueScan = 10000

// Due returns up to limit of output's jobs that are due at now, oldest
// first. A job not yet due holds back the later jobs of its alert, so that
// they keep their order (an update never overtakes the new), except when
// it is an alert.updated: the alert's status change may then go first,
// since every delivery sends the alert as it is at that moment.
func (o *Outbox) Due(ctx context.Context, output string, limit int, now time.Time) ([]Job, error) {
	var out []Job
	err := o.s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketOutbox)
		jobs := root.Bucket(outboxKey('q', output))
		if jobs == nil {
			return nil
		}
		inst := root.Get(outboxInstance)
		held := map[string]bool{}
		skipped := 0
		c := jobs.Cursor()
		for k, v := c.First(); k != nil && len(out) < limit && skipped < maxDueScan; k, v = c.Next() {
			j, err := decodeJob(output, k, v)
			if err != nil {
				return err
			}
			if j.NextAt.After(now) || held[j.AlertID] {
				if j.Kind != KindUpdated {
					held[j.AlertID] = true
				}
				skipped++
				continue
			}
			j.DeliveryID = deliveryID(inst, &j)
			out = append(out, j)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read due jobs of output %s: %w", output, err)
	}
	return out, nil
}

// settle runs f on each job as stored now (skipping those no longer
// queued: dropped, or settled already) in one transaction.
func (o *Outbox) settle(what string, jobs []Job, f func(root *bolt.Bucket, stored *Job, given *Job) error) error {
	if len(jobs) == 0 {
		return nil
	}
	err := o.s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketOutbox)
		for i := range jobs {
			q := root.Bucket(outboxKey('q', jobs[i].Output))
			if q == nil {
				continue
			}
			k := u64bytes(jobs[i].Seq)
			v := q.Get(k)
			if v == nil {
				continue
			}
			cur, err := decodeJob(jobs[i].Output, k, v)
			if err != nil {
				return err
			}
			if err := f(root, &cur, &jobs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s %d jobs of output %s: %w", what, len(jobs), jobs[0].Output, err)
	}
	return nil
}

// Ack records that jobs were delivered and removes them from the outbox.
// A job into which a newer state of its alert was folded since [Outbox.Due]
// returned it (its Gen differs) stays queued in its place, as an
// alert.updated due now. Jobs no longer queued are ignored.
func (o *Outbox) Ack(ctx context.Context, jobs ...Job) error {
	return o.settle("ack", jobs, func(root *bolt.Bucket, cur, given *Job) error {
		if cur.Gen == given.Gen {
			return removeJob(root, cur)
		}
		if cur.Kind == KindNew {
			cur.Kind = KindUpdated
		}
		cur.Attempt, cur.NextAt, cur.LastError = 0, time.Time{}, ""
		return putJob(root.Bucket(outboxKey('q', cur.Output)), cur)
	})
}

// Retry records a failed attempt at job j: it stays first in its queue,
// due again at next, with reason (which must hold no secret) as its
// LastError. A job no longer queued is ignored.
func (o *Outbox) Retry(ctx context.Context, j Job, next time.Time, reason string) error {
	return o.settle("retry", []Job{j}, func(root *bolt.Bucket, cur, _ *Job) error {
		cur.Attempt++
		cur.NextAt, cur.LastError = next.UTC(), reason
		return putJob(root.Bucket(outboxKey('q', cur.Output)), cur)
	})
}

// Postpone makes each of jobs due at its NextAt, without counting an
// attempt (to space out the updates of an alert). Jobs no longer queued
// are ignored.
func (o *Outbox) Postpone(ctx context.Context, jobs ...Job) error {
	return o.settle("postpone", jobs, func(root *bolt.Bucket, cur, given *Job) error {
		cur.NextAt = given.NextAt.UTC()
		return putJob(root.Bucket(outboxKey('q', cur.Output)), cur)
	})
}

// Fail records that job j failed permanently: it leaves the queue and is
// kept, with reason (which must hold no secret), among the last failures
// of its output (see [Outbox.Failed]). A job no longer queued is ignored.
func (o *Outbox) Fail(ctx context.Context, j Job, reason string) error {
	return o.settle("fail", []Job{j}, func(root *bolt.Bucket, cur, _ *Job) error {
		if err := removeJob(root, cur); err != nil {
			return err
		}
		if err := addCounter(root, counterKey(cur.Output, "failed"), 1); err != nil {
			return err
		}
		fb, err := sub(root, outboxKey('f', cur.Output))
		if err != nil {
			return err
		}
		seq, err := fb.NextSequence()
		if err != nil {
			return err
		}
		cur.DeliveryID = deliveryID(root.Get(outboxInstance), cur)
		v, err := json.Marshal(FailedJob{Job: *cur, Reason: reason, At: time.Now().UTC()})
		if err != nil {
			return err
		}
		if err := fb.Put(u64bytes(seq), v); err != nil {
			return err
		}
		c := fb.Cursor()
		for k, _ := c.First(); k != nil && u64(k)+maxFailedJobs <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Failed returns up to limit of output's kept permanent failures, newest
// first.
func (o *Outbox) Failed(ctx context.Context, output string, limit int) ([]FailedJob, error) {
	out := []FailedJob{}
	err := o.s.db.View(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bucketOutbox).Bucket(outboxKey('f', output))
		if fb == nil {
			return nil
		}
		c := fb.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var f FailedJob
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("decode failed job %d: %w", u64(k), err)
			}
			out = append(out, f)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list failed jobs of output %s: %w", output, err)
	}
	return out, nil
}

// Stats returns the figures of output's queue.
func (o *Outbox) Stats(output string) (OutboxStats, error) {
	var st OutboxStats
	err := o.s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketOutbox)
		st.Queued = counter(root, counterKey(output, "queued"))
		st.Dropped = counter(root, counterKey(output, "dropped"))
		st.Failed = counter(root, counterKey(output, "failed"))
		if jobs := root.Bucket(outboxKey('q', output)); jobs != nil {
			if k, v := jobs.Cursor().First(); k != nil {
				j, err := decodeJob(output, k, v)
				if err != nil {
					return err
				}
				st.Oldest = j.CreatedAt
			}
		}
		return nil
	})
	if err != nil {
		return OutboxStats{}, fmt.Errorf("outbox stats of output %s: %w", output, err)
	}
	return st, nil
}

// Queues returns the names of the outputs that have jobs queued, which
// may include outputs no longer in Options.Outputs (their jobs stay until
// delivered by a later configuration, or dropped as the oldest when the
// outbox is full).
func (o *Outbox) Queues() ([]string, error) {
	var out []string
	err := o.s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketOutbox)
		c := root.Cursor()
		prefix := []byte{'q', 0}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if v == nil && counter(root, counterKey(string(k[2:]), "queued")) > 0 {
				out = append(out, string(k[2:]))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list outbox queues: %w", err)
	}
	return out, nil
}
