package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// maxActive bounds the alerts an Alertmanager output keeps firing by
// re-sends; beyond it, new ones are sent once and resolve on their own.
const maxActive = 10000

// amChunk bounds the alerts of one POST.
const amChunk = 500

// amAlert is an alert as Alertmanager's API v2 takes it (postableAlert in
// its OpenAPI specification).
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// firing is an alert that re-sends keep firing until its slot ends.
type firing struct {
	am      amAlert
	slotEnd time.Time
}

// alertmanager posts alerts to one Alertmanager's /api/v2/alerts.
//
// Alertmanager resolves an alert whose endsAt has passed, and gives one
// posted without endsAt its resolve_timeout (5 minutes by default). So,
// as Prometheus does, every post of a firing alert carries an endsAt a
// few re-send intervals ahead (never past the end of the alert's grouping
// slot), and alerts whose slot is open are posted again every interval;
// when the slot ends, or the alert is closed in raywatch, a last post
// ends it. An alert whose slot ended before it was first sent (a late
// record, or no grouping window) fires for those few intervals and then
// resolves on its own. If raywatch stops, its alerts resolve by the
// endsAt they were last sent with; at start, the alerts whose slot is
// still open are read from the store and kept firing again.
//
// Only the runner's goroutine uses it, except active().
type alertmanager struct {
	url    string // without user and password
	user   *url.Userinfo
	client *http.Client
	opts   *Options
	links  func(string) string
	ua     string
	name   string // the output's, for Options.Accepts
	alerts Alerts

	firing map[string]*firing
	count  atomic.Int64
}

func newAlertmanager(raw, name string, o *Options, alerts Alerts, links func(string) string) *alertmanager {
	u, _ := url.Parse(raw) // validated
	am := &alertmanager{
		user: u.User, client: o.HTTPClient, opts: o, links: links, ua: userAgent(o.Version),
		name: name, alerts: alerts, firing: map[string]*firing{},
	}
	u.User = nil
	if !strings.HasSuffix(u.Path, "/api/v2/alerts") {
		u.Path = strings.TrimRight(u.Path, "/") + "/api/v2/alerts"
	}
	am.url = u.String()
	return am
}

func (m *alertmanager) close() error            { return nil }
func (m *alertmanager) interval() time.Duration { return m.opts.AlertmanagerResend }
func (m *alertmanager) active() int             { return int(m.count.Load()) }

// keep is how far ahead of now a firing alert's endsAt is set.
func (m *alertmanager) keep() time.Duration { return 4 * m.opts.AlertmanagerResend }

// slotEnd is when the grouping slot of a ends: the end of the window its
// first event falls in (its first event itself without a window).
func (m *alertmanager) slotEnd(a *alert.Alert) time.Time {
	w := m.opts.GroupWindow
	if w <= 0 {
		return a.FirstSeen
	}
	return a.FirstSeen.UTC().Truncate(w).Add(w)
}

