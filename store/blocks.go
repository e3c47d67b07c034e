package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The state of the edge block list (raywatch's Cloudflare IP list, see
// cmd/raywatch/internal/block): the addresses listed and until when, the
// addresses a person unblocked (which the rules leave alone for a while),
// and the audit trail of every change.
//
// Layout, inside the bucket "blocks":
//
//	l\x00<address>  -> BlockEntry JSON: the addresses on the list
//	h\x00<address>  -> BlockHold JSON: the addresses the rules must not list
//	a\x00<seq>      -> BlockAudit JSON: the audit trail, oldest first (8 bytes, big endian)
//
// The store keeps the data and its invariants (one entry per address, a
// bounded trail); the block package decides what goes in.

// Actions of the audit trail.
const (
	// BlockActionBlock is an address put on the list (by a rule or a person).
	BlockActionBlock = "block"
	// BlockActionExtend is a listed address seen again in another alert:
	// its time on the list was extended.
	BlockActionExtend = "extend"
	// BlockActionUnblock is an address a person took off the list.
	BlockActionUnblock = "unblock"
	// BlockActionExpire is an address whose time on the list ran out, or
	// that made room when the list was full.
	BlockActionExpire = "expire"
)

// maxBlockAudit bounds the audit trail: beyond it the oldest records go.
const maxBlockAudit = 10000

var (
	blockEntryPrefix = []byte("l\x00")
	blockHoldPrefix  = []byte("h\x00")
	blockAuditPrefix = []byte("a\x00")
)

// BlockEntry is an address on the block list.
type BlockEntry struct {
	// Address is what the list holds: an IPv4 address ("203.0.113.7") or
	// an IPv6 /64 ("2001:db8:1:2::/64").
	Address string `json:"address"`
	// Listed is when it was put on the list; Until is when it comes off.
	Listed time.Time `json:"listed"`
	Until  time.Time `json:"until"`
	// Who listed it: "rule:<rule id>" for an alert's rule, or the person
	// (the dashboard's principal) for a block by hand.
	Who string `json:"who"`
	// Rule and Alert are the rule and alert that listed it (or last
	// extended it); Alert may name the alert a person blocked from.
	Rule  string `json:"rule,omitempty"`
	Alert string `json:"alert,omitempty"`
	// Reason says why, in words.
	Reason string `json:"reason"`
	// Comment is the list item's comment on Cloudflare.
	Comment string `json:"comment,omitempty"`
	// DryRun marks an entry that --block-dry-run only pretended to list:
	// Cloudflare's list does not hold it.
	DryRun bool `json:"dry_run,omitempty"`
}

// BlockHold is an address a person unblocked: the rules do not list it
// again before Until (a person may).
type BlockHold struct {
	Address string    `json:"address"`
	Until   time.Time `json:"until"`
	Who     string    `json:"who"`
}

// BlockAudit is one record of the block list's audit trail.
type BlockAudit struct {
	// Seq orders the trail; [Store.ApplyBlocks] sets it.
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
	// Action is BlockActionBlock, BlockActionExtend, BlockActionUnblock or
	// BlockActionExpire.
	Action  string `json:"action"`
	Address string `json:"address"`
	// Who: "rule:<rule id>", a person, or "raywatch" for an expiry.
	Who    string `json:"who"`
	Rule   string `json:"rule,omitempty"`
	Alert  string `json:"alert,omitempty"`
	Reason string `json:"reason"`
	// Until is, for a block or an extension, when the address comes off.
	Until  time.Time `json:"until,omitzero"`
	DryRun bool      `json:"dry_run,omitempty"`
}

// BlockChange is one atomic change of the block list's state.
type BlockChange struct {
	// Put adds or replaces entries (by address).
	Put []BlockEntry
	// Delete removes the entries of these addresses (absent ones are
	// ignored).
	Delete []string
	// Hold adds or replaces holds; Release removes them.
	Hold    []BlockHold
	Release []string
	// Audit is appended to the trail, in order; At defaults to now.
	Audit []BlockAudit
}

// ApplyBlocks makes change c in one transaction. Safe for concurrent use.
func (s *Store) ApplyBlocks(ctx context.Context, c BlockChange) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now().UTC()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlocks)
		for _, addr := range c.Delete {
			if err := b.Delete(blockKey(blockEntryPrefix, addr)); err != nil {
				return err
			}
		}
		for i := range c.Put {
			if c.Put[i].Address == "" {
				return errors.New("block entry without an address")
			}
			if err := putJSON(b, blockKey(blockEntryPrefix, c.Put[i].Address), &c.Put[i]); err != nil {
				return err
			}
		}
		for _, addr := range c.Release {
			if err := b.Delete(blockKey(blockHoldPrefix, addr)); err != nil {
				return err
			}
		}
		for i := range c.Hold {
			if err := putJSON(b, blockKey(blockHoldPrefix, c.Hold[i].Address), &c.Hold[i]); err != nil {
				return err
			}
		}
		return appendBlockAudit(b, c.Audit, now)
	})
	if err != nil {
		return fmt.Errorf("update the block list state: %w", err)
	}
	return nil
}

