package app

import (
	"context"
	"runtime/debug"
	"slices"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/notify"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/web"
)

// openOutputs builds the dispatcher of the notification outputs over the
// store's outbox, and makes the commits of the spool workers wake it. It
// runs after wire (it registers its metrics on a.reg) and before
// newServer. The dispatcher exists without outputs too: it then sends
// nothing and reports none.
func (a *App) openOutputs() error {
	o := a.cfg.Outputs.Notify
	o.GroupWindow = a.cfg.GroupWindow
	o.Version = buildVersion()
	o.Logger = a.log
	o.Registerer = a.reg
	if a.edge != nil {
		o.Extra = append(o.Extra, a.edge.blk)
	}
	d, err := notify.New(o, a.st.Outbox(), a.st)
	if err != nil {
		return err
	}
	a.notify = d
	a.worker.Hub = a.publisher()
	a.logOutputs(o.Outputs())
	return nil
}

// logOutputs says which outputs are on, warns about unsigned webhooks and
// about deliveries queued for outputs no longer configured.
func (a *App) logOutputs(names []string) {
	rep, err := a.notify.Report(context.Background())
	if err != nil {
		a.log.Error("outputs", "err", err)
		return
	}
	for _, s := range rep.Outputs {
		a.log.Info("output", "output", s.Name, "target", s.Target, "min_level", s.MinLevel, "queued", s.Queue)
	}
	if len(a.cfg.Outputs.Notify.WebhookURLs) > 0 && len(a.cfg.Outputs.Notify.WebhookSecret) == 0 {
		a.log.Warn("webhook deliveries are not signed: set RAYWATCH_WEBHOOK_SECRET or RAYWATCH_WEBHOOK_SECRET_FILE")
	}
	queues, err := a.st.Outbox().Queues()
	if err != nil {
		a.log.Error("outputs", "err", err)
		return
	}
	for _, q := range queues {
		if slices.Contains(names, q) {
			continue
		}
		st, err := a.st.Outbox().Stats(q)
		if err != nil {
			a.log.Error("outputs", "err", err)
			continue
		}
		a.log.Warn("deliveries wait for an output that is not configured: they are sent when it is again, or dropped as the oldest when the outbox is full",
			"output", q, "queued", st.Queued)
	}
}

// runOutputs sends the outbox's deliveries until ctx ends.
func (a *App) runOutputs(ctx context.Context) {
	if err := a.notify.Run(ctx); err != nil {
		a.log.Error("outputs", "err", err)
	}
}

// publisher is what the spool workers and Kafka publish committed alerts
// to: the dashboards' hub, and a wake-up call to the outputs, whose jobs
// the commit queued.
func (a *App) publisher() pipeline.Publisher {
	if a.notify == nil {
		return a.hub
	}
	return wakingPublisher{hub: a.hub, d: a.notify}
}

type wakingPublisher struct {
	hub *web.Hub
	d   *notify.Dispatcher
}

func (p wakingPublisher) Publish(alerts []alert.Alert) {
	p.d.Wake()
	p.hub.Publish(alerts)
}

// wakingAlerts is the alert source of the API that wakes the outputs
// after a status change, whose delivery the change queued.
type wakingAlerts struct {
	alertSource
	wake func()
}

func (a wakingAlerts) SetStatus(ctx context.Context, id, status, by string) (alert.Alert, error) {
	al, err := a.alertSource.SetStatus(ctx, id, status, by)
	if err == nil {
		a.wake()
	}
	return al, err
}

func (a wakingAlerts) SetStatusComment(ctx context.Context, id, status, by, comment string) (alert.Alert, error) {
	al, err := a.alertSource.SetStatusComment(ctx, id, status, by, comment)
	if err == nil {
		a.wake()
	}
	return al, err
}

// webAlerts is the alert source the web server gets.
func (a *App) webAlerts(src alertSource) web.AlertSource {
	if a.notify == nil {
		return src
	}
	return wakingAlerts{alertSource: src, wake: a.notify.Wake}
}

// outputsReport is GET /api/v1/outputs.
func (a *App) outputsReport(ctx context.Context) (web.OutputsReport, error) {
	rep, err := a.notify.Report(ctx)
	if err != nil {
		return web.OutputsReport{}, err
	}
	out := web.OutputsReport{Outputs: make([]web.OutputStatus, len(rep.Outputs))}
	for i, s := range rep.Outputs {
		out.Outputs[i] = web.OutputStatus{
			Name: s.Name, Type: s.Type, Target: s.Target, MinLevel: s.MinLevel, State: s.State,
			Queue: s.Queue, Oldest: s.Oldest, Dropped: s.Dropped, Failed: s.Failed, Delivered: s.Delivered, Retried: s.Retried,
			Active: s.Active, LastError: s.LastError, LastErrorAt: s.LastErrorAt, LastSuccess: s.LastSuccess, NextAttempt: s.NextAttempt,
		}
	}
	return out, nil
}

// buildVersion is raywatch's module version, for the User-Agent of the
// outputs and the CEF header; "dev" when the build did not record one.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