// payload returns a as Alertmanager takes it, without endsAt.
func (m *alertmanager) payload(a *alert.Alert) amAlert {
	td := templateData(&delivery{alert: *a}, m.links(a.ID))
	labels := map[string]string{
		"alertname": a.Rule.Title,
		"rule_id":   a.Rule.ID,
		"severity":  strings.ToLower(a.Rule.Level),
		"intake":    a.Intake,
		"source_ip": td.SourceIP,
		"host":      td.Host,
		"alert_id":  a.ID,
	}
	for k, v := range labels {
		if v == "" {
			delete(labels, k) // Alertmanager reads an empty label as no label
		}
	}
	if labels["alertname"] == "" {
		labels["alertname"] = a.Rule.ID
	}
	summary := a.Rule.Title
	if td.Host != "" || td.SourceIP != "" {
		summary += " on " + orDash(td.Host) + " from " + orDash(td.SourceIP)
	}
	desc := strings.TrimSpace(a.Rule.Description)
	if desc != "" {
		desc += "\n\n"
	}
	desc += fmt.Sprintf("%d event(s) from %s to %s; status %s.", a.Count,
		a.FirstSeen.UTC().Format(time.RFC3339), a.LastSeen.UTC().Format(time.RFC3339), a.Status)
	if td.URL != "" {
		desc += "\nRequest: " + orDash(td.Method) + " " + truncate(td.URL, 1024)
	}
	ann := map[string]string{"summary": summary, "description": desc}
	if td.Link != "" {
		ann["dashboard"] = td.Link
	}
	return amAlert{Labels: labels, Annotations: ann, StartsAt: a.FirstSeen.UTC(), GeneratorURL: td.Link}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// withEnd returns p with the endsAt of an alert whose slot ends at
// slotEnd, as of now: the slot's end or now+keep, whichever is first; for
// a closed alert, now.
func (m *alertmanager) withEnd(p amAlert, slotEnd time.Time, closed bool, now time.Time) amAlert {
	switch {
	case closed:
		p.EndsAt = now
	case slotEnd.After(now):
		p.EndsAt = now.Add(m.keep())
		if slotEnd.Before(p.EndsAt) {
			p.EndsAt = slotEnd
		}
	default: // late: fire for a while all the same
		p.EndsAt = now.Add(m.keep())
	}
	if p.EndsAt.Before(p.StartsAt) {
		p.EndsAt = p.StartsAt
	}
	p.EndsAt = p.EndsAt.UTC()
	return p
}

// send posts the alerts of ds, as they are now, in one request (the
// latest of each alert); if Alertmanager refuses the lot (400: one of
// them is invalid), it posts them one by one so that only the invalid one
// fails.
func (m *alertmanager) send(ctx context.Context, ds []delivery) (int, error) {
	now := time.Now()
	ps := make([]amAlert, 0, len(ds))
	for i := range ds {
		a := &ds[i].alert
		ps = append(ps, m.withEnd(m.payload(a), m.slotEnd(a), a.Status == alert.StatusClosed, now))
	}
	err := m.post(ctx, ps)
	if err == nil {
		for i := range ds {
			m.track(&ds[i].alert, ps[i], now)
		}
		return len(ds), nil
	}
	if se, ok := err.(*sendError); !ok || !se.permanent || len(ds) == 1 {
		return 0, err
	}
	for i := range ds {
		if err := m.post(ctx, ps[i:i+1]); err != nil {
			return i, err
		}
		m.track(&ds[i].alert, ps[i], now)
	}
	return len(ds), nil
}

// track keeps a firing while its slot is open, and forgets it otherwise.
func (m *alertmanager) track(a *alert.Alert, p amAlert, now time.Time) {
	end := m.slotEnd(a)
	if a.Status == alert.StatusClosed || !end.After(now) {
		delete(m.firing, a.ID)
	} else if _, ok := m.firing[a.ID]; ok || len(m.firing) < maxActive {
		p.EndsAt = time.Time{}
		m.firing[a.ID] = &firing{am: p, slotEnd: end}
	}
	m.count.Store(int64(len(m.firing)))
}

// start reads the alerts whose slot is still open from the store, to keep
// them firing (their Alertmanager endsAt may have passed while raywatch
// was stopped).
func (m *alertmanager) start(ctx context.Context, now time.Time) error {
	if m.alerts == nil {
		return nil
	}
	from := now.Add(-m.opts.GroupWindow)
	cursor := ""
	for {
		page, next, err := m.alerts.List(ctx, store.Query{Limit: 1000, Cursor: cursor, From: from})
		if err != nil {
			return err
		}
		for i := range page {
			a := &page[i]
			if a.Status == alert.StatusClosed || !m.slotEnd(a).After(now) || !m.opts.Accepts(m.name, a) {
				continue
			}
			if len(m.firing) >= maxActive {
				return nil
			}
			m.firing[a.ID] = &firing{am: m.payload(a), slotEnd: m.slotEnd(a)}
		}
		m.count.Store(int64(len(m.firing)))
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// maintain re-sends the firing alerts, ending those whose slot ended.
// Those it cannot post stay, to be posted again; an alert whose last
// endsAt has passed needs no more posts (Alertmanager resolved it).
func (m *alertmanager) maintain(ctx context.Context, now time.Time) (int, error) {
	var ids []string
	var ps []amAlert
	for id, f := range m.firing {
		if now.After(f.slotEnd.Add(m.keep())) {
			delete(m.firing, id)
			continue
		}
		p := m.withEnd(f.am, f.slotEnd, false, now)
		if !f.slotEnd.After(now) { // the last post: the alert ends with its slot
			p.EndsAt = f.slotEnd.UTC()
			if p.EndsAt.Before(p.StartsAt) {
				p.EndsAt = p.StartsAt
			}
		}
		ids = append(ids, id)
		ps = append(ps, p)
	}
	defer func() { m.count.Store(int64(len(m.firing))) }()
	posted := 0
	for len(ps) > 0 {
		n := min(len(ps), amChunk)
		if err := m.post(ctx, ps[:n]); err != nil {
			return posted, err
		}
		posted += n
		for _, id := range ids[:n] {
			if f := m.firing[id]; f != nil && !f.slotEnd.After(now) {
				delete(m.firing, id) // its last post ended it
			}
		}
		ids, ps = ids[n:], ps[n:]
	}
	return posted, nil
}

func (m *alertmanager) post(ctx context.Context, ps []amAlert) error {
	body, err := json.Marshal(ps)
	if err != nil {
		return permanent("encode alerts: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.url, bytes.NewReader(body))
	if err != nil {
		return permanent("build request: %s", errText(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", m.ua)
	if m.user != nil {
		pw, _ := m.user.Password()
		req.SetBasicAuth(m.user.Username(), pw)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %d alert(s) to alertmanager: %s", len(ps), errText(err))
	}
	return httpResult(resp, "alertmanager")
}
