package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/raywatch/raywatch/engine/ioc"
	"io"
	"io/fs"
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

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/web"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg Config
	fs := flag.NewFlagSet("raywatch serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.serveFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "raywatch serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if err := cfg.loadSecrets(); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)
	return serve(ctx, cfg, log, stderr)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// serve runs raywatch until ctx is cancelled, then drains and returns nil.
func serve(ctx context.Context, cfg Config, log *slog.Logger, stderr io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	if len(cfg.IntakeKeys) == 0 {
		key, err := loadOrCreateKey(cfg.DataDir, stderr)
		if err != nil {
			return err
		}
		cfg.IntakeKeys = map[string]string{"default": key}
	}
	if cfg.Demo {
		if err := prepareDemo(&cfg); err != nil {
			return err
		}
	}
	var iocs *ioc.Watcher
	if cfg.IOCDir != "" {
		w, err := ioc.NewWatcher(cfg.IOCDir, ioc.Options{Logger: log.With("component", "ioc")})
		if err != nil {
			return err
		}
		iocs = w
		cfg.iocSet = w.Current
		log.Info("indicators loaded", "dir", cfg.IOCDir, "indicators", w.Current().Len())
	}
	cfg.ruleErrs = &ruleProblems{}
	eng, err := loadEngine(cfg, log)
	if err != nil {
		return err
	}
	defer startRuleWatcher(ctx, cfg, eng, log)()
	st, err := store.Open(filepath.Join(cfg.DataDir, "alerts.db"), store.Options{
		GroupWindow: cfg.GroupWindow,
		MaxAge:      cfg.RetentionAge,
		MaxAlerts:   cfg.RetentionCount,
	})
	if err != nil {
		return err
	}
	defer st.Close()
	spool, err := store.OpenSpool(store.SpoolOptions{
		Dir:      filepath.Join(cfg.DataDir, "spool"),
		MaxBytes: cfg.SpoolMaxBytes,
		Done:     st.BatchDone,
	})
	if err != nil {
		return err
	}
	defer spool.Close()
	if n, b := spool.Stats(); n > 0 {
		log.Info("replaying spooled batches", "batches", n, "bytes", b)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStoreCollector(st, spool))

	hubCtx, stopHub := context.WithCancel(context.Background())
	defer stopHub()
	hub := web.NewHub()
	hubDone := make(chan struct{})
	go func() { hub.Run(hubCtx); close(hubDone) }()

	p := &pipeline{
		detector:   detector{norm: normalize.New(normalize.Options{}), eng: eng, dataset: cfg.Dataset},
		store:      st,
		spool:      spool,
		hub:        hub,
		log:        log.With("component", "pipeline"),
		maxLine:    cfg.MaxLineBytes,
		maxRecords: cfg.MaxRecords,
		metrics:    newPipelineMetrics(reg),
		coverage:   NewFieldCoverage(CoverageOptions{}),
		activity:   &intakeActivity{},
	}
	if iocs != nil {
		reg.MustRegister(iocs.Collectors()...)
	}
	kafka, err := startKafka(cfg, p, reg, log)
	if err != nil {
		return err
	}
	defer kafka.close()
	jobs := newJobPoller(cfg.IntakeKeys, p.activity, log)
	// The workers start at once: batches left in the spool by the last run
	// are processed first.
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	workDone := make(chan struct{})
	go func() { p.run(workCtx, cfg.Workers); close(workDone) }()

	retentionDone := make(chan struct{})
	go func() { retain(workCtx, st, log); close(retentionDone) }()
	// The IOC watcher, the coverage keeper and the job poller run until
	// the workers stop.
	var side sync.WaitGroup
	if iocs != nil {
		side.Go(func() { iocs.Run(workCtx) })
	}
	side.Go(func() { keepCoverage(workCtx, coverageFile(cfg.DataDir), p.coverage, 30*time.Second, log) })
	if jobs != nil {
		side.Go(func() { jobs.run(workCtx) })
	}

	srv, err := web.New(web.Options{
		IntakeKeys:           cfg.IntakeKeys,
		DashboardToken:       cfg.DashboardToken,
		Spool:                spoolAdapter{spool},
		Alerts:               alertSource{s: st, spool: spool, rules: ruleLister{eng}},
		Rules:                ruleLister{eng},
		Hub:                  hub,
		Logger:               log,
		Registry:             reg,
		MaxBodyBytes:         cfg.MaxBodyBytes,
		MaxDecompressedBytes: cfg.MaxDecompressedBytes,
		MaxLines:             cfg.MaxRecords,
		Reports: map[string]web.Reporter{
			"iocs":     iocReport(iocs),
			"coverage": func(context.Context) (any, error) { return coverageReports(eng, p.coverage) },
			"jobs":     jobs.report,
		},
		RuleNotes:  func(context.Context) map[string]map[string]any { return ruleCoverageNotes(eng, p.coverage) },
		RuleErrors: cfg.ruleErrs.get,
		Overview:   newOverviewCache(st).get,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			serveErr <- hs.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			serveErr <- hs.Serve(ln)
		}
	}()
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	srv.SetReady(true)
	// The demo generator stops first at shutdown, whatever its cause.
	demoCtx, stopDemo := context.WithCancel(ctx)
	defer stopDemo()
	if cfg.Demo {
		name, key := demoIntake(cfg.IntakeKeys)
		target := demoTarget(ln.Addr(), cfg.TLSCert != "")
		dlog := log.With("component", "demo", "intake", name)
		side.Go(func() { runDemo(demoCtx, target, key, dlog) })
	}
	names := make([]string, 0, len(cfg.IntakeKeys))
	for n := range cfg.IntakeKeys {
		names = append(names, n)
	}
	sort.Strings(names)
	log.Info("listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String()+"/",
		"rules", len(eng.Rules()), "intakes", strings.Join(names, ","), "data_dir", cfg.DataDir,
		"dashboard_token", cfg.DashboardToken != "", "workers", cfg.Workers)

	var runErr error
	select {
	case err := <-serveErr:
		runErr = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Stop accepting, wait for the requests in flight (each either got
	// its batch spooled or not), then process what was acknowledged.
	stopDemo()
	log.Info("shutting down: finishing acknowledged batches")
	srv.SetReady(false)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("requests still open at shutdown", "err", err)
	}
	kafka.shutdown(sctx)
	spool.Drain()
	select {
	case <-workDone:
	case <-sctx.Done():
		n, _ := spool.Stats()
		log.Warn("shutdown timeout: batches left in the spool for the next start", "batches", n)
	}
	stopWork()
	<-workDone
	<-retentionDone
	side.Wait()
	stopHub()
	<-hubDone
	srv.Wait()
	spool.Close()
	if err := st.Close(); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	log.Info("stopped")
	return nil
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

// loadEngine compiles the built-in rules plus those of the rules folder. A
// broken drop-in file is logged with its file and line and skipped.
func loadEngine(cfg Config, log *slog.Logger) (*engine.Engine, error) {
	eng, problems, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	cfg.ruleErrs.set(problems)
	for _, p := range problems {
		log.Error("rule skipped", "file", p.File, "line", p.Line, "err", p.Err)
	}
	return eng, nil
}

// loadRules returns the built-in rules with those of rulesDir on top.
func loadRules(rulesDir string) ([]rules.Rule, []*rules.LoadError, error) {
	rs, err := rules.Builtin()
	if err != nil {
		return nil, nil, err
	}
	if rulesDir == "" {
		return rs, nil, nil
	}
	extra, problems, err := rules.LoadDir(rulesDir)
	if err != nil {
		return nil, nil, err
	}
	return rules.Merge(rs, extra), problems, nil
}

// loadOrCreateKey returns the intake key kept in the data folder, creating
// it (and printing it once, with the Logpush destination to use) on first
// start.
func loadOrCreateKey(dataDir string, out io.Writer) (string, error) {
	path := keyFile(dataDir)
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("intake key file %s is empty; delete it to generate a new key", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read intake key: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate intake key: %w", err)
	}
	key := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("save intake key: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("save intake key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("save intake key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("save intake key: %w", err)
	}
	fmt.Fprintf(out, `
raywatch generated an intake key for intake "default" and saved it in %s.
It is shown only this once (set RAYWATCH_INTAKE_KEY to choose your own).

  intake key:        %s
  destination_conf:  https://YOUR-RAYWATCH-HOST/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=%s

Use that destination_conf in a Cloudflare Logpush http_requests job (Logpush
needs HTTPS: start raywatch with --tls-cert/--tls-key or put it behind a TLS proxy).

`, path, key, key)
	return key, nil
}
