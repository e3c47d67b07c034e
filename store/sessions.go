package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketSessions holds the dashboard's login sessions: session key ->
// expiry (Unix nanoseconds, big endian). It is created by the first
// [Store.CreateSession].
var bucketSessions = []byte("sessions")

// maxSessions bounds the stored sessions: creating one more deletes the
// one that expires first. A variable for tests.
var maxSessions = 1000

// errBadSessionKey is returned for an empty session key.
var errBadSessionKey = errors.New("empty session key")

// CreateSession stores the session key until expires, deleting the
// sessions that have expired and, beyond a thousand, the ones that
// expire first. key is opaque to the store (the web server stores a keyed
// digest of the cookie, never the cookie itself). It is safe for
// concurrent use.
func (s *Store) CreateSession(ctx context.Context, key string, expires time.Time) error {
	if key == "" {
		return fmt.Errorf("create session: %w", errBadSessionKey)
	}
	now := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSessions)
		if err != nil {
			return err
		}
		var (
			stale    [][]byte
			soonest  []byte
			soonestT int64
			n        int
		)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			exp := int64(u64(v))
			if exp <= now.UnixNano() {
				stale = append(stale, append([]byte(nil), k...))
				continue
			}
			n++
			if soonest == nil || exp < soonestT {
				soonest, soonestT = append([]byte(nil), k...), exp
			}
		}
		if n >= maxSessions && soonest != nil {
			stale = append(stale, soonest)
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, uint64(expires.UnixNano()))
		return b.Put([]byte(key), v)
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// LookupSession reports whether the session key is stored and has not
// expired at now. It is safe for concurrent use.
func (s *Store) LookupSession(ctx context.Context, key string, now time.Time) (bool, error) {
	ok := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b == nil || key == "" {
			return nil
		}
		v := b.Get([]byte(key))
		ok = v != nil && int64(u64(v)) > now.UnixNano()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("look up session: %w", err)
	}
	return ok, nil
}

// DeleteSession deletes the session key (log out). Deleting an unknown key
// is not an error. It is safe for concurrent use.
func (s *Store) DeleteSession(ctx context.Context, key string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
