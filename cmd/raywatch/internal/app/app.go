package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/coverage"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/kafka"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/notify"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/retro"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/store/archive"
	"github.com/raywatch/raywatch/web"
)

// storeLockTimeout is how long Open waits for the store's lock before
// saying another raywatch holds the data folder.
const storeLockTimeout = 100 * time.Millisecond

// App is raywatch serve: the HTTP intake, the spool and its workers, the
// store, Kafka, the API and the dashboard. [New] builds it, [App.Run] runs
// it until its context ends, [App.Close] releases what New took.
type App struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	eng    *engine.Engine
	iocs   *ioc.Watcher        // nil without --ioc-dir
	rules  *engine.RuleWatcher // nil without --rules-dir
	st     *store.Store
	spool  *store.Spool
	hub    *web.Hub
	srv    *web.Server
	reg    *prometheus.Registry
	pipe   *pipeline.Pipeline
	worker *pipeline.SpoolWorker
	jobs   *cloudflare.Poller // nil without Cloudflare credentials
	notify *notify.Dispatcher
	cov    *coverage.Tracker
	edge   *edge // nil without --block-list
	seen   *intakeActivity
	probs  *ruleProblems
	tune   *tuning
	arc    *archive.Archive // nil without --archive-dir
	hunter *retro.Hunter    // nil without --archive-dir

	closeOnce sync.Once
	closeErr  error
}

// Options are what New needs beside the configuration.
type Options struct {
	// Banner receives the once-only message of a generated intake key
	// (stderr in main); nil discards it.
	Banner io.Writer
}

// New checks that the listen address can be bound, then opens the data
// folder (creating it, and an intake key when none is configured), the
// IOC and rules folders, the store and the spool, and builds the web
// server. Nothing is created when the port is taken. A store whose lock
// another raywatch holds fails at once with store.ErrLocked. cfg must have
// passed Validate. On success the caller must call Close (after Run).
func New(cfg Config, log *slog.Logger, opts Options) (*App, error) {
	if opts.Banner == nil {
		opts.Banner = io.Discard
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	a := &App{cfg: cfg, log: log, ln: ln, seen: &intakeActivity{}, probs: &ruleProblems{}, tune: &tuning{}}
	if err := a.open(opts); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// open does New's work after the listener is bound. The store comes
// first: a data folder another raywatch holds fails before anything is
// written to it.
func (a *App) open(opts Options) error {
	cfg := &a.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	outputs, filter, err := a.outbox(cfg.Outputs.Notify.Outputs(), cfg.Outputs.Notify.Accepts)
	if err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, "alerts.db"), store.Options{
		Timeout: storeLockTimeout, GroupWindow: cfg.GroupWindow, MaxAge: cfg.RetentionAge, MaxAlerts: cfg.RetentionCount,
		Outputs: outputs, OutboxFilter: filter, OutboxMax: cfg.Outputs.OutboxMax,
		RuleAlertBudget: cfg.Tuning.RuleAlertBudget, OnThrottle: a.onThrottle,
	})
	if err != nil {
		return err
	}
	a.st = st
	a.spool, err = store.OpenSpool(store.SpoolOptions{
		Dir: filepath.Join(cfg.DataDir, "spool"), MaxBytes: cfg.SpoolMaxBytes, Done: st.BatchDone,
	})
	if err != nil {
		return err
	}
	if n, b := a.spool.Stats(); n > 0 {
		a.log.Info("replaying spooled batches", "batches", n, "bytes", b)
	}
	if len(cfg.IntakeKeys) == 0 {
		key, err := loadOrCreateKey(cfg.DataDir, opts.Banner)
		if err != nil {
			return err
		}
		cfg.IntakeKeys = map[string]string{"default": key}
	}
	if cfg.Demo {
		if err := prepareDemo(cfg); err != nil {
			return err
		}
	}
	if err := a.openRules(); err != nil {
		return err
	}
	if err := a.openBlock(); err != nil {
		return err
	}
	if err := a.openTuning(); err != nil {
		return err
	}
	a.wire()
	if err := a.openOutputs(); err != nil {
		return err
	}
	if err := a.openHunting(); err != nil {
		return err
	}
	return a.newServer()
}

// openRules loads the IOC folder, compiles the rules and starts watching
// the rules folder.
func (a *App) openRules() error {
	cfg := &a.cfg
	var iocSet func() *ioc.Set
	if cfg.IOCDir != "" {
		w, err := ioc.NewWatcher(cfg.IOCDir, ioc.Options{Logger: a.log.With("component", "ioc")})
		if err != nil {
			return err
		}
		a.iocs, iocSet = w, w.Current
		a.log.Info("indicators loaded", "dir", cfg.IOCDir, "indicators", w.Current().Len())
	}
	eng, rep, err := LoadEngine(*cfg, iocSet)
	if err != nil {
		return err
	}
	a.eng = eng
	a.probs.set(rep.Problems)
	for _, p := range rep.Problems {
		a.log.Error("rule skipped", "file", p.File, "line", p.Line, "err", p.Err)
	}
	a.rulesSkipped(rep.Skipped)
	logUnable(a.log, eng)
	if cfg.RulesDir != "" {
		rw, err := engine.NewRuleWatcher(cfg.RulesDir, eng, engine.RuleWatcherOptions{
			Logger: a.log.With("component", "rules"), OnReload: a.rulesReloaded, OnSkipped: a.rulesSkipped,
		})
		if err != nil {
			a.log.Error("rules folder not watched; restart to load changes", "err", err)
		} else {
			a.rules = rw
		}
	}
	return nil
}

