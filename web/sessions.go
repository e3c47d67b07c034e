package web

import (
	"context"
	"sync"
	"time"
)

// SessionStore keeps the dashboard's login sessions server-side, so that
// logging out (and a new dashboard token) revokes them. Keys are opaque:
// the server stores a digest of the session cookie keyed by the dashboard
// token, never the cookie, so a session made under another token is never
// found. Implementations must be safe for concurrent use; the store
// package's Store is one (bbolt, bucket "sessions").
type SessionStore interface {
	// CreateSession stores key until expires. The implementation may
	// delete expired sessions, and the oldest ones beyond a bound.
	CreateSession(ctx context.Context, key string, expires time.Time) error
	// LookupSession reports whether key is stored and unexpired at now.
	LookupSession(ctx context.Context, key string, now time.Time) (bool, error)
	// DeleteSession deletes key; an unknown key is not an error.
	DeleteSession(ctx context.Context, key string) error
}

// maxMemSessions bounds the sessions of [memSessions].
const maxMemSessions = 1000

// memSessions is the SessionStore used when Options.Sessions is nil:
// sessions last until the process ends.
type memSessions struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func newMemSessions() *memSessions { return &memSessions{m: map[string]time.Time{}} }

func (s *memSessions) CreateSession(_ context.Context, key string, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var soonest string
	for k, exp := range s.m {
		if !exp.After(now) {
			delete(s.m, k)
		} else if soonest == "" || exp.Before(s.m[soonest]) {
			soonest = k
		}
	}
	if len(s.m) >= maxMemSessions {
		delete(s.m, soonest)
	}
	s.m[key] = expires
	return nil
}

func (s *memSessions) LookupSession(_ context.Context, key string, now time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.m[key]
	return ok && exp.After(now), nil
}

func (s *memSessions) DeleteSession(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}
