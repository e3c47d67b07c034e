package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/rules/exception"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/web"
)

// The wiring of issue 15 (tuning): exceptions, the rules that were
// skipped or cannot fire, the runaway-rule guard, close reasons and the
// IOC search.

// exceptionUsageInterval is how often the exceptions' suppression counts
// go from the engine to the store.
const exceptionUsageInterval = 10 * time.Second

// tuning holds the tuning state of an App.
type tuning struct {
	skips ruleSkips
	exc   *exceptionStore
}

// ruleSkips keeps the rules the last load read but did not load, for the
// dashboard's Rules page. Its methods are safe for concurrent use.
type ruleSkips struct {
	mu   sync.Mutex
	list []web.RuleSkip
}

func (p *ruleSkips) set(skipped []rules.Skip) {
	list := make([]web.RuleSkip, len(skipped))
	for i, s := range skipped {
		list[i] = web.RuleSkip{File: s.File, Line: s.Line, ID: s.ID, Title: s.Title, Reason: s.Reason}
	}
	p.mu.Lock()
	p.list = list
	p.mu.Unlock()
}

func (p *ruleSkips) get() []web.RuleSkip {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]web.RuleSkip(nil), p.list...)
}

// openTuning applies the stored exceptions to the engine and builds the
// exceptions' API adapter. The store and the engine must be open.
func (a *App) openTuning() error {
	a.tune.exc = &exceptionStore{st: a.st, eng: a.eng, log: a.log.With("component", "exceptions")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.tune.exc.apply(ctx)
}

// rulesSkipped records and logs the rules a load read but did not load.
func (a *App) rulesSkipped(skipped []rules.Skip) {
	a.tune.skips.set(skipped)
	for _, s := range skipped {
		a.log.Info("rule not loaded", "file", s.File, "line", s.Line, "rule", s.Title, "reason", s.Reason)
	}
}

// rulesReloaded records the problems of a reload of the rules folder and
// says which rules cannot fire.
func (a *App) rulesReloaded(problems []*rules.LoadError) {
	a.probs.set(problems)
	logUnable(a.log, a.eng)
}

// logUnable logs a warning for each enabled rule of eng that cannot fire.
func logUnable(log *slog.Logger, eng *engine.Engine) {
	for _, r := range Unable(eng) {
		h := r.Health
		log.Warn("rule unable to fire: not evaluated", "file", h.File, "line", h.Line, "field", h.Field, "rule", r.Title, "reason", h.Reason)
	}
}

// startExceptionUsage stores the exceptions' suppression counts every
// exceptionUsageInterval until the returned stop is called; stop makes a
// last flush and waits for it. Call stop once matching has stopped and
// before the store closes.
func (a *App) startExceptionUsage() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.eng.RunExceptionUsage(ctx, a.st, exceptionUsageInterval, a.log.With("component", "exceptions"))
	}()
	return func() {
		cancel()
		<-done
	}
}

// onThrottle says, once per rule and minute, that a rule went over its
// alert budget. It runs on the committing goroutine.
func (a *App) onThrottle(th store.Throttle) {
	title := ""
	if a.eng != nil {
		title = ruleTitles(a.eng)[th.Rule]
	}
	a.log.Warn("rule over its alert budget: no new alerts of it until the minute ends (matches still count into its open alerts)",
		"rule", th.Rule, "title", title, "minute", th.Minute, "budget", a.cfg.Tuning.RuleAlertBudget)
}

// ruleTitles maps the ids of eng's rules to their titles.
func ruleTitles(eng *engine.Engine) map[string]string {
	out := map[string]string{}
	for _, r := range eng.Rules() {
		out[r.ID] = r.Title
	}
	return out
}

// throttleReport is GET /api/v1/throttled: the rules throttled in the last
// hour.
func (a *App) throttleReport(ctx context.Context) (web.ThrottleReport, error) {
	since := time.Now().Add(-time.Hour).UTC().Truncate(time.Minute)
	ths, err := a.st.Throttled(ctx, since)
	if err != nil {
		return web.ThrottleReport{}, err
	}
	titles := ruleTitles(a.eng)
	rep := web.ThrottleReport{Budget: a.cfg.Tuning.RuleAlertBudget, Since: since, Throttled: make([]web.RuleThrottle, len(ths))}
	for i, th := range ths {
		rep.Throttled[i] = web.RuleThrottle{Rule: th.Rule, Title: titles[th.Rule], Minute: th.Minute, Created: th.Created, Dropped: th.Dropped}
	}
	return rep, nil
}

// searchIOCs serves GET /api/v1/iocs/search.
func (a *App) searchIOCs(_ context.Context, q string, limit int) (web.IOCSearch, error) {
	res := web.IOCSearch{Query: q, Matches: []web.IOCMatch{}}
	if a.iocs == nil {
		return res, nil
	}
	found, more := a.iocs.Current().Lookup(q, limit)
	res.More = more
	for _, f := range found {
		res.Matches = append(res.Matches, web.IOCMatch{Type: f.Type, Value: f.Value, File: f.File, Line: f.Line, How: f.How})
	}
	return res, nil
}

// ChangeStatus implements web.StatusChanger: the comment and the close
// reason are kept in the alert's status history, the reason counted per
// rule.
func (a alertSource) ChangeStatus(ctx context.Context, id string, ch alert.StatusChange) (alert.Alert, error) {
	return mapStoreErr(a.s.Transition(ctx, id, ch))
}

