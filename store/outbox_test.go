package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/google/go-cmp/cmp"
)

// jobView is what a test compares of a job.
type jobView struct {
	Kind, Alert string
	Gen         uint64
}

func dueView(t *testing.T, ob *Outbox, output string) ([]Job, []jobView) {
	t.Helper()
	jobs, err := ob.Due(context.Background(), output, 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var v []jobView
	for _, j := range jobs {
		v = append(v, jobView{j.Kind, j.AlertID, j.Gen})
	}
	return jobs, v
}

func TestOutboxQueuesDeliveriesWithTheCommit(t *testing.T) {
	s := openWith(t, Options{GroupWindow: time.Hour, Outputs: []string{"webhook-1", "syslog"}})
	ctx := context.Background()
	ob := s.Outbox()
	base := int64(1795500000)
	changed, err := s.Commit(ctx, Batch{ID: "b1", Alerts: []alert.Alert{
		hit(base+1, "r1", "k1", "203.0.113.1", "a.example", "ua"),
		hit(base+2, "r2", "k1", "203.0.113.1", "a.example", "ua"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	a1, a2 := changed[0].ID, changed[1].ID
	for _, out := range []string{"webhook-1", "syslog"} {
		_, got := dueView(t, ob, out)
		want := []jobView{{KindNew, a1, 0}, {KindNew, a2, 0}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Due(%s) after the first commit (-want +got):\n%s", out, diff)
		}
	}

	// The first alert grows twice before anything is sent: the changes fold
	// into its queued job.
	for i, k := range []string{"k2", "k3"} {
		if _, err := s.Commit(ctx, Batch{ID: fmt.Sprint("b", i+2), Alerts: []alert.Alert{hit(base+3, "r1", k, "203.0.113.1", "a.example", "ua")}}); err != nil {
			t.Fatal(err)
		}
	}
	jobs, got := dueView(t, ob, "webhook-1")
	if diff := cmp.Diff([]jobView{{KindNew, a1, 2}, {KindNew, a2, 0}}, got); diff != "" {
		t.Fatalf("Due after two updates (-want +got):\n%s", diff)
	}
	if err := ob.Ack(ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	if _, got := dueView(t, ob, "webhook-1"); got != nil {
		t.Fatalf("Due after Ack = %v; want nothing", got)
	}

	// Now a change after the new was sent is a job of its own, and a status
	// change queues behind it; a further change folds into the update,
	// which stays ahead of the status.
	if _, err := s.Commit(ctx, Batch{ID: "b4", Alerts: []alert.Alert{hit(base+4, "r1", "k4", "203.0.113.1", "a.example", "ua")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, a1, alert.StatusClosed, "ana", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, a1, alert.StatusClosed, "ana", time.Now()); err != nil { // no change
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, Batch{ID: "b5", Alerts: []alert.Alert{hit(base+5, "r1", "k5", "203.0.113.1", "a.example", "ua")}}); err != nil {
		t.Fatal(err)
	}
	_, got = dueView(t, ob, "webhook-1")
	if diff := cmp.Diff([]jobView{{KindUpdated, a1, 1}, {KindStatus, a1, 0}}, got); diff != "" {
		t.Fatalf("Due after update, close, update (-want +got):\n%s", diff)
	}
	st, err := ob.Stats("webhook-1")
	if err != nil || st.Queued != 2 || st.Oldest.IsZero() {
		t.Fatalf("Stats = %+v, %v; want 2 queued with an oldest time", st, err)
	}
	// Nothing was sent to syslog: every growth folded into the new.
	_, got = dueView(t, ob, "syslog")
	if diff := cmp.Diff([]jobView{{KindNew, a1, 4}, {KindNew, a2, 0}, {KindStatus, a1, 0}}, got); diff != "" {
		t.Fatalf("Due(syslog) (-want +got):\n%s", diff)
	}
}

func TestOutboxAckOfAStaleGenerationKeepsTheJob(t *testing.T) {
	s := openWith(t, Options{GroupWindow: time.Hour, Outputs: []string{"o"}})
	ctx := context.Background()
	ob := s.Outbox()
	base := int64(1795500000)
	if _, err := s.Commit(ctx, Batch{Alerts: []alert.Alert{hit(base, "r1", "k1", "203.0.113.1", "a.example", "ua")}}); err != nil {
		t.Fatal(err)
	}
	sent, _ := dueView(t, ob, "o")
	// The alert grows while the output sends the state it read.
	if _, err := s.Commit(ctx, Batch{Alerts: []alert.Alert{hit(base+1, "r1", "k2", "203.0.113.1", "a.example", "ua")}}); err != nil {
		t.Fatal(err)
	}
	if err := ob.Ack(ctx, sent...); err != nil {
		t.Fatal(err)
	}
	again, got := dueView(t, ob, "o")
	if diff := cmp.Diff([]jobView{{KindUpdated, sent[0].AlertID, 1}}, got); diff != "" {
		t.Fatalf("Due after a stale Ack (-want +got):\n%s", diff)
	}
	if again[0].Seq != sent[0].Seq || again[0].DeliveryID == sent[0].DeliveryID {
		t.Fatalf("job after stale Ack: seq %d, delivery %s; want seq %d kept and a new delivery id (was %s)",
			again[0].Seq, again[0].DeliveryID, sent[0].Seq, sent[0].DeliveryID)
	}
	if err := ob.Ack(ctx, again...); err != nil {
		t.Fatal(err)
	}
	if _, got := dueView(t, ob, "o"); got != nil {
		t.Fatalf("Due after Ack = %v; want nothing", got)
	}
	if st, _ := ob.Stats("o"); st.Queued != 0 {
		t.Fatalf("Stats = %+v; want none queued", st)
	}
}

func TestOutboxRollsBackWithTheCommit(t *testing.T) {
	s := openWith(t, Options{Outputs: []string{"o"}})
	bad := alertAt(200, "r1", "k2")
	bad.Event = map[string]any{"x": make(chan int)} // cannot be encoded
	_, err := s.CommitAll(context.Background(), []Batch{{ID: "good", Alerts: []alert.Alert{alertAt(100, "r1", "k1")}}, {ID: "bad", Alerts: []alert.Alert{bad}}})
	if err == nil {
		t.Fatal("CommitAll with an unencodable alert succeeded")
	}
	if _, got := dueView(t, s.Outbox(), "o"); got != nil {
		t.Fatalf("Due after a failed commit = %v; want nothing", got)
	}
	if st, _ := s.Outbox().Stats("o"); st.Queued != 0 {
		t.Fatalf("Stats after a failed commit = %+v; want nothing queued", st)
	}
}

func TestOutboxWaitingJobsHoldBackTheirAlert(t *testing.T) {
	s := openWith(t, Options{Outputs: []string{"o"}})
	ctx := context.Background()
	ob := s.Outbox()
	a1, a2 := alertAt(100, "r1", "k1"), alertAt(101, "r1", "k2")
	if _, err := s.Put(ctx, []alert.Alert{a1, a2}); err != nil {
		t.Fatal(err)
	}
	jobs, _ := dueView(t, ob, "o")
	next := time.Now().Add(time.Hour)
	if err := ob.Retry(ctx, jobs[0], next, "connection refused"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus(ctx, a1.ID, alert.StatusClosed, "ana", time.Now()); err != nil {
		t.Fatal(err)
	}
	// a1's new waits for its retry, and holds back a1's status change; a2
	// goes on.
	if _, got := dueView(t, ob, "o"); !cmp.Equal(got, []jobView{{KindNew, a2.ID, 0}}) {
		t.Fatalf("Due before the retry = %v; want a2's new only", got)
	}
	got, err := ob.Due(ctx, "o", 10, next)
	if err != nil || len(got) != 3 || got[0].AlertID != a1.ID || got[2].Kind != KindStatus {
		t.Fatalf("Due at the retry = %+v, %v; want a1's new, a2's new, a1's status", got, err)
	}
	if got[0].Attempt != 1 || got[0].LastError != "connection refused" || got[0].DeliveryID != jobs[0].DeliveryID {
		t.Fatalf("retried job = %+v; want attempt 1, its reason, delivery id %s", got[0], jobs[0].DeliveryID)
	}
	if err := ob.Ack(ctx, got...); err != nil {
		t.Fatal(err)
	}

	// A postponed update does not hold back the status change.
	s2 := openWith(t, Options{Outputs: []string{"o"}, GroupWindow: time.Hour})
	ob2 := s2.Outbox()
	base := int64(1795500000)
	first, err := s2.Commit(ctx, Batch{Alerts: []alert.Alert{hit(base, "r1", "k1", "203.0.113.1", "a.example", "ua")}})
	if err != nil {
		t.Fatal(err)
	}
	sent, _ := dueView(t, ob2, "o")
	if err := ob2.Ack(ctx, sent...); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Commit(ctx, Batch{Alerts: []alert.Alert{hit(base+1, "r1", "k2", "203.0.113.1", "a.example", "ua")}}); err != nil {
		t.Fatal(err)
	}
	upd, _ := dueView(t, ob2, "o")
	upd[0].NextAt = next
	if err := ob2.Postpone(ctx, upd...); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.SetStatus(ctx, first[0].ID, alert.StatusAcknowledged, "ana", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, got := dueView(t, ob2, "o"); !cmp.Equal(got, []jobView{{KindStatus, first[0].ID, 0}}) {
		t.Fatalf("Due with a postponed update = %v; want the status change", got)
	}
	got, _ = ob2.Due(ctx, "o", 10, next)
	if len(got) != 2 || got[0].Kind != KindUpdated || got[0].Attempt != 0 {
		t.Fatalf("Due after the postponement = %+v; want the update (no attempt counted), then the status", got)
	}
}

func TestOutboxFailKeepsTheLastFailures(t *testing.T) {
	s := openWith(t, Options{Outputs: []string{"o"}})
	ctx := context.Background()
	ob := s.Outbox()
	var in []alert.Alert
	for i := range maxFailedJobs + 5 {
		in = append(in, alertAt(int64(100+i), "r1", fmt.Sprint("k", i)))
	}
	if _, err := s.Put(ctx, in); err != nil {
		t.Fatal(err)
	}
	for {
		jobs, err := ob.Due(ctx, "o", 100, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 0 {
			break
		}
		for _, j := range jobs {
			if err := ob.Fail(ctx, j, "400 Bad Request"); err != nil {
				t.Fatal(err)
			}
		}
	}
	failed, err := ob.Failed(ctx, "o", 2*maxFailedJobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != maxFailedJobs || failed[0].AlertID != in[len(in)-1].ID || failed[0].Reason != "400 Bad Request" || failed[0].DeliveryID == "" {
		t.Fatalf("Failed = %d jobs, newest %+v; want %d, newest of alert %s with its reason", len(failed), failed[0], maxFailedJobs, in[len(in)-1].ID)
	}
	st, err := ob.Stats("o")
	if err != nil || st.Queued != 0 || st.Failed != int64(len(in)) {
		t.Fatalf("Stats = %+v, %v; want none queued, %d failed", st, err, len(in))
	}
}

func TestOutboxDropsTheOldestBeyondItsBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	opts := Options{Outputs: []string{"a", "b"}, OutboxMax: 5}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ids []string
	for i := range 4 { // 8 jobs: 3 too many
		al := alertAt(int64(100+i), "r1", fmt.Sprint("k", i))
		if _, err := s.Put(ctx, []alert.Alert{al}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, al.ID)
	}
	s.Close()
	// The counters are on disk.
	s, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ob := s.Outbox()
	_, gotA := dueView(t, ob, "a")
	_, gotB := dueView(t, ob, "b")
	// Jobs were queued a0 b0 a1 b1 ...: a0, b0 and a1 went.
	if diff := cmp.Diff([]jobView{{KindNew, ids[2], 0}, {KindNew, ids[3], 0}}, gotA); diff != "" {
		t.Errorf("Due(a) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]jobView{{KindNew, ids[1], 0}, {KindNew, ids[2], 0}, {KindNew, ids[3], 0}}, gotB); diff != "" {
		t.Errorf("Due(b) (-want +got):\n%s", diff)
	}
	stA, _ := ob.Stats("a")
	stB, _ := ob.Stats("b")
	if stA.Dropped != 2 || stB.Dropped != 1 || stA.Queued != 2 || stB.Queued != 3 {
		t.Errorf("Stats = %+v, %+v; want a: 2 queued 2 dropped, b: 3 queued 1 dropped", stA, stB)
	}
}

func TestOutboxFilterAndNoOutputs(t *testing.T) {
	s := openWith(t, Options{Outputs: []string{"all", "high"}, OutboxFilter: func(out string, a *alert.Alert) bool {
		return out != "high" || a.Rule.Level == "high"
	}})
	ctx := context.Background()
	low := alertAt(100, "r-low", "k1")
	low.Rule.Level = "low"
	if _, err := s.Put(ctx, []alert.Alert{low, alertAt(101, "r-high", "k1")}); err != nil {
		t.Fatal(err)
	}
	if _, got := dueView(t, s.Outbox(), "all"); len(got) != 2 {
		t.Errorf("Due(all) = %v; want both alerts", got)
	}
	if _, got := dueView(t, s.Outbox(), "high"); len(got) != 1 || got[0].Alert == low.ID {
		t.Errorf("Due(high) = %v; want the high alert only", got)
	}
	queues, err := s.Outbox().Queues()
	if err != nil || len(queues) != 2 {
		t.Errorf("Queues = %v, %v; want all and high", queues, err)
	}

	plain := openWith(t, Options{})
	if _, err := plain.Put(ctx, []alert.Alert{alertAt(100, "r1", "k1")}); err != nil {
		t.Fatal(err)
	}
	if queues, _ := plain.Outbox().Queues(); len(queues) != 0 {
		t.Errorf("Queues with no outputs = %v; want none", queues)
	}
}
