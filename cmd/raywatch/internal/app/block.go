package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/block"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/web"
)

// edge is the edge response (--block-list): the block list and the
// dispatcher that runs it as an output of the outbox.
type edge struct {
	blk *block.Blocker
}

// outbox returns the store's Options.Outputs and OutboxFilter: the
// notification outputs (outputs, filter; nil for none) and, with
// --block-list, the block list's queue.
func (a *App) outbox(outputs []string, filter func(string, *alert.Alert) bool) ([]string, func(string, *alert.Alert) bool, error) {
	b := &a.cfg.Block
	if !b.enabled() {
		return outputs, filter, nil
	}
	o, err := b.options(a.cfg.Cloudflare.Zone)
	if err != nil {
		return nil, nil, err
	}
	return b.outboxOutputs(outputs), b.outboxFilter(o, filter), nil
}

// openBlock builds the block list over the store (nothing without
// --block-list). The list is found or created on Cloudflare at its first
// change, not here: serve starts even when Cloudflare does not answer.
func (a *App) openBlock() error {
	cfg := &a.cfg
	if !cfg.Block.enabled() {
		return nil
	}
	o, err := cfg.Block.options(cfg.Cloudflare.Zone)
	if err != nil {
		return err
	}
	o.Logger = a.log
	var cf block.Lists
	if cfg.Cloudflare.Credentials.Set() && !o.DryRun {
		red := &cloudflare.Redactor{}
		c, err := cloudflare.NewClient(cfg.Cloudflare.Credentials, red)
		if err != nil {
			return err
		}
		cf = redactedLists{c: c, red: red}
	}
	blk, err := block.New(o, a.st, cf)
	if err != nil {
		return err
	}
	// The notification outputs' dispatcher delivers its jobs too (see
	// openOutputs), so blocks get their metrics, their place in
	// /api/v1/outputs and the dispatcher's wake-ups after commits.
	a.edge = &edge{blk: blk}
	a.warnBlockRules(o)
	a.log.Info("edge response on: alerts' source addresses go to a Cloudflare IP list", "component", "block",
		"list", o.List, "dry_run", o.DryRun, "min_level", blk.MinLevel(), "rules", len(o.Rules), "ttl", cfg.Block.TTL, "max", cfg.Block.Max)
	return nil
}

// redactedLists is Cloudflare's Lists API with the credentials masked in
// its errors, which the block list logs and the API shows.
type redactedLists struct {
	c   *cloudflare.Client
	red *cloudflare.Redactor
}

func (r redactedLists) ZoneAccount(ctx context.Context, zone string) (string, error) {
	a, err := r.c.ZoneAccount(ctx, zone)
	return a, cloudflare.Redact(err, r.red)
}

func (r redactedLists) FindIPList(ctx context.Context, account, name string) (cloudflare.IPList, bool, error) {
	l, ok, err := r.c.FindIPList(ctx, account, name)
	return l, ok, cloudflare.Redact(err, r.red)
}

func (r redactedLists) CreateIPList(ctx context.Context, account, name, description string) (cloudflare.IPList, error) {
	l, err := r.c.CreateIPList(ctx, account, name, description)
	return l, cloudflare.Redact(err, r.red)
}

func (r redactedLists) ListItems(ctx context.Context, l cloudflare.IPList) ([]cloudflare.ListItem, error) {
	items, err := r.c.ListItems(ctx, l)
	return items, cloudflare.Redact(err, r.red)
}

func (r redactedLists) AddListItems(ctx context.Context, l cloudflare.IPList, items []cloudflare.ListItem) error {
	return cloudflare.Redact(r.c.AddListItems(ctx, l, items), r.red)
}

func (r redactedLists) DeleteListItems(ctx context.Context, l cloudflare.IPList, ids []string) error {
	return cloudflare.Redact(r.c.DeleteListItems(ctx, l, ids), r.red)
}

