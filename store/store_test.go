package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/rules/alert"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alerts.db")
	s, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func alertAt(sec int64, rule, key string) alert.Alert {
	ts := time.Unix(sec, 0).UTC()
	return alert.Alert{
		ID:        alert.AlertID(ts, rule, key),
		Rule:      alert.RuleRef{ID: rule, Title: "T " + rule, Level: "high", Tags: []string{"attack.t1071.001"}},
		Count:     1,
		FirstSeen: ts,
		LastSeen:  ts,
		Status:    alert.StatusNew,
		Intake:    "default",
		RecordKey: key,
		Matches:   []alert.Match{{Field: "user_agent.original", Value: "x"}},
		Event:     map[string]any{"cloudflare": map[string]any{"EdgeStartTimestamp": "1658281671671000123"}},
	}
}

func TestPutIsIdempotent(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	a, b := alertAt(100, "r1", "k1"), alertAt(200, "r1", "k2")
	fresh, err := s.Put(ctx, []alert.Alert{a, b})
	if err != nil || len(fresh) != 2 {
		t.Fatalf("Put = %d new, %v; want 2, nil", len(fresh), err)
	}
	fresh, err = s.Put(ctx, []alert.Alert{a, b, alertAt(300, "r2", "k1")})
	if err != nil || len(fresh) != 1 || fresh[0].Rule.ID != "r2" {
		t.Fatalf("Put again = %v, %v; want only the r2 alert", fresh, err)
	}
	all, next, err := s.List(ctx, Query{Limit: 10})
	if err != nil || next != "" || len(all) != 3 {
		t.Fatalf("List = %d alerts, next %q, %v; want 3, \"\", nil", len(all), next, err)
	}
}

func TestListNewestFirstWithCursor(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	var in []alert.Alert
	for i := 0; i < 25; i++ {
		in = append(in, alertAt(int64(1000+i), "r", fmt.Sprint(i)))
	}
	if _, err := s.Put(ctx, in); err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor := ""
	pages := 0
	for {
		page, next, err := s.List(ctx, Query{Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, a := range page {
			got = append(got, a.RecordKey)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	var want []string
	for i := 24; i >= 0; i-- {
		want = append(want, fmt.Sprint(i))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged listing (-want +got):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("pages = %d; want 3", pages)
	}
}

func TestGetRoundTripAndReopen(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	a := alertAt(100, "r1", "k1")
	if _, err := s.Put(ctx, []alert.Alert{a}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The 19-digit value must survive exactly.
	cf := got.Event["cloudflare"].(map[string]any)
	if cf["EdgeStartTimestamp"] != "1658281671671000123" {
		t.Errorf("EdgeStartTimestamp = %v; want exact", cf["EdgeStartTimestamp"])
	}
	if got.ID != a.ID || got.Rule.Title != a.Rule.Title || !got.FirstSeen.Equal(a.FirstSeen) {
		t.Errorf("Get = %+v; want %+v", got, a)
	}
	if _, err := s2.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) = %v; want ErrNotFound", err)
	}
}

func TestOpenLockedTimesOut(t *testing.T) {
	_, path := openTemp(t)
	if _, err := Open(path, Options{Timeout: 50 * time.Millisecond}); err == nil {
		t.Error("second Open of a locked store succeeded; want a timeout error")
	}
}

// TestOpenLocked checks that a second Open of a database another handle
// holds fails at once with ErrLocked, naming the file.
func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.db")
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second Open of a locked database succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("second Open = %v; want ErrLocked naming %s", err, path)
	}
}
