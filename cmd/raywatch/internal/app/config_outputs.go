package app

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/notify"
)

// OutputsConfig configures the notification outputs (Alertmanager,
// webhooks, syslog) and the outbox that feeds them.
type OutputsConfig struct {
	// Notify holds what the flags set; App fills in the rest (grouping
	// window, version, logger, metrics registry) when it builds the
	// dispatcher. Notify.WebhookSecret comes from RAYWATCH_WEBHOOK_SECRET
	// or the file RAYWATCH_WEBHOOK_SECRET_FILE, never from a flag.
	Notify notify.Options
	// OutboxMax bounds the deliveries queued for all outputs together
	// (store.Options.OutboxMax).
	OutboxMax int
}

// flags registers the output flags of serve.
func (o *OutputsConfig) flags(fs *flag.FlagSet, env Env) {
	n := &o.Notify
	n.AlertmanagerURLs = SplitList(env("RAYWATCH_ALERTMANAGER_URL"))
	fs.Var((*listFlag)(&n.AlertmanagerURLs), "alertmanager-url", "Prometheus Alertmanager base `URLs`, comma-separated; each gets every alert (RAYWATCH_ALERTMANAGER_URL)")
	fs.DurationVar(&n.AlertmanagerResend, "alertmanager-resend", env.Duration("RAYWATCH_ALERTMANAGER_RESEND", time.Minute), "how often alerts whose grouping slot is open are sent to Alertmanager again (RAYWATCH_ALERTMANAGER_RESEND)")
	fs.StringVar(&n.AlertmanagerMinLevel, "alertmanager-min-level", env.Or("RAYWATCH_ALERTMANAGER_MIN_LEVEL", "low"), "lowest rule level sent to Alertmanager: informational, low, medium, high or critical (RAYWATCH_ALERTMANAGER_MIN_LEVEL)")
	n.WebhookURLs = SplitList(env("RAYWATCH_WEBHOOK_URL"))
	fs.Var((*listFlag)(&n.WebhookURLs), "webhook-url", "`URLs`, comma-separated, that receive one signed JSON POST per alert event; the secret comes from RAYWATCH_WEBHOOK_SECRET[_FILE] (RAYWATCH_WEBHOOK_URL)")
	fs.StringVar(&n.WebhookTemplateFile, "webhook-template", env.Or("RAYWATCH_WEBHOOK_TEMPLATE", ""), "Go text/template file rendering the webhook body instead of the JSON document, e.g. docs/slack-webhook.tmpl (RAYWATCH_WEBHOOK_TEMPLATE)")
	fs.StringVar(&n.WebhookMinLevel, "webhook-min-level", env.Or("RAYWATCH_WEBHOOK_MIN_LEVEL", "low"), "lowest rule level sent to the webhooks (RAYWATCH_WEBHOOK_MIN_LEVEL)")
	fs.StringVar(&n.SyslogAddr, "syslog-addr", env.Or("RAYWATCH_SYSLOG_ADDR", ""), "tcp://HOST:PORT, udp://HOST:PORT or tls://HOST:PORT of a syslog receiver (RFC 5424, CEF messages) (RAYWATCH_SYSLOG_ADDR)")
	fs.StringVar(&n.SyslogMinLevel, "syslog-min-level", env.Or("RAYWATCH_SYSLOG_MIN_LEVEL", "low"), "lowest rule level sent to syslog (RAYWATCH_SYSLOG_MIN_LEVEL)")
	fs.StringVar(&n.ExternalURL, "external-url", env.Or("RAYWATCH_EXTERNAL_URL", ""), "the dashboard's URL as people reach it, for links in notifications (RAYWATCH_EXTERNAL_URL)")
	fs.IntVar(&o.OutboxMax, "outbox-max", int(env.Int("RAYWATCH_OUTBOX_MAX", 1_000_000)), "deliveries kept for the outputs while they are down; beyond it the oldest are dropped and counted (RAYWATCH_OUTBOX_MAX)")
}

// loadSecret reads the webhook secret from RAYWATCH_WEBHOOK_SECRET or the
// file RAYWATCH_WEBHOOK_SECRET_FILE (its trailing newline dropped). Its
// errors never hold the secret.
func (o *OutputsConfig) loadSecret(env Env) error {
	secret := env("RAYWATCH_WEBHOOK_SECRET")
	if f := env("RAYWATCH_WEBHOOK_SECRET_FILE"); f != "" {
		if secret != "" {
			return errors.New("set RAYWATCH_WEBHOOK_SECRET or RAYWATCH_WEBHOOK_SECRET_FILE, not both")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("RAYWATCH_WEBHOOK_SECRET_FILE: %w", err)
		}
		if secret = strings.TrimRight(string(b), "\r\n"); secret == "" {
			return fmt.Errorf("RAYWATCH_WEBHOOK_SECRET_FILE %s is empty", f)
		}
	}
	o.Notify.WebhookSecret = nil
	if secret != "" {
		o.Notify.WebhookSecret = []byte(secret)
	}
	return nil
}

// validate checks the output configuration; each error names its flag.
func (o *OutputsConfig) validate() []error {
	var errs []error
	if err := o.Notify.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.OutboxMax < 1 {
		errs = append(errs, errors.New("--outbox-max must be at least 1"))
	}
	return errs
}

// listFlag is a comma-separated list of URLs: each use of the flag
// replaces the list.
type listFlag []string

// String shows the URLs (a default from the environment, in -h) without
// credentials, path or query: Slack-style webhook URLs carry their secret
// in the path.
func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	shown := make([]string, len(*l))
	for i, raw := range *l {
		shown[i] = "(invalid URL)"
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			shown[i] = u.Scheme + "://" + u.Host
		}
	}
	return strings.Join(shown, ",")
}

func (l *listFlag) Set(s string) error {
	*l = SplitList(s)
	return nil
}
