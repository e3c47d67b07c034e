package coverage

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/rules"
)

func builtinNeeds(t *testing.T) []RuleNeeds {
	t.Helper()
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	needs, err := Needs(rs)
	if err != nil {
		t.Fatal(err)
	}
	return needs
}

func TestBuiltinRuleNeeds(t *testing.T) {
	got := map[string][]FieldNeed{}
	for _, rn := range builtinNeeds(t) {
		if len(rn.Unknown) > 0 {
			t.Errorf("rule %q tests fields no Logpush field feeds: %v", rn.Title, rn.Unknown)
		}
		got[rn.Title] = rn.Needs
	}
	method := FieldNeed{"http.request.method", []string{"ClientRequestMethod"}}
	path := FieldNeed{"url.path", []string{"ClientRequestPath", "ClientRequestURI"}}
	ua := FieldNeed{"user_agent.original", []string{"ClientRequestUserAgent"}}
	want := map[string][]FieldNeed{
		"Bazar Loader Backdoor C2 Polling": {method, path},
		"Covenant Default HTTP Beaconing":  {path, ua},
		"Intelligence feed match":          {{"indicator fields", iocFields}},
		"Lemon Duck User-Agent":            {ua},
		"LokiBot User-Agent":               {method, ua},
		"TrevorC2 HTTP Communication":      {method, FieldNeed{"url.original", []string{"ClientRequestURI"}}, ua},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("needs of the built-in rules (-want +got):\n%s", d)
	}
}