// warnBlockRules logs the --block-rules ids that no loaded rule has.
func (a *App) warnBlockRules(o block.Options) {
	have := map[string]bool{}
	for _, r := range a.eng.Rules() {
		have[r.ID] = true
	}
	var unknown []string
	for _, id := range o.Rules {
		if id != block.AllRules && !have[id] {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		a.log.Warn("--block-rules names rules that are not loaded", "component", "block", "rules", strings.Join(unknown, ","))
	}
}

// startBlock runs the block list's expiry and its dispatcher until ctx
// ends.
func (a *App) startBlock(ctx context.Context, side *sync.WaitGroup) {
	if a.edge == nil {
		return
	}
	side.Go(func() { a.edge.blk.Run(ctx) })
}

// blocksAPI is the block list for the web server; nil without one.
func (a *App) blocksAPI() web.Blocks {
	if a.edge == nil {
		return nil
	}
	return blocksAdapter{a.edge.blk}
}

// blocksAdapter serves the block list to the web server, which declares
// its own types.
type blocksAdapter struct{ b *block.Blocker }

func (x blocksAdapter) Report(ctx context.Context, ip string, limit int) (web.BlocksReport, error) {
	r, err := x.b.Report(ctx, ip, limit)
	if err != nil {
		return web.BlocksReport{}, webBlockErr(err)
	}
	out := web.BlocksReport{
		List: r.List, DryRun: r.DryRun, MinLevel: r.MinLevel, Rules: r.Rules, TTLSeconds: r.TTLSeconds, Max: r.Max,
		Listed: r.Listed, Full: r.Full, Evicted: r.Evicted, LastEvicted: r.LastEvicted, LastError: r.LastError, LastErrorAt: r.LastErrorAt,
		Entries: make([]web.BlockEntry, len(r.Entries)), Holds: make([]web.BlockHold, len(r.Holds)), Audit: make([]web.BlockAudit, len(r.Audit)),
	}
	for i, e := range r.Entries {
		out.Entries[i] = webBlockEntry(e)
	}
	for i, h := range r.Holds {
		out.Holds[i] = web.BlockHold{Address: h.Address, Until: h.Until, Who: h.Who}
	}
	for i, e := range r.Audit {
		out.Audit[i] = web.BlockAudit{Seq: e.Seq, At: e.At, Action: e.Action, Address: e.Address, Who: e.Who,
			Rule: e.Rule, Alert: e.Alert, Reason: e.Reason, Until: e.Until, DryRun: e.DryRun}
	}
	return out, nil
}

func (x blocksAdapter) Block(ctx context.Context, r web.BlockRequest, who string) (web.BlockEntry, error) {
	e, err := x.b.Block(ctx, block.Request{IP: r.IP, Reason: strings.TrimSpace(r.Reason), Alert: r.Alert}, who)
	return webBlockEntry(e), webBlockErr(err)
}

func (x blocksAdapter) Unblock(ctx context.Context, ip, reason, who string) (web.BlockEntry, error) {
	e, err := x.b.Unblock(ctx, ip, reason, who)
	return webBlockEntry(e), webBlockErr(err)
}

func webBlockEntry(e store.BlockEntry) web.BlockEntry {
	return web.BlockEntry{Address: e.Address, Listed: e.Listed, Until: e.Until, Who: e.Who, Rule: e.Rule,
		Alert: e.Alert, Reason: e.Reason, Comment: e.Comment, DryRun: e.DryRun}
}

// webBlockErr turns the block list's errors into web's.
func webBlockErr(err error) error {
	switch {
	case errors.Is(err, block.ErrRefused):
		return fmt.Errorf("%w: %s", web.ErrBadRequest, strings.TrimPrefix(err.Error(), block.ErrRefused.Error()+": "))
	case errors.Is(err, block.ErrNotListed):
		return fmt.Errorf("%w: %v", web.ErrNotFound, err)
	}
	return err
}
