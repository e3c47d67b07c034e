package retro_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/retro"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store/archive"
)

// TestHuntRuleRecordKeys checks that a rule hunt gives a record the
// record key and alert ID the live pipeline gives it, so that the store
// does not count twice a record the rule already alerted on live. A
// firewall_events request yields one record per matching WAF rule, all of
// one RayID: each is its own record.
func TestHuntRuleRecordKeys(t *testing.T) {
	r, err := rules.Parse("python.yml", []byte(`title: Python client on the WAF
id: 0b8d1c2e-6f0a-4d8e-9a51-2f7f1c3e5b10
status: experimental
logsource: {}
detection:
  selection:
    user_agent.original|startswith: 'python-requests/'
  condition: selection
level: medium
`))
	if err != nil {
		t.Fatal(err)
	}
	fw := `{"Action":"block","ClientIP":"192.0.2.9","ClientRequestHost":"shop.example.com","ClientRequestMethod":"POST","ClientRequestPath":"/login","ClientRequestUserAgent":"python-requests/2.31.0","Datetime":"2026-01-05T09:00:00Z","EdgeResponseStatus":403,"Kind":"firewall","MatchIndex":%d,"RayID":"77280bee38a6c461","RuleID":"%s","Source":"firewallManaged"}`
	records := []string{
		strings.Replace(strings.Replace(fw, "%d", "0", 1), "%s", "100016", 1),
		strings.Replace(strings.Replace(fw, "%d", "1", 1), "%s", "100173", 1),
	}
	arch, err := archive.Open(archive.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	received := t0.Add(time.Minute)
	if _, err := arch.Put(received, "zone-a", "fw", bytes.NewReader(gz(t, strings.Join(records, "\n")+"\n"))); err != nil {
		t.Fatal(err)
	}

	// What the live pipeline makes of the records.
	eng, err := engine.New([]rules.Rule{r})
	if err != nil {
		t.Fatal(err)
	}
	det := &pipeline.Detector{Normalizer: normalize.New(normalize.Options{}), Engine: eng, Dataset: "auto"}
	var live []alert.Alert
	for _, rec := range records {
		var ev normalize.Event
		as, err := det.Detect(&ev, "", []byte(rec), "zone-a", received)
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, as...)
	}
	if len(live) != 2 || live[0].RecordKey == live[1].RecordKey {
		t.Fatalf("live alerts = %+v; want two with distinct record keys", live)
	}

	var mu sync.Mutex
	var sunk []alert.Alert
	h, err := retro.New(retro.Options{Archive: arch, Sink: func(_ context.Context, as []alert.Alert) error {
		mu.Lock()
		sunk = append(sunk, as...)
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := h.HuntRule(r); err != nil {
		t.Fatal(err)
	}
	if st := waitFinished(t, h, 1); len(st) != 1 || st[0].State != retro.StateDone {
		t.Fatalf("hunt finished as %+v; want one, done", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sunk) != 2 {
		t.Fatalf("hunt raised %d alerts; want 2", len(sunk))
	}
	for i := range sunk {
		if sunk[i].RecordKey != live[i].RecordKey || sunk[i].ID != live[i].ID {
			t.Errorf("retro alert %d: record key %q, id %s; want the live pipeline's %q, %s", i, sunk[i].RecordKey, sunk[i].ID, live[i].RecordKey, live[i].ID)
		}
	}
}
