package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
)

func openWith(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "alerts.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// hit is a per-record alert of rule on a request from ip to host at sec.
func hit(sec int64, rule, key, ip, host, ua string) alert.Alert {
	a := alertAt(sec, rule, key)
	a.Event = map[string]any{
		"source":      map[string]any{"ip": ip},
		"destination": map[string]any{"address": host},
		"user_agent":  map[string]any{"original": ua},
	}
	return a
}

func TestGroupingCountsEachRecordOnce(t *testing.T) {
	s := openWith(t, Options{GroupWindow: time.Hour, Samples: 2})
	ctx := context.Background()
	base := int64(1795500000) // a whole hour
	batch1 := []alert.Alert{
		hit(base+30, "r1", "k3", "203.0.113.1", "a.example", "ua1"),
		hit(base+10, "r1", "k1", "203.0.113.1", "a.example", "ua1"),
		hit(base+20, "r1", "k2", "203.0.113.1", "a.example", "ua1"),
		hit(base+20, "r1", "k4", "203.0.113.2", "a.example", "ua2"),  // other IP
		hit(base+20, "r2", "k2", "203.0.113.1", "a.example", "ua1"),  // other rule
		hit(base+3600, "r1", "k5", "203.0.113.1", "a.example", "ua"), // next window
	}
	if _, err := s.Commit(ctx, Batch{ID: "b1", Alerts: batch1}); err != nil {
		t.Fatal(err)
	}
	// A retry of the batch under another id, a record seen again, and a
	// new record of the first group.
	batch2 := append(append([]alert.Alert{}, batch1...), hit(base+5, "r1", "k6", "203.0.113.1", "a.example", "ua1"))
	changed, err := s.Commit(ctx, Batch{ID: "b2", Alerts: batch2})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].Count != 4 {
		t.Fatalf("second commit changed %d alerts (%+v); want only the first group, count 4", len(changed), changed)
	}
	g := changed[0]
	if !g.FirstSeen.Equal(time.Unix(base+5, 0)) || !g.LastSeen.Equal(time.Unix(base+30, 0)) || g.RecordKey != "k6" {
		t.Errorf("group first %v last %v key %s; want base+5, base+30, k6", g.FirstSeen, g.LastSeen, g.RecordKey)
	}
	if len(g.Samples) != 2 || g.Samples[0].RecordKey != "k6" || g.Samples[1].RecordKey != "k1" {
		t.Errorf("samples = %+v; want the 2 earliest, k6 then k1", g.Samples)
	}
	all, _, err := s.List(ctx, Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Errorf("%d alerts; want 4 (group, other IP, other rule, next window)", len(all))
	}
	// The same batch id again is a no-op.
	if changed, err := s.Commit(ctx, Batch{ID: "b1", Alerts: batch2}); err != nil || len(changed) != 0 {
		t.Errorf("Commit of a committed batch = %d changed, %v; want nothing", len(changed), err)
	}
	if done, _ := s.BatchDone("b2"); !done {
		t.Error("BatchDone(b2) = false")
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var r1 RuleStats
	for _, r := range st.Rules {
		if r.Rule == "r1" {
			r1 = r
		}
	}
	if st.Alerts != 4 || r1.Alerts != 3 || r1.Events != 6 || st.ByStatus["new"] != 4 {
		t.Errorf("stats = %+v; want 4 alerts, r1: 3 alerts of 6 events", st)
	}
}

func TestGroupingIsOrderIndependent(t *testing.T) {
	var hits []alert.Alert
	for i := range 20 {
		hits = append(hits, hit(1795500000+int64(i*7%60), "r", fmt.Sprint("k", i), fmt.Sprint("198.51.100.", i%3), "h", "ua"))
	}
	ctx := context.Background()
	a, b := openWith(t, Options{GroupWindow: time.Hour}), openWith(t, Options{GroupWindow: time.Hour})
	for i := range hits {
		a.Commit(ctx, Batch{Alerts: hits[i : i+1]})
		b.Commit(ctx, Batch{Alerts: hits[len(hits)-1-i : len(hits)-i]})
	}
	la, _, _ := a.List(ctx, Query{})
	lb, _, _ := b.List(ctx, Query{})
	if len(la) != 3 || len(lb) != 3 {
		t.Fatalf("%d and %d alerts; want 3 each", len(la), len(lb))
	}
	for i := range la {
		if la[i].ID != lb[i].ID || la[i].Count != lb[i].Count || la[i].RecordKey != lb[i].RecordKey || len(la[i].Samples) != len(lb[i].Samples) {
			t.Errorf("alert %d differs with the arrival order: %s/%d/%s vs %s/%d/%s", i, la[i].ID, la[i].Count, la[i].RecordKey, lb[i].ID, lb[i].Count, lb[i].RecordKey)
		}
	}
}

func TestListFilters(t *testing.T) {
	s := openWith(t, Options{})
	ctx := context.Background()
	var in []alert.Alert
	for i := range 30 {
		a := hit(int64(1000+i), fmt.Sprint("r", i%3), fmt.Sprint("k", i), fmt.Sprint("192.0.2.", i), fmt.Sprint("host", i%2, ".example"), fmt.Sprint("Agent/", i))
		a.Intake = fmt.Sprint("zone", i%2)
		if i%5 == 0 {
			a.Rule.Level = "critical"
		}
		in = append(in, a)
	}
	if _, err := s.Put(ctx, in); err != nil {
		t.Fatal(err)
	}
	some, _, _ := s.List(ctx, Query{Rule: "r1"})
	if _, err := s.SetStatus(ctx, some[0].ID, alert.StatusClosed, "bob", time.Now()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		q    Query
		want int
	}{
		{Query{}, 30},
		{Query{Rule: "r1"}, 10},
		{Query{Level: "CRITICAL"}, 6},
		{Query{Status: "closed"}, 1},
		{Query{Status: "new"}, 29},
		{Query{Rule: "r1", Status: "new"}, 9},
		{Query{Intake: "zone1"}, 15},
		{Query{From: time.Unix(1010, 0), To: time.Unix(1019, 0)}, 10},
		{Query{From: time.Unix(1025, 0)}, 5},
		{Query{Text: "192.0.2.17"}, 1},
		{Query{Text: "HOST1.example"}, 15},
		{Query{Text: "agent/2"}, 11}, // 2, 20..29
		{Query{Rule: "nope"}, 0},
	}
	for _, tt := range tests {
		n := 0
		cursor := ""
		for page := 0; page < 20; page++ {
			q := tt.q
			q.Limit, q.Cursor = 4, cursor
			got, next, err := s.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range got {
				if !q.matches(&a, "") {
					t.Errorf("List(%+v) returned %s, which does not match", tt.q, a.ID)
				}
				if i > 0 && got[i-1].ID <= a.ID {
					t.Errorf("List(%+v) not newest first", tt.q)
				}
			}
			n += len(got)
			if next == "" {
				break
			}
			cursor = next
		}
		if n != tt.want {
			t.Errorf("List(%+v) gave %d alerts; want %d", tt.q, n, tt.want)
		}
	}
}

func TestSetStatus(t *testing.T) {
	s := openWith(t, Options{})
	ctx := context.Background()
	a := alertAt(100, "r", "k")
	s.Put(ctx, []alert.Alert{a})
	at := time.Unix(200, 0).UTC()
	got, err := s.SetStatus(ctx, a.ID, alert.StatusAcknowledged, "alice", at)
	if err != nil || got.Status != "acknowledged" || len(got.StatusHistory) != 1 || got.StatusHistory[0] != (alert.StatusChange{Status: "acknowledged", By: "alice", At: at}) {
		t.Fatalf("SetStatus = %+v, %v", got, err)
	}
	if _, err := s.SetStatus(ctx, a.ID, "bogus", "x", at); !errors.Is(err, ErrBadStatus) {
		t.Errorf("SetStatus(bogus) = %v; want ErrBadStatus", err)
	}
	if _, err := s.SetStatus(ctx, "nope", "closed", "x", at); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetStatus(unknown id) = %v; want ErrNotFound", err)
	}
	// A retried record does not reopen or recount the alert.
	s.Put(ctx, []alert.Alert{a})
	got, _ = s.Get(ctx, a.ID)
	if got.Status != "acknowledged" || got.Count != 1 {
		t.Errorf("after a retry: status %s count %d; want acknowledged, 1", got.Status, got.Count)
	}
}

