package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/raywatch/raywatch/rules/alert"
)

// Webhook headers.
const (
	// HeaderSignature carries "sha256=" and the hex HMAC-SHA256 of the
	// exact body with the webhook secret, when one is set.
	HeaderSignature = "X-Raywatch-Signature"
	// HeaderDelivery carries the delivery id: unique per delivery, the
	// same on its retries, so that receivers can de-duplicate.
	HeaderDelivery = "X-Raywatch-Delivery"
)

// TemplateData is what a webhook template (--webhook-template) renders.
// The event fields are "" when the alert's event does not have them.
type TemplateData struct {
	// Kind is alert.new, alert.updated or alert.status.
	Kind string
	// Alert is the alert as GET /api/v1/alerts/{id} returns it.
	Alert alert.Alert
	// Link is the alert's page on the dashboard ("" without
	// --external-url).
	Link string
	// DeliveryID is the delivery's X-Raywatch-Delivery.
	DeliveryID string
	// From the alert's event: source IP, host, user-agent, URL and method.
	SourceIP, Host, UserAgent, URL, Method string
}

// Body is the default webhook body.
type Body struct {
	Kind  string      `json:"kind"`
	Alert alert.Alert `json:"alert"`
}

func templateData(d *delivery, link string) TemplateData {
	ev := d.alert.Event
	return TemplateData{
		Kind: d.job.Kind, Alert: d.alert, Link: link, DeliveryID: d.job.DeliveryID,
		SourceIP:  alert.Field(ev, "source.ip", "client.ip", "cloudflare.ClientIP"),
		Host:      alert.Field(ev, "destination.address", "url.domain", "cloudflare.ClientRequestHost"),
		UserAgent: alert.Field(ev, "user_agent.original", "cloudflare.ClientRequestUserAgent"),
		URL:       alert.Field(ev, "url.original", "url.full", "url.path", "cloudflare.ClientRequestURI"),
		Method:    alert.Field(ev, "http.request.method", "cloudflare.ClientRequestMethod"),
	}
}

// linker returns the function that makes the link to an alert's page on
// the dashboard (its route #/alert/ID), or "" without an external URL.
func linker(external string) func(id string) string {
	if external == "" {
		return func(string) string { return "" }
	}
	base := strings.TrimRight(external, "/")
	return func(id string) string { return base + "/#/alert/" + url.PathEscape(id) }
}

var templateFuncs = template.FuncMap{
	// json encodes a value as JSON (a string with its quotes), to build
	// JSON bodies safely.
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	// truncate cuts s to at most n bytes, on a character boundary.
	"truncate": func(n int, s string) string { return truncate(s, n) },
	// replace replaces every old in s with new: {{ .Host | replace "<" "&lt;" }}.
	"replace": func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
}

// loadTemplate reads and parses the webhook template file ("" for none),
// and renders it once on a sample alert so that a mistake shows at start.
func loadTemplate(path string) (*template.Template, error) {
	if path == "" {
		return nil, nil
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--webhook-template: %w", err)
	}
	t, err := template.New(filepath.Base(path)).Funcs(templateFuncs).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("--webhook-template %s: %w", path, err)
	}
	sample := delivery{alert: alert.Alert{ID: "0", Rule: alert.RuleRef{ID: "r", Title: "t", Level: "high"}, Event: map[string]any{}}}
	sample.job.Kind = "alert.new"
	if err := t.Execute(io.Discard, templateData(&sample, "")); err != nil {
		return nil, fmt.Errorf("--webhook-template %s: %w", path, err)
	}
	return t, nil
}

// webhook posts one JSON document per delivery.
type webhook struct {
	url    string // without user and password
	user   *url.Userinfo
	client *http.Client
	secret []byte
	tmpl   *template.Template
	links  func(string) string
	ua     string
}

func newWebhook(raw string, o *Options, tmpl *template.Template, links func(string) string) *webhook {
	u, _ := url.Parse(raw) // validated
	w := &webhook{user: u.User, client: o.HTTPClient, secret: o.WebhookSecret, tmpl: tmpl, links: links, ua: userAgent(o.Version)}
	u.User = nil
	w.url = u.String()
	return w
}

func userAgent(version string) string {
	if version == "" {
		version = "dev"
	}
	return "raywatch/" + version
}

func (w *webhook) close() error { return nil }

func (w *webhook) send(ctx context.Context, ds []delivery) (int, error) {
	for i := range ds {
		if err := w.post(ctx, &ds[i]); err != nil {
			return i, err
		}
	}
	return len(ds), nil
}

// body renders the body of delivery d.
func (w *webhook) body(d *delivery) ([]byte, error) {
	if w.tmpl == nil {
		return json.Marshal(Body{Kind: d.job.Kind, Alert: d.alert})
	}
	var buf bytes.Buffer
	if err := w.tmpl.Execute(&buf, templateData(d, w.links(d.alert.ID))); err != nil {
		return nil, permanent("render webhook template: %v", err)
	}
	return buf.Bytes(), nil
}

// Sign returns the X-Raywatch-Signature of body with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *webhook) post(ctx context.Context, d *delivery) error {
	body, err := w.body(d)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return permanent("build request: %v", errText(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.ua)
	req.Header.Set(HeaderDelivery, d.job.DeliveryID)
	if len(w.secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(w.secret, body))
	}
	if w.user != nil {
		pw, _ := w.user.Password()
		req.SetBasicAuth(w.user.Username(), pw)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook: %s", errText(err))
	}
	return httpResult(resp, "webhook")
}

// httpResult classifies an answer, and closes its body: 2xx is success;
// 408, 429 and 5xx are worth retrying (after Retry-After when given); any
// other status is a permanent refusal.
func httpResult(resp *http.Response, what string) error {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	c := resp.StatusCode
	switch {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return &sendError{msg: what + " answered " + resp.Status, retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		return permanent("%s answered %s", what, resp.Status)
	}
}

// retryAfter parses a Retry-After header (seconds or an HTTP date); 0 when
// absent or invalid.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
