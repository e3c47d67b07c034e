package block

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare"
	"github.com/raywatch/raywatch/store"
)

// state is the block list's state as read at the start of a change.
type state struct {
	entries map[string]*store.BlockEntry
	holds   map[string]store.BlockHold
}

func (b *Blocker) loadState(ctx context.Context) (*state, error) {
	entries, holds, err := b.st.BlockState(ctx)
	if err != nil {
		return nil, err
	}
	s := &state{entries: map[string]*store.BlockEntry{}, holds: map[string]store.BlockHold{}}
	for i := range entries {
		s.entries[entries[i].Address] = &entries[i]
	}
	for _, h := range holds {
		s.holds[h.Address] = h
	}
	return s, nil
}

// change is what one change does. Entries are added to Cloudflare's list
// and the state (adds), changed in the state only (puts), or taken off
// both (removes, whose audit records go in removeAudit: they are recorded
// as soon as Cloudflare has removed them).
type change struct {
	adds, puts, removes []*store.BlockEntry
	hold                []store.BlockHold
	release             []string
	audit, removeAudit  []store.BlockAudit
}

func (c *change) add(e *store.BlockEntry) { c.adds = append(c.adds, e) }

func (c *change) put(e *store.BlockEntry) {
	if !slices.Contains(c.adds, e) && !slices.Contains(c.puts, e) {
		c.puts = append(c.puts, e)
	}
}

func (c *change) remove(e *store.BlockEntry, r store.BlockAudit) {
	c.removes = append(c.removes, e)
	c.removeAudit = append(c.removeAudit, r)
}

func (c *change) empty() bool {
	return len(c.adds)+len(c.puts)+len(c.removes)+len(c.hold)+len(c.release)+len(c.audit) == 0
}

// apply makes the change: room on the list when it would hold more than
// Max, then Cloudflare's list, then the state. On an error the state
// holds what Cloudflare has done so far (the removals), no more.
func (b *Blocker) apply(ctx context.Context, c *change, s *state, now time.Time) error {
	b.makeRoom(c, s, now)
	if c.empty() {
		return nil
	}
	if removes := onList(c.removes); len(removes) > 0 {
		if err := b.removeItems(ctx, removes); err != nil {
			return err
		}
		err := b.st.ApplyBlocks(ctx, store.BlockChange{Delete: addresses(c.removes), Audit: c.removeAudit})
		if err != nil {
			return err
		}
		c.removes, c.removeAudit = nil, nil
	}
	if adds := onList(c.adds); len(adds) > 0 {
		items := make([]cloudflare.ListItem, len(adds))
		for i, e := range adds {
			items[i] = cloudflare.ListItem{IP: e.Address, Comment: e.Comment}
		}
		err := b.withList(ctx, func(l cloudflare.IPList) error { return b.cf.AddListItems(ctx, l, items) })
		if err != nil {
			return err
		}
	}
	bc := store.BlockChange{Delete: addresses(c.removes), Hold: c.hold, Release: c.release, Audit: append(c.removeAudit, c.audit...)}
	for _, e := range append(c.adds, c.puts...) {
		bc.Put = append(bc.Put, *e)
	}
	return b.st.ApplyBlocks(ctx, bc)
}

// onList returns the entries that are on Cloudflare's list (not a dry
// run's).
func onList(es []*store.BlockEntry) []*store.BlockEntry {
	var out []*store.BlockEntry
	for _, e := range es {
		if !e.DryRun {
			out = append(out, e)
		}
	}
	return out
}

func addresses(es []*store.BlockEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Address
	}
	return out
}

