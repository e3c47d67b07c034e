package block

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/raywatch/raywatch/store"
)

// Request is a block by hand (POST /api/v1/blocks).
type Request struct {
	// IP is the address to list (an IPv6 address lists its /64).
	IP string
	// Reason says why, in words ("" for none given).
	Reason string
	// Alert is the alert the person blocked from, if any.
	Alert string
}

// Block lists an address by hand for TTL, or extends its time on the
// list, recording who did it and why. It lifts a hold left by an earlier
// unblock. Errors wrap [ErrRefused] for an address that is not one or
// may never be listed; others are Cloudflare's (the list is unchanged).
func (b *Blocker) Block(ctx context.Context, r Request, who string) (store.BlockEntry, error) {
	p, addr, err := Address(r.IP)
	if err != nil {
		return store.BlockEntry{}, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	if why := b.Excluded(p); why != "" {
		return store.BlockEntry{}, fmt.Errorf("%w: %s is never listed: it is %s", ErrRefused, addr, why)
	}
	reason := r.Reason
	if reason == "" {
		reason = "blocked by hand"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.loadState(ctx)
	if err != nil {
		return store.BlockEntry{}, err
	}
	now := b.now()
	until := now.Add(b.opts.TTL)
	var c change
	if _, ok := s.holds[addr]; ok {
		c.release = append(c.release, addr)
	}
	e, listed := s.entries[addr]
	switch {
	case listed:
		if until.After(e.Until) {
			e.Until = until
		}
		e.Who, e.Reason = who, reason
		if r.Alert != "" {
			e.Alert = r.Alert
		}
		c.put(e)
	default:
		e = &store.BlockEntry{
			Address: addr, Listed: now, Until: until, Who: who, Alert: r.Alert, Reason: reason, DryRun: b.opts.DryRun,
			Comment: itemComment(fmt.Sprintf("raywatch: blocked by %s: %s", who, reason)),
		}
		s.entries[addr] = e
		c.add(e)
	}
	c.audit = append(c.audit, store.BlockAudit{At: now, Action: store.BlockActionBlock, Address: addr, Who: who,
		Alert: r.Alert, Reason: reason, Until: e.Until, DryRun: e.DryRun})
	if err := b.apply(ctx, &c, s, now); err != nil {
		b.failed(err)
		return store.BlockEntry{}, err
	}
	b.succeeded()
	b.log.Info("address blocked by hand", "address", addr, "by", who, "until", e.Until, "dry_run", e.DryRun)
	return *e, nil
}

// Unblock takes an address off the list by hand, recording who and why,
// and keeps the rules from listing it again for TTL (a person may). Errors
// wrap [ErrRefused] for something that is not an address and
// [ErrNotListed] for an address not on the list; others are Cloudflare's
// (the address stays listed).
func (b *Blocker) Unblock(ctx context.Context, ip, reason, who string) (store.BlockEntry, error) {
	_, addr, err := Address(ip)
	if err != nil {
		return store.BlockEntry{}, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	if reason == "" {
		reason = "unblocked by hand"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.loadState(ctx)
	if err != nil {
		return store.BlockEntry{}, err
	}
	e, ok := s.entries[addr]
	if !ok {
		return store.BlockEntry{}, fmt.Errorf("%s: %w", addr, ErrNotListed)
	}
	if b.opts.DryRun && !e.DryRun {
		return store.BlockEntry{}, errors.New(addr + " is on Cloudflare's list, which a dry run does not change: remove it in Cloudflare's dashboard, or unblock it from a raywatch without --block-dry-run")
	}
	now := b.now()
	var c change
	c.remove(e, store.BlockAudit{At: now, Action: store.BlockActionUnblock, Address: addr, Who: who, Rule: e.Rule,
		Alert: e.Alert, Reason: reason, DryRun: e.DryRun})
	c.hold = append(c.hold, store.BlockHold{Address: addr, Until: now.Add(b.opts.TTL), Who: who})
	delete(s.entries, addr)
	if err := b.apply(ctx, &c, s, now); err != nil {
		b.failed(err)
		return store.BlockEntry{}, err
	}
	b.succeeded()
	b.log.Info("address unblocked by hand", "address", addr, "by", who, "rules_hold_off_until", now.Add(b.opts.TTL))
	return *e, nil
}

// Run takes expired entries off the list every ExpiryInterval (and at
// once) until ctx ends, and drops the entries a dry run left when this
// one is not. A failure is logged and tried again at the next round.
func (b *Blocker) Run(ctx context.Context) error {
	t := time.NewTicker(b.opts.ExpiryInterval)
	defer t.Stop()
	for {
		if err := b.expire(ctx); err != nil && ctx.Err() == nil {
			b.failed(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// expire takes off the entries whose time is up (in a dry run, only the
// dry run's) and releases the holds that ended.
func (b *Blocker) expire(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, err := b.loadState(ctx)
	if err != nil {
		return err
	}
	now := b.now()
	var c change
	for _, e := range s.entries {
		switch {
		case e.DryRun && !b.opts.DryRun:
			c.remove(e, store.BlockAudit{At: now, Action: store.BlockActionExpire, Address: e.Address, Who: "raywatch",
				Rule: e.Rule, Alert: e.Alert, DryRun: true, Reason: "left by a dry run; never on Cloudflare's list"})
		case !e.Until.After(now) && (e.DryRun || !b.opts.DryRun):
			c.remove(e, store.BlockAudit{At: now, Action: store.BlockActionExpire, Address: e.Address, Who: "raywatch",
				Rule: e.Rule, Alert: e.Alert, DryRun: e.DryRun, Reason: fmt.Sprintf("its time on the list (--block-ttl %s) ran out", b.opts.TTL)})
		}
	}
	for addr, h := range s.holds {
		if !h.Until.After(now) {
			c.release = append(c.release, addr)
		}
	}
	for _, e := range c.removes {
		delete(s.entries, e.Address)
	}
	if c.empty() {
		return nil
	}
	n := len(c.removes)
	if err := b.apply(ctx, &c, s, now); err != nil {
		return err
	}
	if n > 0 {
		b.log.Info("expired entries taken off the block list", "entries", n)
	}
	b.succeeded()
	return nil
}
