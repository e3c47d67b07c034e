package main

import (
	"context"
	"sync"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/rules/alert"

	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/web"
)

// SetStatusComment implements web.StatusCommenter: the comment is kept in
// the alert's status history.
func (a alertSource) SetStatusComment(ctx context.Context, id, status, by, comment string) (alert.Alert, error) {
	return mapStoreErr(a.s.Transition(ctx, id, alert.StatusChange{Status: status, By: by, At: time.Now(), Comment: comment}))
}

// ruleProblems keeps the rule files that failed at the last load, for the
// dashboard's Rules page. Its methods are safe for concurrent use and do
// nothing on a nil receiver.
type ruleProblems struct {
	mu   sync.Mutex
	list []web.RuleLoadError
}

func (p *ruleProblems) set(errs []*rules.LoadError) {
	if p == nil {
		return
	}
	list := make([]web.RuleLoadError, 0, len(errs))
	for _, e := range errs {
		msg := ""
		if e.Err != nil {
			msg = e.Err.Error()
		}
		list = append(list, web.RuleLoadError{File: e.File, Line: e.Line, Error: msg})
	}
	p.mu.Lock()
	p.list = list
	p.mu.Unlock()
}

func (p *ruleProblems) get() []web.RuleLoadError {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]web.RuleLoadError(nil), p.list...)
}

// overviewTTL is how long an overview is served from the cache: reading a
// day of 100,000 alerts takes a while, and dashboards refresh it often.
const overviewTTL = 5 * time.Second

// overviewCache serves the dashboard's overview from the store, computing
// each range at most once per overviewTTL.
type overviewCache struct {
	st *store.Store

	mu   sync.Mutex
	last map[time.Duration]cachedOverview
}

type cachedOverview struct {
	at time.Time
	ov store.Overview
}

func newOverviewCache(st *store.Store) *overviewCache {
	return &overviewCache{st: st, last: map[time.Duration]cachedOverview{}}
}

// get returns the overview of the span rng ending at to. A zero to means
// now, or the newest alert's last event when that is later (records may
// carry timestamps ahead of this machine's clock).
func (c *overviewCache) get(ctx context.Context, to time.Time, rng time.Duration) (any, error) {
	if !to.IsZero() {
		return c.st.Overview(ctx, to.Add(-rng), to, 10)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.last[rng]; ok && time.Since(e.at) < overviewTTL {
		return e.ov, nil
	}
	to = time.Now()
	if n, err := c.st.Newest(ctx); err == nil && n.After(to) {
		to = n
	}
	ov, err := c.st.Overview(ctx, to.Add(-rng), to, 10)
	if err != nil {
		return nil, err
	}
	c.last[rng] = cachedOverview{at: time.Now(), ov: ov}
	return ov, nil
}

// ruleLister lists the engine's rules in the web server's terms.
type ruleLister struct{ eng *engine.Engine }

func (l ruleLister) Rules() []web.RuleStatus {
	rs := l.eng.Rules()
	out := make([]web.RuleStatus, len(rs))
	for i, r := range rs {
		out[i] = web.RuleStatus{
			ID: r.ID, Title: r.Title, Description: r.Description, Level: r.Level, Status: r.Status,
			Author: r.Author, References: r.References, Tags: r.Tags, FalsePositives: r.FalsePositives,
			Source: r.Source, File: r.File, Name: r.Name,
			Logsource: web.Logsource{Category: r.Logsource.Category, Product: r.Logsource.Product, Service: r.Logsource.Service},
			Enabled:   r.Enabled, Alerts: r.Alerts, EvalErrors: r.EvalErrors, LastError: r.LastError,
		}
	}
	return out
}