// wire builds the metrics, the hub, the pipeline, the spool worker and the
// job poller.
func (a *App) wire() {
	cfg := &a.cfg
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStoreCollector(a.st, a.spool), a.eng.Collector())
	if a.iocs != nil {
		a.reg.MustRegister(a.iocs.Collectors()...)
	}
	a.hub = web.NewHub()
	a.cov = coverage.New(coverage.Options{})
	a.pipe = pipeline.New(pipeline.Options{
		Detector:     &pipeline.Detector{Normalizer: normalize.New(normalize.Options{}), Engine: a.eng, Dataset: cfg.Dataset},
		Workers:      cfg.Workers,
		MaxLineBytes: cfg.MaxLineBytes,
		MaxRecords:   cfg.MaxRecords,
		Observe:      a.cov.ObserveJSON,
	})
	a.worker = &pipeline.SpoolWorker{
		Pipeline: a.pipe, Spool: a.spool, Store: a.st, Hub: a.hub,
		Log: a.log.With("component", "pipeline"), Metrics: pipeline.NewMetrics(a.reg), Activity: a.seen.saw,
	}
	poll := cfg.Cloudflare
	poll.Keys, poll.LastBatch = cfg.IntakeKeys, a.seen.lastBatch
	a.jobs = cloudflare.NewPoller(poll, a.log)
}

// newServer builds the web server.
func (a *App) newServer() error {
	cfg := &a.cfg
	srv, err := web.New(web.Options{
		IntakeKeys:           cfg.IntakeKeys,
		DashboardToken:       cfg.DashboardToken,
		Spool:                spoolAdapter{a.spool},
		Alerts:               a.webAlerts(alertSource{s: a.st, spool: a.spool, rules: ruleLister{a.eng, a.st}}),
		Rules:                ruleLister{a.eng, a.st},
		Hub:                  a.hub,
		Logger:               a.log,
		Registry:             a.reg,
		MaxBodyBytes:         cfg.MaxBodyBytes,
		MaxDecompressedBytes: cfg.MaxDecompressedBytes,
		MaxLines:             cfg.MaxRecords,
		Reports: web.Reports{
			IOCs:      func(context.Context) (web.IOCReport, error) { return iocReport(a.iocs, cfg.IOCDir), nil },
			Coverage:  func(context.Context) ([]web.IntakeCoverage, error) { return coverageReports(a.eng, a.cov) },
			Jobs:      func(context.Context) (web.JobsReport, error) { return jobsReport(a.jobs), nil },
			Outputs:   a.outputsReport,
			Throttled: a.throttleReport,
		},
		Exceptions:   a.tune.exc,
		SearchIOCs:   a.searchIOCs,
		RuleSkipped:  a.tune.skips.get,
		RuleCoverage: func(context.Context) map[string][]web.RuleCoverage { return ruleCoverage(a.eng, a.cov) },
		RuleErrors:   a.probs.get,
		Overview:     newOverviewCache(a.st).get,
		// Sessions live in the store, so that logout and a new token
		// revoke them, across restarts too.
		Sessions:            a.st,
		ListenAddr:          cfg.Listen,
		AllowedHosts:        cfg.Web.AllowedHosts,
		MaxWebsocketClients: cfg.Web.MaxWebsocketClients,
		MaxConnections:      cfg.Web.webMaxConnections(),
		Blocks:              a.blocksAPI(),
		Retro:               retroReports{a},
	})
	if err != nil {
		return err
	}
	a.srv = srv
	return nil
}

// Addr is the address the intake, API and dashboard listen on.
func (a *App) Addr() net.Addr { return a.ln.Addr() }

// RecordsProcessed is the value of raywatch_records_processed_total: the
// records the spool's worker has processed since the start. raywatch
// bench reads it in-process rather than scraping /metrics many times a
// second in the process it measures.
func (a *App) RecordsProcessed() float64 {
	var m dto.Metric
	if a.worker == nil || a.worker.Metrics.Records.Write(&m) != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// Close releases what New took: the listener (when Run did not serve),
// the watchers, the spool and the store. It is safe to call twice and
// returns the store's close error.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		a.ln.Close()
		if a.rules != nil {
			a.rules.Close()
		}
		if a.spool != nil {
			a.spool.Close()
		}
		if a.st != nil {
			a.closeErr = a.st.Close()
		}
	})
	return a.closeErr
}

