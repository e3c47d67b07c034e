package block

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/raywatch/raywatch/store"
)

// Report is the state of the block list, for GET /api/v1/blocks.
type Report struct {
	List     string   `json:"list"`
	DryRun   bool     `json:"dry_run"`
	MinLevel string   `json:"min_level"`
	Rules    []string `json:"rules"`
	// TTLSeconds is --block-ttl; Max is --block-max.
	TTLSeconds int64 `json:"ttl_seconds"`
	Max        int   `json:"max"`
	// Listed counts the entries; Full reports that the list holds Max of
	// them, so that a new one makes the oldest go; Evicted counts the
	// entries that went to make room since raywatch started.
	Listed      int       `json:"listed"`
	Full        bool      `json:"full"`
	Evicted     int64     `json:"evicted"`
	LastEvicted time.Time `json:"last_evicted,omitzero"`
	// LastError is the last failure to change the list, "" once a change
	// succeeded.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Entries are the listed addresses (with Address set, the one entry
	// of that address, if listed), soonest to expire first.
	Entries []store.BlockEntry `json:"entries"`
	// Holds are the addresses a person unblocked, which the rules leave
	// alone until their Until.
	Holds []store.BlockHold `json:"holds"`
	// Audit is the audit trail, newest first.
	Audit []store.BlockAudit `json:"audit"`
}

// Report returns the state of the list and up to limit records of the
// audit trail; with ip set, only what concerns that address (an IPv6
// address's /64). Errors wrap [ErrRefused] for an ip that is not an
// address.
func (b *Blocker) Report(ctx context.Context, ip string, limit int) (Report, error) {
	addr := ""
	if ip != "" {
		var err error
		if _, addr, err = Address(ip); err != nil {
			return Report{}, fmt.Errorf("%w: %v", ErrRefused, err)
		}
	}
	entries, holds, err := b.st.BlockState(ctx)
	if err != nil {
		return Report{}, err
	}
	audit, err := b.st.BlockAuditTrail(ctx, addr, limit)
	if err != nil {
		return Report{}, err
	}
	rep := Report{
		List: b.opts.List, DryRun: b.opts.DryRun, MinLevel: b.opts.MinLevel, Rules: b.opts.Rules,
		TTLSeconds: int64(b.opts.TTL / time.Second), Max: b.opts.Max, Listed: len(entries), Full: len(entries) >= b.opts.Max,
		Entries: []store.BlockEntry{}, Holds: []store.BlockHold{}, Audit: audit,
	}
	b.smu.Lock()
	rep.Evicted, rep.LastEvicted, rep.LastError, rep.LastErrorAt = b.evicted, b.lastEvicted, b.lastErr, b.lastErrAt
	b.smu.Unlock()
	now := b.now()
	for _, e := range entries {
		if addr == "" || e.Address == addr {
			rep.Entries = append(rep.Entries, e)
		}
	}
	slices.SortFunc(rep.Entries, func(x, y store.BlockEntry) int { return x.Until.Compare(y.Until) })
	for _, h := range holds {
		if h.Until.After(now) && (addr == "" || h.Address == addr) {
			rep.Holds = append(rep.Holds, h)
		}
	}
	return rep, nil
}
