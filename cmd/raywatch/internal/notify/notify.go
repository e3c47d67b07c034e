// Package notify delivers raywatch's alerts to the tools people watch:
// Prometheus Alertmanager, webhooks and syslog.
//
// The deliveries come from the store's outbox ([store.Outbox]), where the
// commit of an alert (or of its status change) queued them in the same
// transaction, so that none is lost when an output is down or raywatch
// stops. A [Dispatcher] runs one goroutine per output, which sends that
// output's due jobs in order, acknowledges them, and backs off (1 s to
// 5 min with jitter) while the output fails; intake and detection never
// wait for it, only the outbox grows.
package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"

	"github.com/prometheus/client_golang/prometheus"
)

// Output types, the prefixes of output names.
const (
	TypeAlertmanager = "alertmanager"
	TypeWebhook      = "webhook"
	TypeSyslog       = "syslog"
)

// Options configures a [Dispatcher]. The zero value has no outputs.
type Options struct {
	// AlertmanagerURLs are the Alertmanagers to send to (each gets every
	// alert: several are a cluster). A URL is the Alertmanager's base
	// ("http://am:9093") or its full "/api/v2/alerts" endpoint; user and
	// password in it are sent as basic authentication.
	AlertmanagerURLs []string
	// AlertmanagerResend is how often alerts whose grouping slot is open
	// are sent again, as Alertmanager expects of firing alerts; 0 means
	// 1 minute.
	AlertmanagerResend time.Duration
	// WebhookURLs receive one POST per delivery (user and password in a
	// URL are sent as basic authentication).
	WebhookURLs []string
	// WebhookSecret, when set, signs webhook bodies (X-Raywatch-Signature).
	WebhookSecret []byte
	// WebhookTemplateFile, when set, is a Go text/template file that
	// renders the webhook body from a [TemplateData] instead of the
	// default JSON document.
	WebhookTemplateFile string
	// SyslogAddr is tcp://HOST:PORT, udp://HOST:PORT or tls://HOST:PORT;
	// "" for no syslog output.
	SyslogAddr string
	// SyslogTLS configures tls:// connections; nil means the system's
	// roots. ServerName defaults to the address's host.
	SyslogTLS *tls.Config
	// Minimum levels (informational, low, medium, high, critical) of the
	// alerts each output type receives; "" means low.
	AlertmanagerMinLevel, WebhookMinLevel, SyslogMinLevel string
	// ExternalURL is the dashboard's address as people reach it, for links
	// in notifications; "" for no links.
	ExternalURL string
	// GroupWindow is the store's grouping window (store.Options.GroupWindow):
	// an alert's slot ends at the end of the window its first event falls in.
	GroupWindow time.Duration
	// Version is raywatch's version, for the CEF header and User-Agent.
	Version string
	// Hostname names this machine in syslog messages; "" means os.Hostname.
	Hostname string
	// Logger receives the dispatcher's logs; nil means slog.Default.
	Logger *slog.Logger
	// Registerer, when set, receives the per-output metrics.
	Registerer prometheus.Registerer
	// HTTPClient sends to Alertmanager and webhooks; nil means a client
	// with a 10-second timeout.
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound the wait after a failed attempt;
	// 0 means 1 second and 5 minutes.
	MinBackoff, MaxBackoff time.Duration
	// UpdateInterval spaces out an output's alert.updated deliveries of
	// one alert: a grouped alert grows with most commits, and a receiver
	// (a chat channel, a SIEM) wants to hear of it now and then, not at
	// every event. The changes in between fold into the waiting delivery,
	// which sends the alert as it is then. New alerts and status changes
	// are never delayed. 0 means 1 minute; a negative value sends every
	// change.
	UpdateInterval time.Duration
	// PollInterval is how often an idle output looks for due jobs that no
	// [Dispatcher.Wake] announced; 0 means 1 second.
	PollInterval time.Duration
	// Extra are outputs implemented elsewhere (the edge block list), run
	// after the ones above. [Options.Outputs] and [Options.Accepts] do not
	// cover them: each names its queue and decides what it takes.
	Extra []Output
}

