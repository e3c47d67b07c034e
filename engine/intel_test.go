package engine_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

func TestIntelligenceFeedRule(t *testing.T) {
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	set := ioc.NewSet([]ioc.Indicator{
		{Type: ioc.TypeIPv4, Value: "203.0.113.66", File: "feed.txt", Line: 3, Meta: &ioc.Meta{Name: "C2 server", Confidence: 90, IndicatorTypes: []string{"malicious-activity"}}},
		{Type: ioc.TypeDomain, Value: "evil.example", File: "feed.txt", Line: 4},
	}, time.Now())
	current := func() *ioc.Set { return set }
	norm := normalize.New(normalize.Options{})
	rec := func(ip, host, ua string) *normalize.Event {
		ev, err := norm.Normalize("http_requests", []byte(`{"ClientIP":"`+ip+`","ClientRequestHost":"`+host+`","ClientRequestMethod":"GET","ClientRequestURI":"/","ClientRequestUserAgent":"`+ua+`","EdgeStartTimestamp":1795500000000000000,"RayID":"`+ip+host+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	e, err := engine.NewWithOptions(rs, engine.Options{IOC: current})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		ev        *normalize.Event
		wantField string
		wantType  ioc.Type
	}{
		{"client IP listed", rec("203.0.113.66", "shop.example.com", chromeUA), "source.ip", ioc.TypeIPv4},
		{"subdomain of a listed domain", rec("198.51.100.1", "www.evil.example", chromeUA), "destination.address", ioc.TypeDomain},
		{"nothing listed", rec("198.51.100.1", "shop.example.com", chromeUA), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var intel []alert.Alert
			for _, a := range e.Match(tt.ev, "zone-a", time.Now()) {
				if a.Rule.ID == rules.IntelligenceFeedID {
					intel = append(intel, a)
				}
			}
			if tt.wantField == "" {
				if len(intel) != 0 {
					t.Fatalf("intelligence alerts = %+v; want none", intel)
				}
				return
			}
			if len(intel) != 1 {
				t.Fatalf("intelligence alerts = %d; want 1", len(intel))
			}
			a := intel[0]
			if a.Rule.Title != "Intelligence feed match" || len(a.Matches) != 1 {
				t.Fatalf("alert = %+v; want one match", a)
			}
			m := a.Matches[0]
			if m.Field != tt.wantField || m.Indicator == nil || m.Indicator.Type != tt.wantType || m.Indicator.File != "feed.txt" {
				t.Errorf("match = %+v (indicator %+v); want field %s, a %s indicator from feed.txt", m, m.Indicator, tt.wantField, tt.wantType)
			}
			b, _ := json.Marshal(a)
			var decoded struct {
				Matches []struct {
					Indicator map[string]any `json:"indicator"`
				} `json:"matches"`
			}
			json.Unmarshal(b, &decoded)
			if len(decoded.Matches) != 1 || decoded.Matches[0].Indicator["file"] != "feed.txt" {
				t.Errorf("alert JSON does not carry the indicator and its file: %s", b)
			}
		})
	}

	// The rule can be disabled like any other.
	off, err := engine.NewWithOptions(rs, engine.Options{IOC: current, Disabled: []string{rules.IntelligenceFeedID}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range off.Match(rec("203.0.113.66", "shop.example.com", chromeUA), "zone-a", time.Now()) {
		if a.Rule.ID == rules.IntelligenceFeedID {
			t.Errorf("disabled intelligence rule raised %+v", a)
		}
	}
	for _, st := range off.Rules() {
		if st.ID == rules.IntelligenceFeedID && st.Enabled {
			t.Error("rules list shows the disabled intelligence rule as enabled")
		}
	}
}
