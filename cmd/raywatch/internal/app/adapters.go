package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/alert"
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
	ov web.Overview
}

func newOverviewCache(st *store.Store) *overviewCache {
	return &overviewCache{st: st, last: map[time.Duration]cachedOverview{}}
}

// get returns the overview of the span rng ending at to. A zero to means
// now, or the newest alert's last event when that is later (records may
// carry timestamps ahead of this machine's clock).
func (c *overviewCache) get(ctx context.Context, to time.Time, rng time.Duration) (web.Overview, error) {
	if !to.IsZero() {
		ov, err := c.st.Overview(ctx, to.Add(-rng), to, 10)
		return webOverview(ov), err
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
		return web.Overview{}, err
	}
	c.last[rng] = cachedOverview{at: time.Now(), ov: webOverview(ov)}
	return c.last[rng].ov, nil
}

// webOverview is the store's overview in the web server's terms.
func webOverview(ov store.Overview) web.Overview {
	top := func(es []store.TopEntry) []web.TopEntry {
		out := make([]web.TopEntry, len(es))
		for i, e := range es {
			out[i] = web.TopEntry{Key: e.Key, Label: e.Label, Alerts: e.Alerts, Events: e.Events}
		}
		return out
	}
	series := make([]web.SeriesBucket, len(ov.Series))
	for i, b := range ov.Series {
		series[i] = web.SeriesBucket{Start: b.Start, Alerts: b.Alerts, ByLevel: b.ByLevel}
	}
	return web.Overview{
		From: ov.From, To: ov.To, BucketSeconds: ov.BucketSeconds, Series: series, Alerts: ov.Alerts, Events: ov.Events,
		ByLevel: ov.ByLevel, ByStatus: ov.ByStatus, TopRules: top(ov.TopRules), TopSources: top(ov.TopSources),
		TopCountries: top(ov.TopCountries), Truncated: ov.Truncated,
	}
}

// ruleLister lists the engine's rules in the web server's terms, with the
// close reasons the store counted (st may be nil).
type ruleLister struct {
	eng *engine.Engine
	st  *store.Store
}

func (l ruleLister) Rules() []web.RuleStatus {
	rs := l.eng.Rules()
	closed := map[string]map[string]int64{}
	if l.st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stats, _ := l.st.RuleStats(ctx) // without them, no close counts
		cancel()
		for _, s := range stats {
			closed[s.Rule] = s.Closed
		}
	}
	out := make([]web.RuleStatus, len(rs))
	for i, r := range rs {
		h := r.Health
		out[i] = web.RuleStatus{
			ID: r.ID, Title: r.Title, Description: r.Description, Level: r.Level, Status: r.Status,
			Author: r.Author, References: r.References, Tags: r.Tags, FalsePositives: r.FalsePositives,
			Source: r.Source, File: r.File, Name: r.Name,
			Logsource: web.Logsource{Category: r.Logsource.Category, Product: r.Logsource.Product, Service: r.Logsource.Service},
			Enabled:   r.Enabled, Alerts: r.Alerts, EvalErrors: r.EvalErrors, LastError: r.LastError,
			Kind:       r.Kind(),
			Health:     web.RuleHealth{State: h.State, Reason: h.Reason, File: h.File, Line: h.Line, Field: h.Field},
			Suppressed: r.Suppressed, SuppressedByExceptions: r.SuppressedByExceptions, SuppressedByFilters: r.SuppressedByFilters,
			LastSuppressed: r.LastSuppressed, AppliesTo: r.AppliesTo,
			EvalSecondsSampled: r.EvalSeconds, EvalShare: r.EvalShare, Closed: closed[r.ID],
		}
	}
	return out
}

// alertSource adapts the store to web.AlertSource.
type alertSource struct {
	s     *store.Store
	spool *store.Spool
	rules web.RuleLister
}

func (a alertSource) ListAlerts(ctx context.Context, q web.AlertQuery) ([]alert.Alert, string, error) {
	return a.s.List(ctx, store.Query{
		Limit: q.Limit, Cursor: q.Cursor, Rule: q.Rule, Level: q.Level, Status: q.Status,
		Intake: q.Intake, From: q.From, To: q.To, Text: q.Text,
	})
}

func (a alertSource) GetAlert(ctx context.Context, id string) (alert.Alert, error) {
	return mapStoreErr(a.s.Get(ctx, id))
}

func (a alertSource) SetStatus(ctx context.Context, id, status, by string) (alert.Alert, error) {
	return mapStoreErr(a.s.SetStatus(ctx, id, status, by, time.Now()))
}