func TestNeedsFor(t *testing.T) {
	needs, unknown := needsFor([]string{
		"c-useragent", "cloudflare.JA3Hash", "cloudflare.RequestHeaders.x-forwarded-for",
		"event.dataset", "source.geo.country_iso_code", "@timestamp", "url.query", "c-useragent",
	})
	want := []FieldNeed{
		{"c-useragent", []string{"ClientRequestUserAgent"}},
		{"cloudflare.JA3Hash", []string{"JA3Hash"}},
		{"cloudflare.RequestHeaders.x-forwarded-for", []string{"RequestHeaders"}},
		{"@timestamp", []string{"EdgeStartTimestamp"}},
		{"url.query", []string{"ClientRequestURI"}},
	}
	if d := cmp.Diff(want, needs); d != "" {
		t.Errorf("needsFor needs (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"source.geo.country_iso_code"}, unknown); d != "" {
		t.Errorf("needsFor unknown (-want +got):\n%s", d)
	}
	if got, want := logpushFieldsFor(append(want, want...)), []string{"ClientRequestURI", "ClientRequestUserAgent", "EdgeStartTimestamp", "JA3Hash", "RequestHeaders"}; !slices.Equal(got, want) {
		t.Errorf("logpushFieldsFor = %v; want %v", got, want)
	}
}

// The seed document's field list: no ClientRequestUserAgent.
const seedRecord = `{"ClientIP":"192.0.2.1","ClientRequestHost":"example.com","ClientRequestMethod":"GET","ClientRequestURI":"/","EdgeEndTimestamp":1,"EdgeResponseBytes":2,"EdgeResponseStatus":200,"EdgeStartTimestamp":1,"RayID":"81a1"}`

const fullRecord = `{"ClientIP":"192.0.2.1","ClientRequestHost":"example.com","ClientRequestMethod":"GET","ClientRequestURI":"/","ClientRequestUserAgent":"","EdgeStartTimestamp":1,"RayID":"81a2"}`

func TestFieldCoverageUserAgent(t *testing.T) {
	needs := builtinNeeds(t)
	c := New(Options{SampleEvery: 1})

	if rep := c.Report("default", needs); rep.Sampled != 0 || len(rep.Blind) != 0 || rep.Message() != "" {
		t.Errorf("before any record: %+v, message %q; want nothing known", rep, rep.Message())
	}
	for _, rc := range c.Rules("default", needs) {
		if rc.State != Unknown {
			t.Errorf("before any record, rule %q is %s; want unknown", rc.Title, rc.State)
		}
	}

	for range 3 {
		c.ObserveJSON("default", []byte(seedRecord))
	}
	rep := c.Report("default", needs)
	var blind []string
	for _, rc := range rep.Blind {
		blind = append(blind, rc.Title)
		if !slices.Equal(rc.Missing, []string{"ClientRequestUserAgent"}) {
			t.Errorf("rule %q misses %v; want [ClientRequestUserAgent]", rc.Title, rc.Missing)
		}
	}
	wantBlind := []string{"Covenant Default HTTP Beaconing", "Lemon Duck User-Agent", "LokiBot User-Agent", "TrevorC2 HTTP Communication"}
	if d := cmp.Diff(wantBlind, blind); d != "" {
		t.Errorf("blind rules (-want +got):\n%s", d)
	}
	if got, want := rep.Message(), `4 rules cannot fire on intake "default": ClientRequestUserAgent is not in the records`; got != want {
		t.Errorf("Message() = %q; want %q", got, want)
	}
	if got, want := rep.FixCommand("", ""), "raywatch cloudflare connect --zone ZONE_ID --url https://YOUR-RAYWATCH-HOST"; got != want {
		t.Errorf("FixCommand = %q; want %q", got, want)
	}
	for _, rc := range c.Rules("default", needs) {
		if want := map[bool]string{true: Blind, false: OK}[slices.Contains(wantBlind, rc.Title)]; rc.State != want {
			t.Errorf("rule %q is %s; want %s", rc.Title, rc.State, want)
		}
	}
	// Other intakes are tracked apart.
	if rep := c.Report("shop", needs); rep.Sampled != 0 {
		t.Errorf("intake shop: %+v; want nothing known", rep)
	}

	// The job now sends the user-agent (an empty one counts: the field is there).
	c.ObserveJSON("default", []byte(fullRecord))
	rep = c.Report("default", needs)
	if len(rep.Blind) != 0 || rep.Message() != "" {
		t.Errorf("after a record with ClientRequestUserAgent: blind %v, message %q; want none", rep.Blind, rep.Message())
	}
}

func TestFieldCoverageMessages(t *testing.T) {
	rules := []RuleNeeds{
		{ID: "a", Title: "A", Needs: []FieldNeed{{"user_agent.original", []string{"ClientRequestUserAgent"}}}},
		{ID: "b", Title: "B", Needs: []FieldNeed{{"url.path", []string{"ClientRequestPath", "ClientRequestURI"}}, {"user_agent.original", []string{"ClientRequestUserAgent"}}}},
		{ID: "c", Title: "C", Needs: []FieldNeed{{"http.request.method", []string{"ClientRequestMethod"}}}},
	}
	c := New(Options{SampleEvery: 1})
	c.Observe("zone b", slices.Values([]string{"ClientIP"}))
	rep := c.Report("zone b", rules)
	if got, want := rep.Message(), `3 rules cannot fire on intake "zone b": ClientRequestUserAgent, ClientRequestMethod and (ClientRequestPath or ClientRequestURI) are not in the records`; got != want {
		t.Errorf("Message() = %q\nwant        %q", got, want)
	}
	if got, want := rep.FixCommand("023e", "https://rw.example.com"), "raywatch cloudflare connect --zone 023e --url https://rw.example.com --intake 'zone b'"; got != want {
		t.Errorf("FixCommand = %q; want %q", got, want)
	}
	c.Observe("zone b", slices.Values([]string{"ClientRequestURI", "ClientRequestMethod"}))
	if got, want := c.Report("zone b", rules).Message(), `2 rules cannot fire on intake "zone b": ClientRequestUserAgent is not in the records`; got != want {
		t.Errorf("Message() = %q; want %q", got, want)
	}
	if reps := c.Reports(rules); len(reps) != 1 || reps[0].Intake != "zone b" {
		t.Errorf("Reports = %+v; want one report for zone b", reps)
	}
}

func TestFieldCoverageWindowAndSampling(t *testing.T) {
	c := New(Options{SampleEvery: 4, Window: 3})
	// Records 0, 4, 8, ... are sampled. Only the first carries JA3Hash.
	c.ObserveJSON("default", []byte(`{"ClientIP":"192.0.2.1","JA3Hash":"x"}`))
	for range 3 {
		c.ObserveJSON("default", []byte(`{"ClientIP":"192.0.2.1","JA3Hash":"not sampled"}`))
	}
	fields, sampled := c.Fields("default")
	if want := []string{"ClientIP", "JA3Hash"}; !slices.Equal(fields, want) || sampled != 1 {
		t.Errorf("Fields = %v, %d; want %v, 1", fields, sampled, want)
	}
	// Two more sampled records without JA3Hash: still within the window.
	for range 8 {
		c.ObserveJSON("default", []byte(`{"ClientIP":"192.0.2.1"}`))
	}
	if fields, _ := c.Fields("default"); !slices.Contains(fields, "JA3Hash") {
		t.Errorf("JA3Hash dropped within the window: %v", fields)
	}
	// The third falls out of it.
	for range 4 {
		c.ObserveJSON("default", []byte(`{"ClientIP":"192.0.2.1"}`))
	}
	if fields, sampled := c.Fields("default"); !slices.Equal(fields, []string{"ClientIP"}) || sampled != 4 {
		t.Errorf("Fields = %v, %d; want [ClientIP], 4", fields, sampled)
	}
}

func TestFieldCoverageIgnoresJunk(t *testing.T) {
	c := New(Options{SampleEvery: 1, MaxFields: 3, MaxIntakes: 1})
	for _, rec := range []string{`{"content":"tests"}`, `{"content":"test","filename":"test.txt"}`, `not json`, `[1,2]`} {
		c.ObserveJSON("default", []byte(rec))
	}
	if fields, sampled := c.Fields("default"); len(fields) != 0 || sampled != 0 {
		t.Errorf("after junk: Fields = %v, %d; want nothing", fields, sampled)
	}
	c.ObserveJSON("default", []byte(`{"a":1,"b":2,"c":3,"d":4}`))
	if fields, _ := c.Fields("default"); len(fields) != 3 {
		t.Errorf("Fields = %v; want 3 names at most", fields)
	}
	c.ObserveJSON("second", []byte(`{"a":1}`))
	if _, sampled := c.Fields("second"); sampled != 0 {
		t.Errorf("an intake beyond MaxIntakes was tracked")
	}
}

func TestFieldCoverageConcurrent(t *testing.T) {
	needs := builtinNeeds(t)
	c := New(Options{SampleEvery: 3})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			intake := fmt.Sprintf("intake-%d", g%2)
			for i := range 500 {
				if i%2 == 0 {
					c.ObserveJSON(intake, []byte(fullRecord))
				} else {
					c.Observe(intake, slices.Values([]string{"ClientIP", "ClientRequestUserAgent"}))
				}
				if i%50 == 0 {
					_ = c.Reports(needs)
				}
			}
		})
	}
	wg.Wait()
	for _, rep := range c.Reports(needs) {
		if rep.Sampled == 0 || len(rep.Blind) != 0 {
			t.Errorf("intake %s: sampled %d, blind %d; want >0, 0", rep.Intake, rep.Sampled, len(rep.Blind))
		}
	}
}

func BenchmarkFieldCoverageObserveJSON(b *testing.B) {
	c := New(Options{})
	rec := []byte(fullRecord)
	b.ReportAllocs()
	for b.Loop() {
		c.ObserveJSON("default", rec)
	}
}