func blockKey(prefix []byte, addr string) []byte {
	return append(bytes.Clone(prefix), addr...)
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	enc, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, enc)
}

// appendBlockAudit appends records to the trail and drops the oldest
// beyond maxBlockAudit.
func appendBlockAudit(b *bolt.Bucket, records []BlockAudit, now time.Time) error {
	var last uint64
	for i := range records {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		r := records[i]
		r.Seq, last = seq, seq
		if r.At.IsZero() {
			r.At = now
		}
		r.At = r.At.UTC()
		if err := putJSON(b, blockKey(blockAuditPrefix, string(u64bytes(seq))), &r); err != nil {
			return err
		}
	}
	if last <= maxBlockAudit {
		return nil
	}
	c := b.Cursor()
	for k, _ := c.Seek(blockAuditPrefix); k != nil && bytes.HasPrefix(k, blockAuditPrefix); k, _ = c.Seek(blockAuditPrefix) {
		if u64(k[len(blockAuditPrefix):])+maxBlockAudit > last {
			break
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// BlockState returns the addresses on the block list and the holds, each
// sorted by address.
func (s *Store) BlockState(ctx context.Context) (entries []BlockEntry, holds []BlockHold, err error) {
	entries, holds = []BlockEntry{}, []BlockHold{}
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBlocks).Cursor()
		for k, v := c.Seek(blockEntryPrefix); k != nil && bytes.HasPrefix(k, blockEntryPrefix); k, v = c.Next() {
			var e BlockEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode block entry %q: %w", k[len(blockEntryPrefix):], err)
			}
			entries = append(entries, e)
		}
		for k, v := c.Seek(blockHoldPrefix); k != nil && bytes.HasPrefix(k, blockHoldPrefix); k, v = c.Next() {
			var h BlockHold
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("decode block hold %q: %w", k[len(blockHoldPrefix):], err)
			}
			holds = append(holds, h)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read the block list state: %w", err)
	}
	return entries, holds, nil
}

// BlockAuditTrail returns up to limit records of the audit trail, newest
// first; with address set, only that address's.
func (s *Store) BlockAuditTrail(ctx context.Context, address string, limit int) ([]BlockAudit, error) {
	out := []BlockAudit{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBlocks).Cursor()
		var k, v []byte
		if k, _ = c.Seek([]byte("a\x01")); k == nil { // just past the trail
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, blockAuditPrefix) && len(out) < limit; k, v = c.Prev() {
			var r BlockAudit
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode block audit record %d: %w", u64(k[len(blockAuditPrefix):]), err)
			}
			if address == "" || r.Address == address {
				out = append(out, r)
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read the block audit trail: %w", err)
	}
	return out, nil
}