func mapStoreErr(al alert.Alert, err error) (alert.Alert, error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return alert.Alert{}, fmt.Errorf("%w: %v", web.ErrNotFound, err)
	case errors.Is(err, store.ErrBadStatus):
		return alert.Alert{}, fmt.Errorf("%w: %v", web.ErrBadRequest, err)
	}
	return al, err
}

// Stats returns the store's counters, the rules' titles and the spool's
// depth for /api/v1/stats.
func (a alertSource) Stats(ctx context.Context) (web.Stats, error) {
	st, err := a.s.Stats(ctx)
	if err != nil {
		return web.Stats{}, err
	}
	titles := map[string]string{}
	if a.rules != nil {
		for _, r := range a.rules.Rules() {
			titles[r.ID] = r.Title
		}
	}
	out := web.Stats{Alerts: st.Alerts, ByStatus: st.ByStatus, Bytes: st.Bytes, Rules: make([]web.RuleStats, len(st.Rules))}
	for i, r := range st.Rules {
		out.Rules[i] = web.RuleStats{Rule: r.Rule, Title: titles[r.Rule], Alerts: r.Alerts, Events: r.Events, LastSeen: r.LastSeen}
	}
	out.Spool.Batches, out.Spool.Bytes = a.spool.Stats()
	return out, nil
}

// Rejects returns the malformed records the store keeps, newest first.
func (a alertSource) Rejects(ctx context.Context, limit int) ([]web.RejectedRecord, error) {
	rs, err := a.s.Rejects(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]web.RejectedRecord, len(rs))
	for i, r := range rs {
		out[i] = web.RejectedRecord{Time: r.Time, Intake: r.Intake, Batch: r.Batch, Record: r.Record, Reason: r.Reason, Line: r.Line}
	}
	return out, nil
}

// spoolAdapter adapts the store's spool to web.Spool.
type spoolAdapter struct{ s *store.Spool }

func (a spoolAdapter) Begin(intake string) (web.SpoolWriter, error) {
	w, err := a.s.Begin(intake)
	if err != nil {
		return nil, busy(err)
	}
	return spoolWriter{w}, nil
}

type spoolWriter struct{ w *store.SpoolWriter }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	return n, busy(err)
}

func (w spoolWriter) Commit(id string, lines int) (bool, error) {
	dup, err := w.w.Commit(id, lines)
	return dup, busy(err)
}

func (w spoolWriter) Abort() { w.w.Abort() }

func (w spoolWriter) Decoded() io.Writer { return w.w.Decoded() }

// busy maps the spool's ErrSpoolFull to web.ErrBusy.
func busy(err error) error {
	if errors.Is(err, store.ErrSpoolFull) {
		return fmt.Errorf("%w: %v", web.ErrBusy, err)
	}
	return err
}

// storeCollector exports the store's counters on each scrape.
type storeCollector struct {
	s      *store.Store
	spool  *store.Spool
	alerts *prometheus.Desc
	events *prometheus.Desc
	stored *prometheus.Desc
	closed *prometheus.Desc
	size   *prometheus.Desc
	depth  *prometheus.Desc
	bytes  *prometheus.Desc
}

func newStoreCollector(s *store.Store, sp *store.Spool) *storeCollector {
	return &storeCollector{
		s: s, spool: sp,
		alerts: prometheus.NewDesc("raywatch_rule_alerts_total", "Alerts created, by rule (grouped alerts count once).", []string{"rule"}, nil),
		events: prometheus.NewDesc("raywatch_rule_events_total", "Records counted into alerts, by rule.", []string{"rule"}, nil),
		stored: prometheus.NewDesc("raywatch_store_alerts", "Alerts in the store.", nil, nil),
		closed: prometheus.NewDesc("raywatch_rule_closed_total", "Alerts of a rule closed by an analyst, by reason (false_positive, true_positive, benign).", []string{"rule", "reason"}, nil),
		size:   prometheus.NewDesc("raywatch_store_bytes", "Size of the alert database file.", nil, nil),
		depth:  prometheus.NewDesc("raywatch_spool_batches", "Batches acknowledged and not yet processed.", nil, nil),
		bytes:  prometheus.NewDesc("raywatch_spool_bytes", "Bytes in the spool, batches being received included.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.alerts, c.events, c.stored, c.size, c.depth, c.bytes, c.closed} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	n, b := c.spool.Stats()
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(b))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.s.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.stored, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.stored, prometheus.GaugeValue, float64(st.Alerts))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(st.Bytes))
	for _, r := range st.Rules {
		ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.CounterValue, float64(r.Alerts), r.Rule)
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(r.Events), r.Rule)
		for reason, n := range r.Closed {
			ch <- prometheus.MustNewConstMetric(c.closed, prometheus.CounterValue, float64(n), r.Rule, reason)
		}
	}
}