func TestPrune(t *testing.T) {
	now := time.Unix(100000, 0)
	s := openWith(t, Options{MaxAge: time.Hour, MaxAlerts: 5})
	ctx := context.Background()
	var in []alert.Alert
	for i := range 10 {
		in = append(in, alertAt(now.Unix()-7200+int64(i), "r", fmt.Sprint("old", i))) // 2 h old
	}
	for i := range 8 {
		in = append(in, alertAt(now.Unix()-60+int64(i), "r", fmt.Sprint("new", i)))
	}
	s.Put(ctx, in)
	n, err := s.Prune(ctx, now)
	if err != nil || n != 13 {
		t.Fatalf("Prune = %d, %v; want 13 (10 too old, then 3 over the count)", n, err)
	}
	left, _, _ := s.List(ctx, Query{})
	if len(left) != 5 || left[4].RecordKey != "new3" {
		t.Errorf("left %d alerts, oldest %s; want the 5 newest", len(left), left[len(left)-1].RecordKey)
	}
	st, _ := s.Stats(ctx)
	if st.Alerts != 5 || st.ByStatus["new"] != 5 {
		t.Errorf("stats after prune = %+v; want 5 alerts", st)
	}
	// A pruned alert's records are forgotten too: the bucket holds nothing
	// for them.
	s.Put(ctx, in[:1])
	if st, _ := s.Stats(ctx); st.Alerts != 6 {
		t.Errorf("re-put of a pruned record: %d alerts; want 6", st.Alerts)
	}
}

