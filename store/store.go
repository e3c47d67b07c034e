// Package store keeps alerts in a bbolt database on disk.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/raywatch/raywatch/engine"
)

// ErrNotFound is returned for an alert id that is not in the store.
var ErrNotFound = errors.New("alert not found")

var bucketAlerts = []byte("alerts")

// Options configures [Open].
type Options struct {
	// Timeout bounds the wait for the database file lock (another raywatch
	// using the same data folder). Zero means 5 seconds.
	Timeout time.Duration
}

// Store is the alert store. Its methods are safe for concurrent use.
type Store struct {
	db        *bolt.DB
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the bbolt database at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketAlerts)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %q: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}

// Put commits alerts durably and returns those that were not already stored
// (an alert whose ID is present is left as it is, so that retried batches
// create no duplicates). When Put returns, the new alerts are on disk.
func (s *Store) Put(ctx context.Context, alerts []engine.Alert) ([]engine.Alert, error) {
	if len(alerts) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	encoded := make([][]byte, len(alerts))
	for i := range alerts {
		b, err := json.Marshal(&alerts[i])
		if err != nil {
			return nil, fmt.Errorf("encode alert %s: %w", alerts[i].ID, err)
		}
		encoded[i] = b
	}
	var fresh []engine.Alert
	err := s.db.Update(func(tx *bolt.Tx) error {
		fresh = fresh[:0]
		b := tx.Bucket(bucketAlerts)
		for i := range alerts {
			key := []byte(alerts[i].ID)
			if b.Get(key) != nil {
				continue
			}
			if err := b.Put(key, encoded[i]); err != nil {
				return err
			}
			fresh = append(fresh, alerts[i])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store alerts: %w", err)
	}
	return fresh, nil
}

// Query selects alerts for [Store.List].
type Query struct {
	// Limit is the page size; 0 means 50, and it is capped at 1000.
	Limit int
	// Cursor continues a listing: the Next of the previous page.
	Cursor string
}

// List returns alerts newest first (by ID, which starts with the event time)
// and the cursor of the next page ("" when there is none).
func (s *Store) List(ctx context.Context, q Query) ([]engine.Alert, string, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.Limit > 1000 {
		q.Limit = 1000
	}
	var out []engine.Alert
	next := ""
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		var k, v []byte
		if q.Cursor == "" {
			k, v = c.Last()
		} else {
			k, v = c.Seek([]byte(q.Cursor))
			if k == nil {
				k, v = c.Last()
			}
			// The cursor is the last ID of the previous page: start below it.
			for k != nil && bytes.Compare(k, []byte(q.Cursor)) >= 0 {
				k, v = c.Prev()
			}
		}
		for ; k != nil; k, v = c.Prev() {
			if len(out) == q.Limit {
				next = out[len(out)-1].ID
				return nil
			}
			a, err := decodeAlert(v)
			if err != nil {
				return fmt.Errorf("decode alert %s: %w", k, err)
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

// Get returns one alert by id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (engine.Alert, error) {
	var a engine.Alert
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
		return engine.Alert{}, fmt.Errorf("get alert %q: %w", id, err)
	}
	return a, nil
}

// decodeAlert decodes a stored alert, keeping numbers exact. The decoder
// copies what it keeps, so v may be memory owned by a bbolt transaction.
func decodeAlert(v []byte) (engine.Alert, error) {
	var a engine.Alert
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	err := d.Decode(&a)
	return a, err
}