// makeRoom keeps the list within Max: the entries that would expire first
// go ("the oldest entries expire first"). In a dry run only entries of the
// dry run go (the others are on Cloudflare's list, which a dry run does
// not change). New entries of this change go only when the older ones do
// not make enough room.
func (b *Blocker) makeRoom(c *change, s *state, now time.Time) {
	over := len(s.entries) - b.opts.Max
	if over <= 0 {
		return
	}
	var old []*store.BlockEntry
	for _, e := range s.entries {
		if !slices.Contains(c.adds, e) && !slices.Contains(c.removes, e) && (!b.opts.DryRun || e.DryRun) {
			old = append(old, e)
		}
	}
	slices.SortFunc(old, func(x, y *store.BlockEntry) int {
		if d := x.Until.Compare(y.Until); d != 0 {
			return d
		}
		return x.Listed.Compare(y.Listed)
	})
	n := 0
	for _, e := range old[:min(over, len(old))] {
		delete(s.entries, e.Address)
		c.puts = slices.DeleteFunc(c.puts, func(x *store.BlockEntry) bool { return x == e })
		c.remove(e, store.BlockAudit{At: now, Action: store.BlockActionExpire, Address: e.Address, Who: "raywatch",
			Rule: e.Rule, Alert: e.Alert, DryRun: e.DryRun,
			Reason: fmt.Sprintf("the list was full (--block-max %d): the entry due to expire first made room", b.opts.Max)})
		n++
	}
	for over -= n; over > 0 && len(c.adds) > 0; over-- {
		e := c.adds[len(c.adds)-1]
		c.adds = c.adds[:len(c.adds)-1]
		delete(s.entries, e.Address)
		c.audit = slices.DeleteFunc(c.audit, func(r store.BlockAudit) bool { return r.Address == e.Address && r.Action == store.BlockActionBlock })
		b.log.Warn("the block list is full of newer entries: address not listed", "address", e.Address, "max", b.opts.Max)
	}
	if n > 0 {
		b.smu.Lock()
		b.evicted += int64(n)
		b.lastEvicted = now
		b.smu.Unlock()
		b.log.Warn("the block list is full: the entries due to expire first made room", "removed", n, "max", b.opts.Max)
	}
}

// withList runs f on Cloudflare's list, finding (or creating) it first,
// no sooner than MinInterval after the last change of the list. A list
// Cloudflare no longer knows is looked up again next time.
func (b *Blocker) withList(ctx context.Context, f func(cloudflare.IPList) error) error {
	l, err := b.ensureList(ctx)
	if err != nil {
		return err
	}
	if wait := time.Until(b.lastWrite.Add(b.opts.MinInterval)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	err = f(l)
	b.lastWrite = time.Now()
	if cloudflare.HTTPStatus(err) == http.StatusNotFound {
		b.list = nil
	}
	return cleanErr(err)
}

// ensureList finds the list in the account, creating it when missing.
func (b *Blocker) ensureList(ctx context.Context) (cloudflare.IPList, error) {
	if b.list != nil {
		return *b.list, nil
	}
	account := b.opts.Account
	if account == "" {
		var err error
		if account, err = b.cf.ZoneAccount(ctx, b.opts.Zone); err != nil {
			return cloudflare.IPList{}, cleanErr(err)
		}
	}
	l, ok, err := b.cf.FindIPList(ctx, account, b.opts.List)
	if err != nil {
		return cloudflare.IPList{}, cleanErr(err)
	}
	if !ok {
		if l, err = b.cf.CreateIPList(ctx, account, b.opts.List, "Addresses raywatch blocks at the edge; raywatch adds and removes them"); err != nil {
			return cloudflare.IPList{}, cleanErr(err)
		}
		b.log.Info("created the IP list", "account", account, "list_id", l.ID)
	}
	b.list = &l
	return l, nil
}

// removeItems takes entries off Cloudflare's list. Addresses the list no
// longer holds (removed by hand) are gone already.
func (b *Blocker) removeItems(ctx context.Context, es []*store.BlockEntry) error {
	l, err := b.ensureList(ctx)
	if err != nil {
		return err
	}
	items, err := b.cf.ListItems(ctx, l)
	if err != nil {
		return cleanErr(err)
	}
	want := map[string]bool{}
	for _, e := range es {
		want[e.Address] = true
	}
	var ids []string
	for _, it := range items {
		if _, addr, err := Address(it.IP); err == nil && want[addr] {
			ids = append(ids, it.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return b.withList(ctx, func(l cloudflare.IPList) error { return b.cf.DeleteListItems(ctx, l, ids) })
}
