package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/raywatch/raywatch/rules/exception"
)

// Errors of the exception methods.
var (
	// ErrExceptionNotFound is returned for an exception id that is not in
	// the store.
	ErrExceptionNotFound = errors.New("exception not found")
	// ErrBadException wraps the reason an exception is refused (its form,
	// or an expiry in the past).
	ErrBadException = errors.New("invalid exception")
)

// newExceptionID returns an id that sorts by creation time: 12 hex digits
// of milliseconds then 8 random hex digits.
func newExceptionID(now time.Time) (string, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%012x", now.UnixMilli()) + hex.EncodeToString(r[:]), nil
}

// PutException stores x and returns it as stored. An exception without an
// ID is new: it gets an id and, when it has none, CreatedAt = now. One with
// an ID replaces the stored exception of that id (keeping its creation
// time and suppression counts) or is created under it. Errors wrap
// ErrBadException when x is invalid ([exception.Exception.Validate]) or
// expires at or before now. Safe for concurrent use.
func (s *Store) PutException(ctx context.Context, x exception.Exception, now time.Time) (exception.Exception, error) {
	if err := ctx.Err(); err != nil {
		return exception.Exception{}, err
	}
	if err := x.Validate(); err != nil {
		return exception.Exception{}, fmt.Errorf("%w: %v", ErrBadException, err)
	}
	if !x.Expires.IsZero() && !x.Expires.After(now) {
		return exception.Exception{}, fmt.Errorf("%w: expires %s is not in the future", ErrBadException, x.Expires.Format(time.RFC3339))
	}
	if x.ID == "" {
		id, err := newExceptionID(now)
		if err != nil {
			return exception.Exception{}, fmt.Errorf("exception id: %w", err)
		}
		x.ID = id
	}
	if x.CreatedAt.IsZero() {
		x.CreatedAt = now
	}
	x.CreatedAt = x.CreatedAt.UTC()
	x.Suppressed, x.LastSuppressed = 0, time.Time{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketExceptions)
		if v := b.Get([]byte(x.ID)); v != nil {
			var old exception.Exception
			if err := json.Unmarshal(v, &old); err != nil {
				return fmt.Errorf("decode exception %s: %w", x.ID, err)
			}
			x.CreatedAt, x.Suppressed, x.LastSuppressed = old.CreatedAt, old.Suppressed, old.LastSuppressed
		}
		v, err := json.Marshal(&x)
		if err != nil {
			return err
		}
		return b.Put([]byte(x.ID), v)
	})
	if err != nil {
		return exception.Exception{}, fmt.Errorf("put exception %s: %w", x.ID, err)
	}
	return x, nil
}

// ListExceptions returns every stored exception, expired ones included,
// oldest first, with the suppression counts stored so far.
func (s *Store) ListExceptions(ctx context.Context) ([]exception.Exception, error) {
	out := []exception.Exception{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketExceptions).ForEach(func(k, v []byte) error {
			var x exception.Exception
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("decode exception %s: %w", k, err)
			}
			out = append(out, x)
			return ctx.Err()
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list exceptions: %w", err)
	}
	return out, nil
}

// GetException returns the exception id, or an error wrapping
// ErrExceptionNotFound.
func (s *Store) GetException(ctx context.Context, id string) (exception.Exception, error) {
	var x exception.Exception
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketExceptions).Get([]byte(id))
		if v == nil {
			return ErrExceptionNotFound
		}
		return json.Unmarshal(v, &x)
	})
	if err != nil {
		return exception.Exception{}, fmt.Errorf("get exception %q: %w", id, err)
	}
	return x, nil
}

// DeleteException deletes the exception id, or returns an error wrapping
// ErrExceptionNotFound.
func (s *Store) DeleteException(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketExceptions)
		if b.Get([]byte(id)) == nil {
			return ErrExceptionNotFound
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete exception %q: %w", id, err)
	}
	return nil
}

// AddExceptionUsage adds, for each element of usage, its Suppressed to the
// stored count of the exception with its ID, and keeps the later of the
// stored and given LastSuppressed. Ids that are not stored (exceptions
// deleted meanwhile) are ignored. It implements the engine's UsageSink.
func (s *Store) AddExceptionUsage(ctx context.Context, usage []exception.Exception) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketExceptions)
		for _, u := range usage {
			v := b.Get([]byte(u.ID))
			if v == nil {
				continue
			}
			var x exception.Exception
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("decode exception %s: %w", u.ID, err)
			}
			x.Suppressed += u.Suppressed
			if u.LastSuppressed.After(x.LastSuppressed) {
				x.LastSuppressed = u.LastSuppressed.UTC()
			}
			nv, err := json.Marshal(&x)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(u.ID), nv); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add exception usage: %w", err)
	}
	return nil
}
