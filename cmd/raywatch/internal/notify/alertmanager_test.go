package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/notify/amtest"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"

	"github.com/google/go-cmp/cmp"
)

// startAlertmanager runs Debian's Alertmanager routing every alert to a
// webhook receiver in the test, and returns its URL and the receiver.
func startAlertmanager(t *testing.T) (string, *amtest.Receiver) {
	t.Helper()
	return amtest.Start(t, func(hook string) string {
		return fmt.Sprintf(`route:
  receiver: raywatch-test
  group_by: [alert_id]
  group_wait: 50ms
  group_interval: 200ms
  repeat_interval: 1h
receivers:
  - name: raywatch-test
    webhook_configs:
      - url: %s/
        send_resolved: true
`, hook)
	})
}

// amActive returns the endsAt of alert id as Alertmanager holds it, and
// whether Alertmanager holds it as active.
func amActive(t *testing.T, base, id string) (time.Time, bool) {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts?filter=alert_id%3D%22" + id + "%22")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var as []struct {
		EndsAt time.Time `json:"endsAt"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 {
		return time.Time{}, false
	}
	return as[0].EndsAt, as[0].Status.State == "active"
}

// openSlotTime returns a time whose grouping slot (of width w) ends at
// least min from now.
func openSlotTime(w, min time.Duration) time.Time {
	now := time.Now().UTC()
	if now.Truncate(w).Add(w).Sub(now) < min {
		return now.Truncate(w).Add(w)
	}
	return now
}

func TestAlertmanagerRoutesResendsAndResolves(t *testing.T) {
	base, rcv := startAlertmanager(t)
	// The same Alertmanager twice, by its base URL and its endpoint: an
	// output each, both sent to.
	o := testOptions(Options{
		AlertmanagerURLs:   []string{base, base + "/api/v2/alerts"},
		AlertmanagerResend: 100 * time.Millisecond,
		ExternalURL:        "https://rw.example",
	}, nil)
	st := tempStore(t, &o)
	d := start(t, o, st)

	a := commit(t, st, hit(openSlotTime(window, 5*time.Minute), "r-am", "k1", "203.0.113.77"))[0]
	sentAt := time.Now()
	d.Wake()
	var got amtest.Notification
	waitFor(t, "the firing notification", func() bool { var ok bool; got, ok = rcv.Find(a.ID, "firing"); return ok })
	want := map[string]string{
		"alertname": "Title of r-am", "rule_id": "r-am", "severity": "high", "intake": "zone-a",
		"source_ip": "203.0.113.77", "host": "shop.example", "alert_id": a.ID,
	}
	if diff := cmp.Diff(want, got.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	link := "https://rw.example/#/alert/" + a.ID
	if got.GeneratorURL != link || got.Annotations["dashboard"] != link ||
		got.Annotations["summary"] != "Title of r-am on shop.example from 203.0.113.77" ||
		!strings.Contains(got.Annotations["description"], "What r-am finds.") || !got.StartsAt.Equal(a.FirstSeen) {
		t.Errorf("notification = %+v; want the link %s, summary, description and startsAt %v", got, link, a.FirstSeen)
	}

	// Each post gives the alert 4 re-send intervals (400ms): only re-sends
	// keep it active beyond that.
	waitFor(t, "re-sends to extend the alert", func() bool {
		end, active := amActive(t, base, a.ID)
		return active && end.After(sentAt.Add(time.Second))
	})
	for _, name := range []string{"alertmanager-1", "alertmanager-2"} {
		if s := outputStatus(t, d, name); s.Delivered != 1 || s.Active != 1 || s.State != "ok" {
			t.Errorf("%s status = %+v; want 1 delivered, 1 active, ok", name, s)
		}
	}

	// Closed in raywatch: resolved in Alertmanager.
	if _, err := st.SetStatus(context.Background(), a.ID, alert.StatusClosed, "ana", time.Now()); err != nil {
		t.Fatal(err)
	}
	d.Wake()
	waitFor(t, "the resolved notification", func() bool { _, ok := rcv.Find(a.ID, "resolved"); return ok })
	waitFor(t, "no active alert left", func() bool { return outputStatus(t, d, "alertmanager-1").Active == 0 })
}

func TestAlertmanagerEndsTheAlertWithItsSlot(t *testing.T) {
	base, rcv := startAlertmanager(t)
	const w = 2 * time.Second
	o := testOptions(Options{AlertmanagerURLs: []string{base}, AlertmanagerResend: 100 * time.Millisecond}, nil)
	o.GroupWindow = w
	st, err := store.Open(filepath.Join(t.TempDir(), "alerts.db"), store.Options{GroupWindow: w, Outputs: o.Outputs(), OutboxFilter: o.Accepts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := start(t, o, st)
	first := openSlotTime(w, time.Second)
	a := commit(t, st, hit(first, "r-slot", "k1", "203.0.113.78"))[0]
	slotEnd := first.Truncate(w).Add(w)
	d.Wake()
	waitFor(t, "the firing notification", func() bool { _, ok := rcv.Find(a.ID, "firing"); return ok })
	var got amtest.Notification
	waitFor(t, "the resolved notification", func() bool { var ok bool; got, ok = rcv.Find(a.ID, "resolved"); return ok })
	if !got.EndsAt.Equal(slotEnd) {
		t.Errorf("resolved with endsAt %v; want the end of the slot, %v", got.EndsAt, slotEnd)
	}
	waitFor(t, "no active alert left", func() bool { return outputStatus(t, d, "alertmanager-1").Active == 0 })
}

func TestAlertmanagerKeepsAlertsFiringAcrossRestarts(t *testing.T) {
	base, rcv := startAlertmanager(t)
	o := testOptions(Options{AlertmanagerURLs: []string{base}, AlertmanagerResend: 100 * time.Millisecond}, nil)
	st := tempStore(t, &o)
	first := openSlotTime(window, 5*time.Minute)
	open := commit(t, st, hit(first, "r-open", "k1", "203.0.113.80"))[0]
	closed := commit(t, st, hit(first, "r-closed", "k1", "203.0.113.81"))[0]

	// A first run delivers both, then raywatch stops.
	d1, err := New(o, st.Outbox(), st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d1.Run(ctx) }()
	waitFor(t, "both firing", func() bool {
		_, ok1 := rcv.Find(open.ID, "firing")
		_, ok2 := rcv.Find(closed.ID, "firing")
		return ok1 && ok2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stoppedAt := time.Now()
	if _, err := st.SetStatus(context.Background(), closed.ID, alert.StatusClosed, "ana", time.Now()); err != nil {
		t.Fatal(err)
	}

	// The next run keeps the open one firing from the store, with no job
	// queued for it, and ends the closed one through its status job.
	o.Registerer = nil
	d2 := start(t, o, st)
	waitFor(t, "the closed alert resolved", func() bool { _, ok := rcv.Find(closed.ID, "resolved"); return ok })
	waitFor(t, "re-sends after the restart", func() bool {
		end, active := amActive(t, base, open.ID)
		return active && end.After(stoppedAt.Add(time.Second))
	})
	if s := outputStatus(t, d2, "alertmanager-1"); s.Active != 1 {
		t.Errorf("status after restart = %+v; want 1 active", s)
	}
}