// exceptionStore adapts the store and the engine to web.ExceptionStore:
// exceptions are stored, then the engine is given the whole stored list.
// Its methods are safe for concurrent use.
type exceptionStore struct {
	st  *store.Store
	eng *engine.Engine
	log *slog.Logger
	mu  sync.Mutex // serializes changes with the engine's reload
}

// maxCloseMatching bounds the open alerts that one new exception closes.
const maxCloseMatching = 10000

// apply gives the engine the stored exceptions. An exception that no
// longer compiles (stored by another version) is left out with an error
// in the log, so that the others still apply.
func (e *exceptionStore) apply(ctx context.Context) error {
	xs, err := e.st.ListExceptions(ctx)
	if err != nil {
		return err
	}
	good := xs[:0]
	for _, x := range xs {
		if err := x.Validate(); err != nil {
			e.log.Error("stored exception left out", "exception", x.ID, "err", err)
			continue
		}
		good = append(good, x)
	}
	return e.eng.SetExceptions(good)
}

// ListExceptions returns the stored exceptions with the suppressions the
// engine counted since the last flush added.
func (e *exceptionStore) ListExceptions(ctx context.Context) ([]exception.Exception, error) {
	xs, err := e.st.ListExceptions(ctx)
	if err != nil {
		return nil, err
	}
	e.eng.AddPendingUsage(xs)
	return xs, nil
}

// AddException validates x against raywatch's fields and loaded rules,
// stores it, applies it and, with c set, closes the open alerts it
// matches.
func (e *exceptionStore) AddException(ctx context.Context, x exception.Exception, c *web.CloseMatching) (exception.Exception, []alert.Alert, error) {
	if err := engine.ValidateException(x); err != nil {
		return exception.Exception{}, nil, fmt.Errorf("%w: %v", web.ErrBadRequest, err)
	}
	if x.Rule != exception.AnyRule && !e.detects(x.Rule) {
		return exception.Exception{}, nil, fmt.Errorf("%w: rule: %q is not the id of a loaded rule (use \"*\" for every rule)", web.ErrBadRequest, x.Rule)
	}
	e.mu.Lock()
	stored, err := e.st.PutException(ctx, x, time.Now())
	if err == nil {
		err = e.apply(ctx)
	}
	e.mu.Unlock()
	switch {
	case errors.Is(err, store.ErrBadException):
		return exception.Exception{}, nil, fmt.Errorf("%w: %v", web.ErrBadRequest, err)
	case err != nil && stored.ID == "":
		return exception.Exception{}, nil, err
	case err != nil:
		return stored, nil, fmt.Errorf("apply exception %s: %w", stored.ID, err)
	}
	e.log.Info("exception added", "exception", stored.ID, "rule", stored.Rule, "by", stored.CreatedBy, "expires", stored.Expires)
	if c == nil {
		return stored, nil, nil
	}
	closed, err := e.closeMatching(ctx, stored, c)
	return stored, closed, err
}

// detects reports whether id is a loaded detection or correlation rule.
func (e *exceptionStore) detects(id string) bool {
	for _, r := range e.eng.Rules() {
		if r.ID == id {
			return r.Kind() != rules.KindFilter
		}
	}
	return false
}

// closeMatching closes the open alerts (of x's rule, or of any) whose
// event x matches, up to maxCloseMatching, and returns them.
func (e *exceptionStore) closeMatching(ctx context.Context, x exception.Exception, c *web.CloseMatching) ([]alert.Alert, error) {
	set, err := exception.Compile([]exception.Exception{x})
	if err != nil {
		return nil, err
	}
	rule := x.Rule
	if rule == exception.AnyRule {
		rule = ""
	}
	ch := alert.StatusChange{Status: alert.StatusClosed, By: c.By, Reason: c.Reason, Comment: "exception " + x.ID + ": " + x.Comment}
	var closed []alert.Alert
	for _, status := range []string{alert.StatusNew, alert.StatusAcknowledged} {
		cursor := ""
		for {
			page, next, err := e.st.List(ctx, store.Query{Limit: 1000, Cursor: cursor, Rule: rule, Status: status})
			if err != nil {
				return closed, err
			}
			for _, al := range page {
				if !set.Matches(0, exception.Doc(al.Event)) {
					continue
				}
				ch.At = time.Now()
				got, err := e.st.Transition(ctx, al.ID, ch)
				if err != nil {
					return closed, err
				}
				if closed = append(closed, got); len(closed) >= maxCloseMatching {
					return closed, nil
				}
			}
			if cursor = next; cursor == "" {
				break
			}
		}
	}
	if len(closed) > 0 {
		e.log.Info("alerts closed by an exception", "exception", x.ID, "alerts", len(closed), "by", c.By)
	}
	return closed, nil
}

// DeleteException deletes the exception id and stops applying it.
func (e *exceptionStore) DeleteException(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.st.DeleteException(ctx, id); err != nil {
		if errors.Is(err, store.ErrExceptionNotFound) {
			return fmt.Errorf("%w: %v", web.ErrNotFound, err)
		}
		return err
	}
	e.log.Info("exception deleted", "exception", id)
	return e.apply(ctx)
}