var levelRank = map[string]int{"informational": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

// rank is the rank of an alert's level; a level that is not one of
// Sigma's five counts as low.
func rank(level string) int {
	if r, ok := levelRank[strings.ToLower(level)]; ok {
		return r
	}
	return levelRank["low"]
}

func minLevel(l string) string {
	if l == "" {
		return "low"
	}
	return strings.ToLower(l)
}

// Outputs returns the names of the configured outputs, as the store's
// Options.Outputs wants them: "alertmanager-1"... and "webhook-1"... in
// the order of the URLs, then "syslog". A name is its output's queue in
// the outbox, so reordering the URLs moves queued jobs to other URLs.
func (o *Options) Outputs() []string {
	var out []string
	for i := range o.AlertmanagerURLs {
		out = append(out, fmt.Sprintf("%s-%d", TypeAlertmanager, i+1))
	}
	for i := range o.WebhookURLs {
		out = append(out, fmt.Sprintf("%s-%d", TypeWebhook, i+1))
	}
	if o.SyslogAddr != "" {
		out = append(out, TypeSyslog)
	}
	return out
}

func outputType(name string) string {
	typ, _, _ := strings.Cut(name, "-")
	return typ
}

func (o *Options) minLevelOf(typ string) string {
	switch typ {
	case TypeAlertmanager:
		return minLevel(o.AlertmanagerMinLevel)
	case TypeWebhook:
		return minLevel(o.WebhookMinLevel)
	default:
		return minLevel(o.SyslogMinLevel)
	}
}

// Accepts reports whether output (one of [Options.Outputs]) takes alert a,
// by the output's minimum level. It suits store.Options.OutboxFilter: it
// is safe for concurrent use.
func (o *Options) Accepts(output string, a *alert.Alert) bool {
	return rank(a.Rule.Level) >= rank(o.minLevelOf(outputType(output)))
}

// Validate checks the options, naming the flag at fault.
func (o *Options) Validate() error {
	var errs []error
	for _, u := range o.AlertmanagerURLs {
		if err := checkHTTPURL(u); err != nil {
			errs = append(errs, fmt.Errorf("--alertmanager-url %s: %w", redactURL(u), err))
		}
	}
	for _, u := range o.WebhookURLs {
		if err := checkHTTPURL(u); err != nil {
			errs = append(errs, fmt.Errorf("--webhook-url %s: %w", redactURL(u), err))
		}
	}
	if o.SyslogAddr != "" {
		if _, _, err := parseSyslogAddr(o.SyslogAddr); err != nil {
			errs = append(errs, fmt.Errorf("--syslog-addr: %w", err))
		}
	}
	if o.ExternalURL != "" {
		if err := checkHTTPURL(o.ExternalURL); err != nil {
			errs = append(errs, fmt.Errorf("--external-url %s: %w", redactURL(o.ExternalURL), err))
		}
	}
	for flag, l := range map[string]string{"--alertmanager-min-level": o.AlertmanagerMinLevel, "--webhook-min-level": o.WebhookMinLevel, "--syslog-min-level": o.SyslogMinLevel} {
		if _, ok := levelRank[minLevel(l)]; !ok {
			errs = append(errs, fmt.Errorf("%s %q: want informational, low, medium, high or critical", flag, l))
		}
	}
	if o.AlertmanagerResend < 0 {
		errs = append(errs, errors.New("--alertmanager-resend cannot be negative"))
	}
	return errors.Join(errs...)
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want an http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

// Outbox is the queue of deliveries the dispatcher works through;
// *store.Outbox implements it.
type Outbox interface {
	Due(ctx context.Context, output string, limit int, now time.Time) ([]store.Job, error)
	Ack(ctx context.Context, jobs ...store.Job) error
	Postpone(ctx context.Context, jobs ...store.Job) error
	Retry(ctx context.Context, j store.Job, next time.Time, reason string) error
	Fail(ctx context.Context, j store.Job, reason string) error
	Stats(output string) (store.OutboxStats, error)
}

// Alerts gives the alerts as stored now; *store.Store implements it. Get
// returns an error wrapping store.ErrNotFound for an alert that is gone.
type Alerts interface {
	Get(ctx context.Context, id string) (alert.Alert, error)
	List(ctx context.Context, q store.Query) ([]alert.Alert, string, error)
}

// Dispatcher sends the outbox's deliveries to the outputs. Create it with
// [New], run it with [Dispatcher.Run]; its methods are safe for concurrent
// use.
type Dispatcher struct {
	opts    Options
	log     *slog.Logger
	outbox  Outbox
	alerts  Alerts
	runners []*runner
	metrics *metrics

	mu      sync.Mutex
	running bool
}

// New returns a dispatcher for the outputs of opts (validated, the
// webhook template read and parsed) over outbox and alerts. It connects
// to nothing: [Dispatcher.Run] does. With a Registerer, New registers the
// metrics, and fails if they are registered already.
func New(opts Options, outbox Outbox, alerts Alerts) (*Dispatcher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.AlertmanagerResend == 0 {
		opts.AlertmanagerResend = time.Minute
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.UpdateInterval == 0 {
		opts.UpdateInterval = time.Minute
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &Dispatcher{opts: opts, log: opts.Logger, outbox: outbox, alerts: alerts}
	tmpl, err := loadTemplate(opts.WebhookTemplateFile)
	if err != nil {
		return nil, err
	}
	links := linker(opts.ExternalURL)
	for i, name := range opts.Outputs() {
		var (
			s      sender
			target string
		)
		switch outputType(name) {
		case TypeAlertmanager:
			u := opts.AlertmanagerURLs[i]
			s, target = newAlertmanager(u, name, &d.opts, alerts, links), redactURL(u)
		case TypeWebhook:
			u := opts.WebhookURLs[i-len(opts.AlertmanagerURLs)]
			s, target = newWebhook(u, &d.opts, tmpl, links), redactURL(u)
		default:
			s, target = newSyslog(&d.opts, links), opts.SyslogAddr
		}
		d.runners = append(d.runners, newRunner(d, name, target, s))
	}
	if err := d.addExtra(); err != nil {
		return nil, err
	}
	if d.metrics, err = newMetrics(opts.Registerer, d); err != nil {
		return nil, err
	}
	return d, nil
}

// addExtra makes the runners of the extra outputs.
func (d *Dispatcher) addExtra() error {
	seen := map[string]bool{}
	for _, r := range d.runners {
		seen[r.name] = true
	}
	for _, o := range d.opts.Extra {
		if o == nil || o.Name() == "" || seen[o.Name()] {
			return fmt.Errorf("notify: extra output %q: no name, or a name already used", outputName(o))
		}
		seen[o.Name()] = true
		r := newRunner(d, o.Name(), o.Target(), extraSender{o})
		r.typ, r.min, r.accepts = o.Type(), o.MinLevel(), o.Accepts
		d.runners = append(d.runners, r)
	}
	return nil
}

func outputName(o Output) string {
	if o == nil {
		return ""
	}
	return o.Name()
}

// Run sends deliveries until ctx is done, one goroutine per output, then
// waits for them and closes the outputs' connections. It returns nil when
// ctx ends, or an error if it is called again. Deliveries in flight when
// ctx ends stay queued and are sent again by the next Run.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("notify: Run called twice")
	}
	d.running = true
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range d.runners {
		wg.Go(func() { r.run(ctx) })
	}
	wg.Wait()
	for _, r := range d.runners {
		if err := r.out.close(); err != nil {
			d.log.Debug("close output", "output", r.name, "err", err)
		}
	}
	return nil
}

// Wake tells the outputs that new jobs may be due: call it after a
// commit (of alerts or of a status change). It never blocks.
func (d *Dispatcher) Wake() {
	for _, r := range d.runners {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Report is the JSON of GET /api/v1/outputs.
type Report struct {
	Outputs []OutputStatus `json:"outputs"`
}

// OutputStatus describes one output. It holds no secret: targets are
// shown without credentials and without path, errors without URLs.
type OutputStatus struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Target   string `json:"target"`
	MinLevel string `json:"min_level"`
	// State is "idle" (nothing sent since start), "ok" (the last attempt
	// succeeded) or "retrying" (the output is failing; see LastError).
	State string `json:"state"`
	// Queue is the number of deliveries waiting in the outbox, Oldest
	// when the oldest of them was queued.
	Queue  int64     `json:"queue"`
	Oldest time.Time `json:"oldest,omitzero"`
	// Dropped counts the deliveries dropped because the outbox was full,
	// Failed those that failed permanently (both since the store was
	// created); Delivered and Retried count since raywatch started.
	Dropped   int64 `json:"dropped"`
	Failed    int64 `json:"failed"`
	Delivered int64 `json:"delivered"`
	Retried   int64 `json:"retried"`
	// Active is, for Alertmanager, the alerts kept firing by re-sends.
	Active      int       `json:"active,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// NextAttempt is, while retrying, when the output is tried again.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// Report returns the state of every output, in the order of
// [Options.Outputs].
func (d *Dispatcher) Report(ctx context.Context) (Report, error) {
	rep := Report{Outputs: []OutputStatus{}}
	for _, r := range d.runners {
		st, err := d.outbox.Stats(r.name)
		if err != nil {
			return Report{}, err
		}
		s := r.status()
		s.Queue, s.Oldest, s.Dropped, s.Failed = st.Queued, st.Oldest, st.Dropped, st.Failed
		rep.Outputs = append(rep.Outputs, s)
	}
	return rep, ctx.Err()
}

// redactURL returns the scheme and host of a URL: no credentials, and no
// path or query, which some services (Slack) use as the secret.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		s += "/…"
	}
	return s
}

// errText returns the text of an error from an HTTP client or a
// connection without the URL (which may hold credentials or a secret
// path): the url.Error's Op and URL are dropped.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout: " + err.Error()
	}
	return err.Error()
}
