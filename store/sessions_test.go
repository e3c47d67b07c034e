package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestSessions(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	now := time.Now()
	if ok, err := s.LookupSession(ctx, "k1", now); ok || err != nil {
		t.Fatalf("LookupSession before any session = %v, %v; want false, nil", ok, err)
	}
	if err := s.CreateSession(ctx, "k1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, "k2", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, "", now.Add(time.Hour)); err == nil {
		t.Error("CreateSession with an empty key succeeded")
	}
	tests := []struct {
		key  string
		at   time.Time
		want bool
	}{
		{"k1", now, true},
		{"k2", now, true},
		{"k3", now, false},
		{"k1", now.Add(2 * time.Hour), false}, // expired
	}
	for _, tt := range tests {
		if got, err := s.LookupSession(ctx, tt.key, tt.at); got != tt.want || err != nil {
			t.Errorf("LookupSession(%q, %v) = %v, %v; want %v", tt.key, tt.at, got, err, tt.want)
		}
	}
	if err := s.DeleteSession(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "unknown"); err != nil {
		t.Errorf("DeleteSession of an unknown key = %v; want nil", err)
	}
	if ok, _ := s.LookupSession(ctx, "k1", now); ok {
		t.Error("session k1 still valid after DeleteSession")
	}
	// Sessions survive a restart.
	s.Close()
	s2, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if ok, err := s2.LookupSession(ctx, "k2", now); !ok || err != nil {
		t.Errorf("LookupSession(k2) after reopening = %v, %v; want true", ok, err)
	}
}

func TestSessionsBounded(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "alerts.db"), Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer func(n int) { maxSessions = n }(maxSessions)
	maxSessions = 10
	ctx := context.Background()
	now := time.Now()
	// An expired session is purged by the next creation.
	if err := s.CreateSession(ctx, "old", now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for i := range maxSessions + 5 {
		if err := s.CreateSession(ctx, fmt.Sprintf("k%04d", i), now.Add(time.Hour+time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketSessions).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != maxSessions {
		t.Errorf("%d sessions stored; want %d", n, maxSessions)
	}
	// The ones that expire first went; the newest stay.
	if ok, _ := s.LookupSession(ctx, "k0000", now); ok {
		t.Error("the session expiring first survived past maxSessions")
	}
	if ok, _ := s.LookupSession(ctx, fmt.Sprintf("k%04d", maxSessions+4), now); !ok {
		t.Error("the newest session is missing")
	}
}