func TestRejectsBounded(t *testing.T) {
	s := openWith(t, Options{MaxRejects: 3})
	ctx := context.Background()
	for i := range 5 {
		if _, err := s.Commit(ctx, Batch{ID: fmt.Sprint("b", i), Rejects: []Reject{{Record: i, Reason: "bad"}}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Rejects(ctx, 10)
	if err != nil || len(got) != 3 || got[0].Record != 4 || got[2].Record != 2 {
		t.Errorf("Rejects = %+v, %v; want records 4, 3, 2", got, err)
	}
}

// TestCommitAllEqualsCommitsInOrder checks that batches committed in one
// transaction give what one Commit each gives: counts across batches that
// touch the same group, skipped committed batches, per-batch changes.
func TestCommitAllEqualsCommitsInOrder(t *testing.T) {
	ctx := context.Background()
	base := int64(1795500000)
	batches := []Batch{
		{ID: "b1", Alerts: []alert.Alert{hit(base+10, "r1", "k1", "203.0.113.1", "a.example", "ua"), hit(base+20, "r2", "k1", "203.0.113.1", "a.example", "ua")}},
		{ID: "b2", Alerts: []alert.Alert{hit(base+5, "r1", "k2", "203.0.113.1", "a.example", "ua"), hit(base+10, "r1", "k1", "203.0.113.1", "a.example", "ua")}},
		{ID: "b1", Alerts: []alert.Alert{hit(base+1, "r1", "k9", "203.0.113.1", "a.example", "ua")}}, // b1 again: skipped
		{ID: "b3", Rejects: []Reject{{Batch: "b3", Record: 2, Reason: "not JSON"}}},
	}
	one := openWith(t, Options{GroupWindow: time.Hour})
	var want [][]alert.Alert
	for _, b := range batches {
		changed, err := one.Commit(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, changed)
	}
	all := openWith(t, Options{GroupWindow: time.Hour})
	got, err := all.CommitAll(ctx, batches)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("CommitAll returned %d change lists; want %d", len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("batch %d: %d changed; want %d", i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			g, w := got[i][j], want[i][j]
			if g.ID != w.ID || g.Count != w.Count || g.RecordKey != w.RecordKey || !g.FirstSeen.Equal(w.FirstSeen) {
				t.Errorf("batch %d alert %d: %s count %d key %s; want %s count %d key %s", i, j, g.ID, g.Count, g.RecordKey, w.ID, w.Count, w.RecordKey)
			}
		}
	}
	if len(got[1]) != 1 || got[1][0].Count != 2 || len(got[2]) != 0 {
		t.Errorf("b2 changed %+v, b1 again %+v; want the r1 group at count 2, then nothing", got[1], got[2])
	}
	for _, id := range []string{"b1", "b2", "b3"} {
		if done, err := all.BatchDone(id); err != nil || !done {
			t.Errorf("BatchDone(%s) = %v, %v", id, done, err)
		}
	}
	rj, err := all.Rejects(ctx, 10)
	if err != nil || len(rj) != 1 || rj[0].Reason != "not JSON" {
		t.Errorf("rejects = %+v, %v; want the one of b3", rj, err)
	}
	sa, _ := one.Stats(ctx)
	sb, _ := all.Stats(ctx)
	if sa.Alerts != sb.Alerts || sa.Alerts != 2 {
		t.Errorf("stats: %d alerts by Commit, %d by CommitAll; want 2 each", sa.Alerts, sb.Alerts)
	}
}

func TestGroupingKeepsRetroAlertsApart(t *testing.T) {
	s := openWith(t, Options{GroupWindow: time.Hour})
	ctx := context.Background()
	base := int64(1795500000)
	live := hit(base+10, "intel", "k1", "203.0.113.9", "a.example", "ua")
	retro := hit(base+20, "intel", "k2#retro:ip:203.0.113.9/32", "203.0.113.9", "a.example", "ua")
	retro.Retro = true
	if _, err := s.Commit(ctx, Batch{Alerts: []alert.Alert{live, retro}}); err != nil {
		t.Fatal(err)
	}
	all, _, err := s.List(ctx, Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("%d alerts; want the live one and the retro one apart", len(all))
	}
	for _, a := range all {
		if a.Retro != (a.RecordKey != "k1") {
			t.Errorf("alert of record %s: Retro = %v", a.RecordKey, a.Retro)
		}
	}
	// The retro alert again (the indicator added once more) counts nothing.
	if changed, err := s.Commit(ctx, Batch{Alerts: []alert.Alert{retro}}); err != nil || len(changed) != 0 {
		t.Errorf("retro alert committed again: %d changed, %v; want none", len(changed), err)
	}
}

// TestRetroRunOfALiveRecord checks that a rule retro-run over a record the
// rule already alerted on live (same record key) counts nothing: the
// record is in the live alert's group; a record the rule never saw live
// makes a retro alert.
func TestRetroRunOfALiveRecord(t *testing.T) {
	s := openWith(t, Options{GroupWindow: time.Hour})
	ctx := context.Background()
	base := int64(1795500000)
	live := hit(base+10, "wp", "k1", "203.0.113.9", "a.example", "ua")
	if _, err := s.Commit(ctx, Batch{Alerts: []alert.Alert{live}}); err != nil {
		t.Fatal(err)
	}
	again := live
	again.Retro = true
	older := hit(base-600, "wp", "k0", "203.0.113.9", "a.example", "ua")
	older.Retro = true
	changed, err := s.Commit(ctx, Batch{Alerts: []alert.Alert{again, older}})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || !changed[0].Retro || changed[0].RecordKey != "k0" {
		t.Errorf("retro-run changed %+v; want only a retro alert of k0", changed)
	}
	all, _, err := s.List(ctx, Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[bool]int{}
	for _, a := range all {
		counts[a.Retro] += a.Count
	}
	if len(all) != 2 || counts[false] != 1 || counts[true] != 1 {
		t.Errorf("alerts %+v; want the live one (count 1) and a retro one for k0 (count 1)", all)
	}
}
