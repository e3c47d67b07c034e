package app

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/retro"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/store/archive"
	"github.com/raywatch/raywatch/web"
)

// openHunting opens the batch archive (--archive-dir), makes the spool
// worker keep every committed batch in it, and builds the retro hunter,
// which hunts the indicators the IOC folder gains, and rules on request,
// over the archive. It runs after wire: the hunter commits to the store
// and publishes to the hub. Without --archive-dir it does nothing.
func (a *App) openHunting() error {
	cfg := a.cfg.Archive
	if cfg.Dir == "" {
		return nil
	}
	arc, err := archive.Open(archive.Options{
		Dir: cfg.Dir, Retention: cfg.Retention, MaxBytes: cfg.MaxBytes, Logger: a.log.With("component", "archive"),
	})
	if err != nil {
		return err
	}
	a.arc = arc
	a.worker.Archive = func(b *store.SpooledBatch, body io.Reader) error {
		_, err := arc.Put(b.Received, b.Intake, b.ID, body)
		return err
	}
	eopts, err := a.cfg.EngineOptions(nil)
	if err != nil {
		return err
	}
	opts := retro.Options{
		Archive: arc, Retention: cfg.Retention, Sink: a.commitRetro, Mapping: eopts.Mapping,
		Dataset: a.cfg.Dataset, IntelRule: a.intelRule(), Logger: a.log.With("component", "retro"),
		// A hunt waits while live batches are in the spool: it never
		// takes the processor from the intake.
		Busy: func() bool { n, _ := a.spool.Stats(); return n > 0 },
	}
	if a.iocs != nil {
		opts.IOC = a.iocs.Current
	}
	a.hunter, err = retro.New(opts)
	return err
}

// intelRule is the intelligence-feed rule as loaded (a drop-in rule may
// replace the built-in one), for the alerts of indicator hunts; the zero
// value (the built-in rule) when it is not loaded.
func (a *App) intelRule() alert.RuleRef {
	for _, st := range a.eng.Rules() {
		if st.ID == rules.IntelligenceFeedID {
			return alert.RuleRef{ID: st.ID, Title: st.Title, Level: st.Level, Tags: st.Tags, Description: st.Description, References: st.References}
		}
	}
	return alert.RuleRef{}
}

// commitRetro is the hunter's sink: commit, then publish what changed.
func (a *App) commitRetro(ctx context.Context, as []alert.Alert) error {
	changed, err := a.st.Commit(ctx, store.Batch{Alerts: as})
	if err != nil {
		return err
	}
	a.publisher().Publish(changed) // the hub, and a wake-up for the outputs
	return nil
}

// startHunting runs the archive's pruning and the hunter beside the
// workers until ctx ends.
func (a *App) startHunting(ctx context.Context, side *sync.WaitGroup) {
	if a.arc == nil {
		return
	}
	side.Go(func() { a.arc.Run(ctx) })
	side.Go(func() { a.hunter.Run(ctx) })
}

// retroReports serves the archive and the hunts to the web server.
type retroReports struct{ a *App }

// Retro is GET /api/v1/retro.
func (r retroReports) Retro(context.Context) (web.RetroReport, error) {
	a := r.a
	rep := web.RetroReport{Hunts: []web.RetroHunt{}}
	if a.arc == nil {
		return rep, nil
	}
	st := a.arc.Stats()
	rep.Archive = web.ArchiveStats{
		Enabled: true, Bytes: st.Bytes, Objects: st.Objects, Oldest: st.Oldest, Newest: st.Newest,
		RetentionSeconds: int64(a.cfg.Archive.Retention.Seconds()), MaxBytes: a.cfg.Archive.MaxBytes,
	}
	for _, h := range a.hunter.Status() {
		rep.Hunts = append(rep.Hunts, web.RetroHunt{
			ID: h.ID, Kind: h.Kind, Rule: h.Rule, Indicators: h.Indicators, Shown: h.Shown, State: h.State,
			Queued: h.Queued, Started: h.Started, Finished: h.Finished, Since: h.Since, Until: h.Until,
			Objects: h.Objects, ObjectsTotal: h.ObjectsTotal, Bytes: h.Bytes, BytesTotal: h.BytesTotal,
			Records: h.Records, Matches: h.Matches, Unreadable: h.Unreadable, Error: h.Error,
		})
	}
	return rep, nil
}

// HuntRule is POST /api/v1/rules/{id}/retro.
func (r retroReports) HuntRule(_ context.Context, id string) (string, error) {
	a := r.a
	if a.hunter == nil {
		return "", fmt.Errorf("%w: no batch archive to hunt in: start raywatch serve with --archive-dir", web.ErrBadRequest)
	}
	for _, st := range a.eng.Rules() {
		if st.ID != id {
			continue
		}
		if st.Kind() == rules.KindFilter {
			return "", fmt.Errorf("%w: %s is a filter, not a detection", web.ErrBadRequest, id)
		}
		hunt, err := a.hunter.HuntRule(st.Rule)
		if err != nil {
			return "", fmt.Errorf("%w: %v", web.ErrBadRequest, err)
		}
		a.log.Info("retro-hunt of a rule queued", "hunt", hunt, "rule", id)
		return hunt, nil
	}
	return "", fmt.Errorf("%w: rule %s", web.ErrNotFound, id)
}
