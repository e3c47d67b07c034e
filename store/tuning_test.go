package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/rules/exception"
)

func TestExceptionsCRUD(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	in := exception.Exception{Rule: "*", Comment: "our scanner", CreatedBy: "ana", Match: map[string]exception.Values{"source.ip": {"198.51.100.7"}}, Expires: now.Add(24 * time.Hour)}
	a, err := s.PutException(ctx, in, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.ID) != 20 || !a.CreatedAt.Equal(now) || a.CreatedBy != "ana" {
		t.Errorf("PutException = %+v; want a 20-digit id, created now by ana", a)
	}
	b, err := s.PutException(ctx, exception.Exception{Rule: "r1", Comment: "health", Match: map[string]exception.Values{"url.path|startswith": {"/health"}}}, now.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if b.ID <= a.ID {
		t.Errorf("ids %s then %s; want them in creation order", a.ID, b.ID)
	}
	bad := []struct {
		x    exception.Exception
		want string
	}{
		{exception.Exception{Rule: "*", Match: map[string]exception.Values{"source.ip": {"1.2.3.4"}}}, "comment"},
		{exception.Exception{Rule: "*", Comment: "c", Match: map[string]exception.Values{"source.ip": {"nope"}}}, "not an IP address"},
		{exception.Exception{Rule: "*", Comment: "c", Match: map[string]exception.Values{"source.ip": {"1.2.3.4"}}, Expires: now}, "not in the future"},
	}
	for _, tc := range bad {
		if _, err := s.PutException(ctx, tc.x, now); !errors.Is(err, ErrBadException) || !contains(err.Error(), tc.want) {
			t.Errorf("PutException(%+v) = %v; want ErrBadException saying %q", tc.x, err, tc.want)
		}
	}

	// Usage adds up, keeps the latest time, and ignores unknown ids.
	t1, t2 := now.Add(time.Minute), now.Add(2*time.Minute)
	if err := s.AddExceptionUsage(ctx, []exception.Exception{{ID: a.ID, Suppressed: 3, LastSuppressed: t2}, {ID: "gone", Suppressed: 9, LastSuppressed: t2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddExceptionUsage(ctx, []exception.Exception{{ID: a.ID, Suppressed: 2, LastSuppressed: t1}}); err != nil {
		t.Fatal(err)
	}
	// Replacing an exception keeps its creation time and counts.
	edited := a
	edited.Comment = "our scanner, new address"
	edited.Match = map[string]exception.Values{"source.ip": {"198.51.100.8"}}
	edited.CreatedAt, edited.Suppressed = time.Time{}, 0
	if _, err := s.PutException(ctx, edited, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.ListExceptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []exception.Exception{
		{ID: a.ID, Rule: "*", Comment: "our scanner, new address", CreatedBy: "ana", CreatedAt: now, Match: map[string]exception.Values{"source.ip": {"198.51.100.8"}}, Expires: now.Add(24 * time.Hour), Suppressed: 5, LastSuppressed: t2},
		{ID: b.ID, Rule: "r1", Comment: "health", CreatedAt: now.Add(time.Millisecond), Match: map[string]exception.Values{"url.path|startswith": {"/health"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListExceptions after reopen (-want +got):\n%s", diff)
	}
	if x, err := s.GetException(ctx, b.ID); err != nil || x.Comment != "health" {
		t.Errorf("GetException = %+v, %v", x, err)
	}
	if err := s.DeleteException(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteException(ctx, a.ID); !errors.Is(err, ErrExceptionNotFound) {
		t.Errorf("second DeleteException = %v; want ErrExceptionNotFound", err)
	}
	if _, err := s.GetException(ctx, a.ID); !errors.Is(err, ErrExceptionNotFound) {
		t.Errorf("GetException(deleted) = %v; want ErrExceptionNotFound", err)
	}
	if left, _ := s.ListExceptions(ctx); len(left) != 1 || left[0].ID != b.ID {
		t.Errorf("after delete: %+v; want only %s", left, b.ID)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestRuleAlertBudget: a rule creating more new alerts in a minute than
// its budget stops creating them for the rest of the minute; its records
// still count into its existing alerts, and other rules are not affected.
func TestRuleAlertBudget(t *testing.T) {
	var mu sync.Mutex
	var hooked []Throttle
	path := filepath.Join(t.TempDir(), "alerts.db")
	s, err := Open(path, Options{GroupWindow: time.Hour, RuleAlertBudget: 3, OnThrottle: func(th Throttle) {
		mu.Lock()
		hooked = append(hooked, th)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	base := int64(1795500000) // a whole hour, and minute
	ip := func(i int) string { return fmt.Sprintf("203.0.113.%d", i) }
	var noisy []alert.Alert
	for i := range 5 { // five sources: five new alerts wanted, three allowed
		noisy = append(noisy, hit(base+int64(i), "noisy", fmt.Sprint("n", i), ip(i), "a.example", "ua"))
	}
	noisy = append(noisy, hit(base+10, "quiet", "q0", ip(9), "a.example", "ua"))
	changed, err := s.Commit(ctx, Batch{ID: "b1", Alerts: noisy})
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 4 {
		t.Fatalf("first batch changed %d alerts; want 3 noisy + 1 quiet", len(changed))
	}
	// Same minute: a record of an existing alert is counted; a record of a
	// new source is dropped. Next minute: the budget starts again.
	more := []alert.Alert{
		hit(base+20, "noisy", "n10", ip(0), "a.example", "ua"),
		hit(base+21, "noisy", "n11", ip(7), "a.example", "ua"),
		hit(base+61, "noisy", "n12", ip(8), "a.example", "ua"),
	}
	changed, err = s.Commit(ctx, Batch{ID: "b2", Alerts: more})
	if err != nil {
		t.Fatal(err)
	}
	var counts []int
	for _, a := range changed {
		counts = append(counts, a.Count)
	}
	if diff := cmp.Diff([]int{2, 1}, counts); diff != "" {
		t.Errorf("second batch changed alerts with counts (-want +got):\n%s", diff)
	}
	got, err := s.Throttled(ctx, time.Unix(base-3600, 0))
	if err != nil {
		t.Fatal(err)
	}
	minute := time.Unix(base, 0).UTC()
	want := []Throttle{{Rule: "noisy", Minute: minute, Created: 3, Dropped: 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Throttled (-want +got):\n%s", diff)
	}
	mu.Lock()
	if diff := cmp.Diff([]Throttle{{Rule: "noisy", Minute: minute, Created: 3, Dropped: 1}}, hooked); diff != "" {
		t.Errorf("OnThrottle calls (-want +got):\n%s", diff)
	}
	mu.Unlock()
	st, _ := s.Stats(ctx)
	for _, r := range st.Rules {
		if r.Rule == "noisy" && (r.Alerts != 4 || r.Events != 5) {
			t.Errorf("noisy counters = %+v; want 4 alerts (3 + 1 next minute), 5 events", r)
		}
	}
	// Prune forgets the counts of old minutes.
	if _, err := s.Prune(ctx, minute.Add(budgetMemory+2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Throttled(ctx, time.Time{}); len(got) != 0 {
		t.Errorf("Throttled after a day's prune = %+v; want none", got)
	}
	// A dropped record was not marked seen: once the budget allows (here:
	// without a budget), its retry creates its alert.
	s.Close()
	s, err = Open(path, Options{GroupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if changed, _ := s.Commit(ctx, Batch{ID: "b3", Alerts: noisy[3:4]}); len(changed) != 1 || changed[0].Count != 1 {
		t.Errorf("retry of a dropped record without budget: %+v; want a new alert", changed)
	}
}

func TestCloseReason(t *testing.T) {
	s := openWith(t, Options{})
	ctx := context.Background()
	a1, a2 := alertAt(100, "r", "k1"), alertAt(101, "r", "k2")
	s.Put(ctx, []alert.Alert{a1, a2})
	at := time.Unix(200, 0).UTC()
	close := func(id, reason string) error {
		_, err := s.Transition(ctx, id, alert.StatusChange{Status: alert.StatusClosed, By: "ana", At: at, Reason: reason})
		return err
	}
	if err := close(a1.ID, alert.ReasonFalsePositive); err != nil {
		t.Fatal(err)
	}
	if err := close(a1.ID, alert.ReasonFalsePositive); err != nil { // the same again: not counted twice
		t.Fatal(err)
	}
	if err := close(a2.ID, ""); err != nil { // closed without a reason
		t.Fatal(err)
	}
	if err := close(a2.ID, alert.ReasonBenign); err != nil { // the reason given later
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, a2.ID)
	if n := len(got.StatusHistory); n != 2 || got.StatusHistory[1].Reason != alert.ReasonBenign {
		t.Errorf("history = %+v; want the close, then the reason", got.StatusHistory)
	}
	for _, bad := range []alert.StatusChange{{Status: alert.StatusClosed, Reason: "meh"}, {Status: alert.StatusAcknowledged, Reason: alert.ReasonBenign}} {
		if _, err := s.Transition(ctx, a1.ID, bad); !errors.Is(err, ErrBadStatus) {
			t.Errorf("Transition(%+v) = %v; want ErrBadStatus", bad, err)
		}
	}
	st, _ := s.Stats(ctx)
	if len(st.Rules) != 1 || !cmp.Equal(st.Rules[0].Closed, map[string]int64{alert.ReasonFalsePositive: 1, alert.ReasonBenign: 1}) {
		t.Errorf("Stats rules = %+v; want closed false_positive 1, benign 1", st.Rules)
	}
	rs, err := s.RuleStats(ctx)
	if err != nil || !cmp.Equal(rs, st.Rules) {
		t.Errorf("RuleStats = %+v, %v; want Stats' rules %+v", rs, err, st.Rules)
	}
}
