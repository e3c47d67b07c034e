package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/web"
)

// maxReportedErrors bounds the malformed-record messages kept per batch.
const maxReportedErrors = 10

// detector turns raw records into alerts: normalize, then match.
type detector struct {
	norm    *normalize.Normalizer
	eng     *engine.Engine
	dataset string
}

// batchStats counts what a batch held.
type batchStats struct {
	Records   int
	Malformed int
	Errors    []string
}

func (s *batchStats) malformed(where string, err error) {
	s.Malformed++
	if len(s.Errors) < maxReportedErrors {
		s.Errors = append(s.Errors, fmt.Sprintf("%s: %v", where, err))
	}
}

// detectRecord normalizes one record and returns its alerts.
func (d *detector) detectRecord(raw []byte, intake string, now time.Time) ([]engine.Alert, error) {
	ev, err := d.norm.Normalize(d.dataset, raw)
	if err != nil {
		return nil, err
	}
	return d.eng.Match(ev, intake, now), nil
}

// pipeline is the serve path of a batch: detect, commit to the store, then
// publish to the dashboards. It implements web.Ingester.
type pipeline struct {
	detector
	store *store.Store
	hub   *web.Hub
	log   *slog.Logger
}

// Ingest processes one decompressed batch. It returns after the batch's
// alerts are committed; a malformed record is counted and reported, never
// fatal to the rest of the batch.
func (p *pipeline) Ingest(ctx context.Context, intake string, body []byte) (web.IngestResult, error) {
	now := time.Now()
	var st batchStats
	var alerts []engine.Alert
	err := normalize.Split(bytes.NewReader(body), normalize.SplitOptions{
		OnError: func(n int, err error) { st.Records++; st.malformed(fmt.Sprintf("record %d", n), err) },
	}, func(n int, raw []byte) error {
		st.Records++
		as, err := p.detectRecord(raw, intake, now)
		if err != nil {
			st.malformed(fmt.Sprintf("record %d", n), err)
			return nil
		}
		alerts = append(alerts, as...)
		return nil
	})
	if err != nil {
		return web.IngestResult{}, fmt.Errorf("read batch: %w", err)
	}
	fresh, err := p.store.Put(ctx, alerts)
	if err != nil {
		return web.IngestResult{}, err
	}
	p.hub.Publish(fresh)
	return web.IngestResult{
		Records:   st.Records,
		Malformed: st.Malformed,
		Alerts:    len(alerts),
		New:       len(fresh),
		Errors:    st.Errors,
	}, nil
}

// alertSource adapts the store to web.AlertSource.
type alertSource struct{ s *store.Store }

func (a alertSource) ListAlerts(ctx context.Context, q web.AlertQuery) ([]engine.Alert, string, error) {
	return a.s.List(ctx, store.Query{Limit: q.Limit, Cursor: q.Cursor})
}

func (a alertSource) GetAlert(ctx context.Context, id string) (engine.Alert, error) {
	al, err := a.s.Get(ctx, id)
	if err != nil && errors.Is(err, store.ErrNotFound) {
		return engine.Alert{}, fmt.Errorf("%w: %v", web.ErrNotFound, err)
	}
	return al, err
}
