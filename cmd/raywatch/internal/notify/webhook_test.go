package notify

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// metricValue returns the value of metric name for output in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name, output string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == output {
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{output=%q}", name, output)
	return 0
}

// receiver is a webhook receiver that verifies signatures and
// de-duplicates deliveries by id, as the README tells receivers to.
type receiver struct {
	t      *testing.T
	secret []byte

	mu         sync.Mutex
	answer     func(n int) int // status for the n-th request (from 1); nil: 200
	hits       int
	deliveries map[string]Body // by delivery id
	order      []Body          // first arrival of each delivery
	badSig     int
}

func newReceiver(t *testing.T, secret []byte) (*receiver, *httptest.Server) {
	r := &receiver{t: t, secret: secret, deliveries: map[string]Body{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits++
	if r.answer != nil {
		if code := r.answer(r.hits); code != 200 {
			if code == -1 { // the connection drops
				hj, _ := w.(http.Hijacker)
				c, _, _ := hj.Hijack()
				c.Close()
				return
			}
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(code)
			return
		}
	}
	if sig := req.Header.Get(HeaderSignature); len(r.secret) > 0 && !hmac.Equal([]byte(sig), []byte(Sign(r.secret, body))) {
		r.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := req.Header.Get(HeaderDelivery)
	if id == "" {
		r.t.Errorf("delivery without %s", HeaderDelivery)
	}
	if _, dup := r.deliveries[id]; dup {
		return // already processed
	}
	var b Body
	if err := json.Unmarshal(body, &b); err != nil {
		r.t.Errorf("webhook body %q: %v", body, err)
	}
	r.deliveries[id] = b
	r.order = append(r.order, b)
}

// got returns, per alert id, the kinds received in order and the last
// alert body.
func (r *receiver) got() (kinds map[string][]string, last map[string]alert.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kinds, last = map[string][]string{}, map[string]alert.Alert{}
	for _, b := range r.order {
		kinds[b.Alert.ID] = append(kinds[b.Alert.ID], b.Kind)
		last[b.Alert.ID] = b.Alert
	}
	return kinds, last
}

func (r *receiver) count() (hits, deliveries int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits, len(r.deliveries)
}

func TestWebhookSignedDeliveries(t *testing.T) {
	secret := []byte("s3cret-for-tests")
	rcv, srv := newReceiver(t, secret)
	// Credentials and a path token in the URL must never show.
	target := strings.Replace(srv.URL, "http://", "http://hook-user:hook-pass@", 1) + "/services/T0/B0/TOKEN123"
	o := testOptions(Options{WebhookURLs: []string{target}, WebhookSecret: secret, ExternalURL: "https://rw.example/base/"}, nil)
	st := tempStore(t, &o)
	d := start(t, o, st)

	t0 := slotStart().Add(time.Second)
	created := commit(t, st, hit(t0, "r1", "k1", "203.0.113.7"), hit(t0, "r2", "k1", "203.0.113.8"))
	d.Wake()
	waitFor(t, "two deliveries", func() bool { _, n := rcv.count(); return n == 2 })
	if _, err := st.SetStatus(context.Background(), created[0].ID, alert.StatusClosed, "ana", time.Now()); err != nil {
		t.Fatal(err)
	}
	d.Wake()
	waitFor(t, "the status delivery", func() bool { _, n := rcv.count(); return n == 3 })

	kinds, last := rcv.got()
	want := map[string][]string{
		created[0].ID: {store.KindNew, store.KindStatus},
		created[1].ID: {store.KindNew},
	}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("kinds received (-want +got):\n%s", diff)
	}
	if a := last[created[0].ID]; a.Status != alert.StatusClosed || a.Rule.Title != "Title of r1" || a.Intake != "zone-a" {
		t.Errorf("last body of %s = %+v; want the closed alert as stored", created[0].ID, a)
	}
	if rcv.badSig != 0 {
		t.Errorf("%d bodies with a bad signature", rcv.badSig)
	}

	waitFor(t, "three acknowledged", func() bool { return outputStatus(t, d, "webhook-1").Delivered == 3 })
	s := outputStatus(t, d, "webhook-1")
	if s.State != "ok" || s.Queue != 0 || s.LastSuccess.IsZero() {
		t.Errorf("status = %+v; want ok, empty queue, a last success", s)
	}
	rep, _ := d.Report(context.Background())
	js, _ := json.Marshal(rep)
	for _, secretText := range []string{"hook-pass", "hook-user", "TOKEN123", string(secret)} {
		if strings.Contains(string(js), secretText) {
			t.Errorf("report %s shows %q", js, secretText)
		}
	}
}

func TestWebhookReceiverDownThenUp(t *testing.T) {
	rcv, srv := newReceiver(t, nil)
	isDown := true // guarded by rcv.mu
	rcv.answer = func(n int) int {
		if isDown {
			if n%2 == 0 {
				return http.StatusServiceUnavailable
			}
			return -1 // connection dropped
		}
		return 200
	}
	logs := &logBuffer{}
	// Every change is sent: a delivery that read the alert before it grew
	// is followed at once by the update.
	o := testOptions(Options{WebhookURLs: []string{srv.URL}, UpdateInterval: -1}, logs)
	st := tempStore(t, &o)
	d := start(t, o, st)

	t0 := slotStart().Add(time.Second)
	var all []alert.Alert
	for i := range 20 {
		all = append(all, commit(t, st, hit(t0, "r1", keyN(i), ipN("198.51.100", i)))...)
		d.Wake()
	}
	// One alert grows while the receiver is down.
	grown := commit(t, st, hit(t0.Add(time.Second), "r1", "late", ipN("198.51.100", 1)))[0]
	d.Wake()
	waitFor(t, "several failed attempts", func() bool { h, _ := rcv.count(); return h >= 6 })
	if s := outputStatus(t, d, "webhook-1"); s.State != "retrying" || s.LastError == "" || s.Queue != 20 {
		t.Errorf("status while down = %+v; want retrying with an error and 20 queued", s)
	}
	rcv.mu.Lock()
	isDown = false
	rcv.mu.Unlock()
	waitFor(t, "the queue to drain", func() bool {
		s := outputStatus(t, d, "webhook-1")
		_, n := rcv.count()
		return s.Queue == 0 && s.Delivered == int64(n)
	})

	kinds, last := rcv.got()
	var got []string
	for id := range kinds {
		got = append(got, id)
	}
	slices.Sort(got)
	want := slices.Compact(slices.Sorted(slices.Values(idsOf(all))))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("alerts received (-want +got):\n%s", diff)
	}
	if last[grown.ID].Count != grown.Count {
		t.Errorf("last delivery of the grown alert has count %d; want %d", last[grown.ID].Count, grown.Count)
	}
	s := outputStatus(t, d, "webhook-1")
	if s.State != "ok" || s.Retried == 0 {
		t.Errorf("status after recovery = %+v; want ok with retries counted", s)
	}
	reg := o.Registerer.(*prometheus.Registry)
	for name, want := range map[string]float64{
		"raywatch_output_delivered_total":            float64(s.Delivered),
		"raywatch_output_retried_total":              float64(s.Retried),
		"raywatch_output_failed_total":               0,
		"raywatch_output_queue":                      0,
		"raywatch_output_oldest_undelivered_seconds": 0,
		"raywatch_output_dropped_total":              0,
	} {
		if got := metricValue(t, reg, name, "webhook-1"); got != want {
			t.Errorf("%s = %v; want %v", name, got, want)
		}
	}
	if n := strings.Count(logs.String(), "output failing"); n != 1 {
		t.Errorf("logged %d times that the output fails; want once per outage:\n%s", n, logs)
	}
}

func TestWebhookRefusalIsNotRetried(t *testing.T) {
	rcv, srv := newReceiver(t, nil)
	rcv.answer = func(int) int { return http.StatusBadRequest }
	logs := &logBuffer{}
	o := testOptions(Options{WebhookURLs: []string{srv.URL}}, logs)
	st := tempStore(t, &o)
	d := start(t, o, st)

	t0 := slotStart().Add(time.Second)
	for i := range 5 {
		commit(t, st, hit(t0, "r1", keyN(i), ipN("192.0.2", i)))
	}
	d.Wake()
	waitFor(t, "five failures logged", func() bool {
		return outputStatus(t, d, "webhook-1").Failed == 5 && strings.Count(logs.String(), "delivery refused") == 5
	})
	s := outputStatus(t, d, "webhook-1")
	// Nothing is queued any more, so nothing can be retried: each delivery
	// was tried exactly once.
	if hits, _ := rcv.count(); hits != 5 || s.Queue != 0 || s.Retried != 0 || s.Delivered != 0 {
		t.Errorf("after refusals: %d requests, status %+v; want 5 requests, nothing queued, retried or delivered", hits, s)
	}
	failed, err := st.Outbox().Failed(context.Background(), "webhook-1", 10)
	if err != nil || len(failed) != 5 || failed[0].Reason != "webhook answered 400 Bad Request" {
		t.Errorf("kept failures = %+v, %v; want 5 with the answer as reason", failed, err)
	}
}

func TestOutboxDeliveredAfterRestart(t *testing.T) {
	rcv, srv := newReceiver(t, nil)
	o := testOptions(Options{WebhookURLs: []string{srv.URL}}, nil)
	path := t.TempDir() + "/alerts.db"

	// Alerts committed, and the process gone before any delivery.
	st, err := store.Open(path, store.Options{GroupWindow: window, Outputs: o.Outputs(), OutboxFilter: o.Accepts})
	if err != nil {
		t.Fatal(err)
	}
	t0 := slotStart().Add(time.Second)
	var all []alert.Alert
	for i := range 50 {
		out, err := st.Commit(context.Background(), store.Batch{ID: keyN(i), Alerts: []alert.Alert{hit(t0, "r1", keyN(i), ipN("192.0.2", i))}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, out...)
	}
	if _, err := st.SetStatus(context.Background(), all[0].ID, alert.StatusAcknowledged, "ana", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, path, &o)
	d := start(t, o, st)
	waitFor(t, "51 deliveries", func() bool { _, n := rcv.count(); return n == 51 })
	kinds, _ := rcv.got()
	for _, a := range all {
		want := []string{store.KindNew}
		if a.ID == all[0].ID {
			want = append(want, store.KindStatus)
		}
		if diff := cmp.Diff(want, kinds[a.ID]); diff != "" {
			t.Errorf("deliveries of %s (-want +got):\n%s", a.ID, diff)
		}
	}
	waitFor(t, "an empty queue", func() bool { return outputStatus(t, d, "webhook-1").Queue == 0 })
}

func TestWebhookTemplate(t *testing.T) {
	rcvd := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rcvd <- b
	}))
	t.Cleanup(srv.Close)
	o := testOptions(Options{WebhookURLs: []string{srv.URL}, WebhookTemplateFile: "../../../../docs/slack-webhook.tmpl", ExternalURL: "https://rw.example"}, nil)
	st := tempStore(t, &o)
	d := start(t, o, st)
	a := hit(slotStart().Add(time.Second), "r1", "k1", "203.0.113.9")
	a.Rule.Title = `Title with "quotes" and <angles>`
	stored := commit(t, st, a)[0]
	d.Wake()
	var body []byte
	select {
	case body = <-rcvd:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery")
	}
	var slack struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(body, &slack); err != nil {
		t.Fatalf("Slack body %s: %v", body, err)
	}
	all := slack.Text
	for _, b := range slack.Blocks {
		all += "\n" + b.Text.Text
	}
	for _, want := range []string{`Title with "quotes"`, "203.0.113.9", "shop.example", "https://rw.example/#/alert/" + stored.ID} {
		if !strings.Contains(all, want) {
			t.Errorf("Slack body %s does not contain %q", body, want)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{WebhookURLs: []string{"ftp://x"}},
		{AlertmanagerURLs: []string{"http://"}},
		{SyslogAddr: "tcp://host"},
		{SyslogAddr: "http://host:514"},
		{WebhookMinLevel: "severe"},
		{WebhookURLs: []string{"http://x"}, WebhookTemplateFile: "testdata/nope.tmpl"},
	} {
		if _, err := New(o, nil, nil); err == nil {
			t.Errorf("New(%+v) succeeded; want an error", o)
		}
	}
}