// Run serves until ctx ends or the server fails, then shuts down in order:
// stop accepting, wait for the requests in flight, let Kafka finish its
// messages, process the acknowledged batches (up to ShutdownTimeout), then
// stop the rest. It returns nil after a clean stop. Call it once; Close
// after.
func (a *App) Run(ctx context.Context) error {
	cfg := &a.cfg
	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	hubDone := make(chan struct{})
	go func() { a.hub.Run(hubCtx); close(hubDone) }()
	kafkaRun, err := kafka.Start(cfg.Kafka, kafka.Deps{
		Pipeline: a.pipe, Store: a.st, Hub: a.publisher(), Metrics: a.worker.Metrics, MaxBytes: cfg.MaxDecompressedBytes,
	}, a.reg, a.log)
	if err != nil {
		stopHub()
		<-hubDone
		return err
	}
	defer kafkaRun.Close()
	a.worker.AlertsOut = kafkaRun.AlertsOut()
	// The workers start at once: batches left in the spool by the last
	// run are processed first.
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	workDone := make(chan struct{})
	go func() { a.worker.Run(workCtx); close(workDone) }()
	var side sync.WaitGroup
	a.startSide(workCtx, &side)
	stopUsage := a.startExceptionUsage()

	// The server's timeouts and the connection limit: Shutdown closes
	// the limited listener, which closes a.ln.
	hs := a.srv.HTTPServer(slog.NewLogLogger(a.log.Handler(), slog.LevelWarn))
	lln := a.srv.LimitListener(a.ln)
	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			serveErr <- hs.ServeTLS(lln, cfg.TLSCert, cfg.TLSKey)
		} else {
			serveErr <- hs.Serve(lln)
		}
	}()
	a.srv.SetReady(true)
	// The demo generator stops first at shutdown, whatever its cause.
	demoCtx, stopDemo := context.WithCancel(ctx)
	defer stopDemo()
	if cfg.Demo {
		name, key := demoIntake(cfg.IntakeKeys)
		target := demoTarget(a.ln.Addr(), cfg.TLSCert != "")
		dlog := a.log.With("component", "demo", "intake", name)
		side.Go(func() { runDemo(demoCtx, target, key, dlog) })
	}
	a.logListening()

	var runErr error
	select {
	case err := <-serveErr:
		runErr = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stopDemo()
	a.shutdown(hs, kafkaRun, workDone)
	stopWork()
	<-workDone
	stopUsage() // after matching, before the store closes
	side.Wait()
	stopHub()
	<-hubDone
	a.srv.Wait()
	if err := a.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr == nil {
		a.log.Info("stopped")
	}
	return runErr
}

// startSide starts the goroutines that run beside the workers until ctx
// ends: retention, the IOC and rules watchers, the coverage keeper, the
// job poller, the outputs (which stop after the workers: what the
// shutdown commits is queued for the next start), and the archive's
// pruning and the retro hunter.
func (a *App) startSide(ctx context.Context, side *sync.WaitGroup) {
	side.Go(func() { retain(ctx, a.st, a.log) })
	if a.iocs != nil {
		side.Go(func() { a.iocs.Run(ctx) })
	}
	if a.rules != nil {
		side.Go(func() { a.rules.Run(ctx) })
	}
	side.Go(func() { coverage.Keep(ctx, coverage.File(a.cfg.DataDir), a.cov, 30*time.Second, a.log) })
	if a.jobs != nil {
		side.Go(func() { a.jobs.Run(ctx) })
	}
	side.Go(func() { a.runOutputs(ctx) })
	a.startBlock(ctx, side)
	a.startHunting(ctx, side)
}

// logListening says where raywatch listens, once it is ready.
func (a *App) logListening() {
	cfg := &a.cfg
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	names := make([]string, 0, len(cfg.IntakeKeys))
	for n := range cfg.IntakeKeys {
		names = append(names, n)
	}
	sort.Strings(names)
	addr := a.ln.Addr().String()
	a.log.Info("listening", "addr", addr, "url", scheme+"://"+addr+"/",
		"rules", len(a.eng.Rules()), "intakes", strings.Join(names, ","), "data_dir", cfg.DataDir,
		"dashboard_token", cfg.DashboardToken != "", "workers", cfg.Workers, "help", "raywatch help lists the other commands")
}

// shutdown stops accepting, waits for the requests in flight (each either
// got its batch spooled or not), lets Kafka finish, then processes what
// was acknowledged, within ShutdownTimeout.
func (a *App) shutdown(hs *http.Server, k *kafka.Run, workDone <-chan struct{}) {
	a.log.Info("shutting down: finishing acknowledged batches")
	a.srv.SetReady(false)
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Warn("requests still open at shutdown", "err", err)
	}
	k.Shutdown(sctx)
	a.spool.Drain()
	select {
	case <-workDone:
	case <-sctx.Done():
		n, _ := a.spool.Stats()
		a.log.Warn("shutdown timeout: batches left in the spool for the next start", "batches", n)
	}
}

// retain applies the retention limits now and then every minute until ctx
// ends.
func retain(ctx context.Context, st *store.Store, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if n, err := st.Prune(ctx, time.Now()); err != nil && ctx.Err() == nil {
			log.Error("retention", "err", err)
		} else if n > 0 {
			log.Info("retention deleted alerts", "alerts", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
