package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/raywatch/raywatch/engine/ioc"
)

// TestAlertJSONMirrors checks that alertHead has the first fields and tags
// of alert.Alert, in order, followed in alert.Alert by exactly Event,
// Samples, StatusHistory and StatusHistoryDropped, so that encodeAlert writes what json.Marshal
// would.
func TestAlertJSONMirrors(t *testing.T) {
	a, m := reflect.TypeFor[alert.Alert](), reflect.TypeFor[alertHead]()
	var rest []string
	for i := m.NumField(); i < a.NumField(); i++ {
		rest = append(rest, a.Field(i).Name+" "+string(a.Field(i).Tag))
	}
	if want := []string{`Event json:"event"`, `Samples json:"samples,omitempty"`, `StatusHistory json:"status_history,omitempty"`, `StatusHistoryDropped json:"status_history_dropped,omitempty"`}; !reflect.DeepEqual(rest, want) {
		t.Fatalf("alert.Alert after alertHead's fields: %q; want %q (update encodeAlert)", rest, want)
	}
	for i := range m.NumField() {
		fa, fm := a.Field(i), m.Field(i)
		if fa.Name != fm.Name || fa.Tag != fm.Tag {
			t.Errorf("field %d: alert.Alert has %s %q, alertHead %s %q", i, fa.Name, fa.Tag, fm.Name, fm.Tag)
		}
	}
}

func TestEncodeAlertMatchesMarshal(t *testing.T) {
	ev := map[string]any{"source": map[string]any{"ip": "198.51.100.1"}, "url": map[string]any{"original": "/<script>&"}, "n": json.Number("12")}
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	alerts := []alert.Alert{
		{},
		{ID: "x", Rule: alert.RuleRef{ID: "r", Title: "T", Level: "high", Tags: []string{"a"}}, Count: 3, FirstSeen: t0, LastSeen: t0.Add(time.Minute),
			Status: "new", Intake: "i", Dataset: "http_requests", RecordKey: "k", Group: map[string]string{"g": "v"}, Retro: true, Replayed: true,
			Matches: []alert.Match{{Field: "f", Value: "v", Indicator: &ioc.Indicator{Value: "1.2.3.4"}}}, Event: ev,
			Samples:       []alert.Sample{{RecordKey: "k", Time: t0, Event: ev}, {RecordKey: "k2", Time: t0, Event: nil}},
			StatusHistory: []alert.StatusChange{{Status: "closed", By: "me", At: t0}}, StatusHistoryDropped: 1479},
	}
	s := &Store{}
	for i := range alerts {
		want, err := json.Marshal(&alerts[i])
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second time from the cache
			got, err := s.encodeAlert(&alerts[i])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encodeAlert = %s\nwant %s", got, want)
			}
		}
	}
}

// TestCachesStayWithinBudget fills the two store caches far beyond their
// budgets and checks the bytes and entries they keep.
func TestCachesStayWithinBudget(t *testing.T) {
	h := hotAlerts{m: map[string]hotAlert{}}
	var c docCache
	enc := make([]byte, 64<<10)
	for i := range 1500 {
		a := alert.Alert{ID: fmt.Sprint("a", i)}
		h.put(a.ID, enc, &a)
		if _, err := c.appendDoc(nil, map[string]any{"i": i, "pad": string(enc[:8<<10])}); err != nil {
			t.Fatal(err)
		}
	}
	h.put("a1499", enc[:10], &alert.Alert{ID: "a1499"}) // a replaced entry counts once
	if h.bytes > maxHotBytes || len(h.m) > maxHotAlerts || len(h.m) < maxHotBytes/len(enc)-1 {
		t.Errorf("hot alerts: %d entries, %d bytes; want at most %d bytes and close to it", len(h.m), h.bytes, maxHotBytes)
	}
	sum := 0
	for _, e := range h.m {
		sum += len(e.enc)
	}
	if sum != h.bytes {
		t.Errorf("hot alerts count %d bytes; their entries hold %d", h.bytes, sum)
	}
	if c.bytes > maxEncodedDocBytes || len(c.m) == 0 {
		t.Errorf("doc cache: %d entries, %d bytes; want at most %d bytes", len(c.m), c.bytes, maxEncodedDocBytes)
	}
}