func TestWebhookSpacesOutUpdates(t *testing.T) {
	rcv, srv := newReceiver(t, nil)
	o := testOptions(Options{WebhookURLs: []string{srv.URL}, UpdateInterval: time.Hour}, nil)
	st := tempStore(t, &o)
	d := start(t, o, st)
	t0 := slotStart().Add(time.Second)
	a := commit(t, st, hit(t0, "r1", "k1", "192.0.2.1"))[0]
	d.Wake()
	waitFor(t, "the new alert", func() bool { _, n := rcv.count(); return n == 1 })
	// The alert grows twice, then is acknowledged: the status change goes
	// out at once, with the latest count; the update waits its turn.
	commit(t, st, hit(t0, "r1", "k2", "192.0.2.1"))
	d.Wake()
	commit(t, st, hit(t0, "r1", "k3", "192.0.2.1"))
	d.Wake()
	if _, err := st.SetStatus(context.Background(), a.ID, alert.StatusAcknowledged, "ana", time.Now()); err != nil {
		t.Fatal(err)
	}
	d.Wake()
	waitFor(t, "the status change", func() bool { _, n := rcv.count(); return n == 2 })
	kinds, last := rcv.got()
	if diff := cmp.Diff([]string{store.KindNew, store.KindStatus}, kinds[a.ID]); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	if last[a.ID].Count != 3 || last[a.ID].Status != alert.StatusAcknowledged {
		t.Errorf("status delivery = count %d, status %s; want 3, acknowledged", last[a.ID].Count, last[a.ID].Status)
	}
	waitFor(t, "the update to wait in the queue", func() bool { return outputStatus(t, d, "webhook-1").Queue == 1 })
	jobs, err := st.Outbox().Due(context.Background(), "webhook-1", 10, time.Now().Add(2*time.Hour))
	if err != nil || len(jobs) != 1 || jobs[0].Kind != store.KindUpdated || jobs[0].NextAt.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("queued = %+v, %v; want the update, due in about an hour", jobs, err)
	}
}
