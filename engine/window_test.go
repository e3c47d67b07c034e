package engine_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// at is a Cloudflare record at second sec of a fixed minute, from ip.
func at(t testing.TB, sec int, ip, status, uri string) *normalize.Event {
	t.Helper()
	return httpEvent(t, map[string]any{
		"ClientIP":           ip,
		"EdgeResponseStatus": atoi(status),
		"ClientRequestURI":   uri,
		"ClientRequestPath":  uri,
		"EdgeStartTimestamp": 1764115200000000000 + int64(sec)*int64(time.Second),
		"RayID":              fmt.Sprintf("ray-%s-%d-%s", ip, sec, uri),
	})
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

func parseRules(t testing.TB, yaml string) []rules.Rule {
	t.Helper()
	rs, err := rules.ParseAll("test.yml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

const countByRule = `title: Many 404 from one client
id: agg-1
logsource: {category: webserver}
detection:
  selection:
    sc-status: 404
  timeframe: 10m
  condition: selection | count() by c-ip > 3
level: medium
`

func TestAggregationCountBy(t *testing.T) {
	e, err := engine.New(parseRules(t, countByRule))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []alert.Alert
	for i := 0; i < 4; i++ {
		alerts = append(alerts, e.Match(at(t, i, "198.51.100.1", "404", "/x"), "t", time.Now())...)
		// Another client (three 404s) and other statuses do not count.
		if i < 3 {
			alerts = append(alerts, e.Match(at(t, i, "198.51.100.2", "404", "/x"), "t", time.Now())...)
		}
		alerts = append(alerts, e.Match(at(t, i, "198.51.100.1", "200", "/x"), "t", time.Now())...)
	}
	if len(alerts) != 1 {
		t.Fatalf("got %d alerts; want 1 (the 4th 404 of 198.51.100.1)", len(alerts))
	}
	a := alerts[0]
	if a.Count != 4 || a.Group["c-ip"] != "198.51.100.1" || a.Rule.ID != "agg-1" {
		t.Errorf("alert count %d group %v; want 4 and c-ip 198.51.100.1", a.Count, a.Group)
	}
	// More events in the same window do not raise another alert; a
	// retried record does not count twice.
	if more := e.Match(at(t, 5, "198.51.100.1", "404", "/x"), "t", time.Now()); len(more) != 0 {
		t.Errorf("5th event raised %d alerts; want 0 within the window", len(more))
	}
	e2, _ := engine.New(parseRules(t, countByRule))
	var n int
	for i := 0; i < 10; i++ {
		n += len(e2.Match(at(t, 0, "198.51.100.9", "404", "/same"), "t", time.Now()))
	}
	if n != 0 {
		t.Errorf("one record retried 10 times raised %d alerts; want 0", n)
	}
	// Outside the timeframe the window slides: events 11 minutes apart
	// never gather 4.
	e3, _ := engine.New(parseRules(t, countByRule))
	n = 0
	for i := 0; i < 6; i++ {
		n += len(e3.Match(at(t, i*660, "198.51.100.3", "404", "/x"), "t", time.Now()))
	}
	if n != 0 {
		t.Errorf("sparse events raised %d alerts; want 0", n)
	}
}

func TestAggregationAlertIDIsDeterministic(t *testing.T) {
	run := func() string {
		e, _ := engine.New(parseRules(t, countByRule))
		var id string
		for i := 0; i < 4; i++ {
			for _, a := range e.Match(at(t, i, "198.51.100.1", "404", "/x"), "t", time.Now()) {
				id = a.ID
			}
		}
		return id
	}
	if a, b := run(), run(); a == "" || a != b {
		t.Errorf("aggregation alert IDs %q and %q; want equal and non-empty", a, b)
	}
}

func TestAggregationCountDistinct(t *testing.T) {
	e, err := engine.New(parseRules(t, `title: Scanner
id: agg-2
logsource: {category: webserver}
detection:
  selection:
    sc-status: 404
  timeframe: 1m
  condition: selection | count(c-uri) by c-ip >= 3
`))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, u := range []string{"/a", "/a", "/b", "/b", "/c"} {
		as := e.Match(at(t, i, "198.51.100.1", "404", u), "t", time.Now())
		if i < 4 && len(as) != 0 {
			t.Errorf("event %d (%s) raised an alert with only %d distinct URIs", i, u, i)
		}
		n += len(as)
	}
	if n != 1 {
		t.Errorf("got %d alerts; want 1 at the third distinct URI", n)
	}
}

// TestAggregationCountDistinctReusedEvent matches events normalized into
// one Event whose memory is handed back after each record (Event.Reuse), as
// the pipeline does: the distinct values the window keeps must not change
// when the next record is written over them.
func TestAggregationCountDistinctReusedEvent(t *testing.T) {
	e, err := engine.New(parseRules(t, `title: Scanner
id: agg-2
logsource: {category: webserver}
detection:
  selection:
    sc-status: 404
  timeframe: 1m
  condition: selection | count(c-uri) by c-ip >= 3
`))
	if err != nil {
		t.Fatal(err)
	}
	norm := normalize.New(normalize.Options{})
	var ev normalize.Event
	// The same URI each time, at a different place in the Event's memory
	// (hosts of different lengths come first): one distinct value.
	for i, host := range []string{"a.example", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.example", "cc.example", "d.example", "eeeeeeeee.example"} {
		raw := fmt.Sprintf(`{"ClientIP":"198.51.100.1","ClientRequestHost":%q,"EdgeResponseStatus":404,"ClientRequestURI":"/x1","EdgeStartTimestamp":%d,"RayID":"r%d"}`,
			host, 1764115200000000000+int64(i)*int64(time.Second), i)
		if err := norm.NormalizeInto(&ev, "http_requests", []byte(raw)); err != nil {
			t.Fatal(err)
		}
		if as := e.Match(&ev, "t", time.Now()); len(as) != 0 {
			t.Fatalf("event %d raised %q with one distinct URI", i, as[0].Rule.Title)
		}
		ev.Reuse()
	}
}

func TestAggregationGroupsAreBounded(t *testing.T) {
	e, err := engine.NewWithOptions(parseRules(t, countByRule), engine.Options{MaxGroups: 8})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		e.Match(at(t, i, fmt.Sprintf("10.0.%d.%d", i/250, i%250), "404", "/x"), "t", time.Now())
	}
	if got := engine.WindowGroups(e); got > 8 {
		t.Errorf("aggregation keeps %d groups; want at most 8", got)
	}
}

const correlationRules = `title: Login page
id: base-login
name: login_page
logsource: {category: webserver}
detection:
  sel:
    c-uri|startswith: '/login'
  condition: sel
level: low
---
title: Admin page
id: base-admin
name: admin_page
logsource: {category: webserver}
detection:
  sel:
    c-uri|startswith: '/admin'
  condition: sel
level: low
---
title: Brute force then admin
id: corr-temporal
correlation:
  type: temporal_ordered
  rules: [login_page, admin_page]
  group-by: [c-ip]
  timespan: 5m
level: high
---
title: Many logins
id: corr-count
correlation:
  type: event_count
  rules: [base-login]
  group-by: [c-ip]
  timespan: 5m
  condition:
    gte: 3
level: medium
---
title: Many paths
id: corr-values
correlation:
  type: value_count
  rules: [admin_page]
  group-by: [c-ip]
  timespan: 5m
  condition:
    field: c-uri
    gt: 1
level: medium
`

func TestCorrelations(t *testing.T) {
	e, err := engine.New(parseRules(t, correlationRules))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(as []alert.Alert) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Rule.ID)
		}
		return out
	}
	ip := "198.51.100.5"
	steps := []struct {
		sec  int
		uri  string
		want []string
	}{
		// Base rules referenced by a correlation (generate: false) raise
		// no alerts of their own.
		{0, "/admin/a", nil}, // admin before login: temporal_ordered waits
		{1, "/login", nil},
		{2, "/login?x", nil},
		{3, "/admin/b", []string{"corr-temporal", "corr-values"}},
		{4, "/login?y", []string{"corr-count"}},
	}
	for _, s := range steps {
		got := ids(e.Match(at(t, s.sec, ip, "200", s.uri), "t", time.Now()))
		if fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("t=%ds %s: alerts %v; want %v", s.sec, s.uri, got, s.want)
		}
	}
	var kinds []string
	for _, r := range e.Rules() {
		kinds = append(kinds, r.ID+":"+r.Kind())
	}
	if len(kinds) != 5 {
		t.Errorf("Rules() = %v; want the 2 base rules and the 3 correlations", kinds)
	}
}

func TestCorrelationMissingRule(t *testing.T) {
	rs := parseRules(t, "title: c\nid: c1\ncorrelation:\n  type: event_count\n  rules: [nope]\n  timespan: 1m\n  condition: {gt: 1}\n")
	if problems := engine.Check(rs, engine.Options{}); len(problems) != 1 {
		t.Errorf("Check = %v; want one problem naming rule nope", problems)
	}
}

func TestDisabledRules(t *testing.T) {
	rs, _ := rules.Builtin()
	e, err := engine.NewWithOptions(rs, engine.Options{Disabled: []string{ruleLoki}})
	if err != nil {
		t.Fatal(err)
	}
	norm := normalize.New(normalize.Options{})
	ev, _ := norm.Normalize("http_requests", record(t, "POST", "/sky/five/fre.php", lokiUA))
	if as := e.Match(ev, "t", time.Now()); len(as) != 0 {
		t.Errorf("disabled LokiBot rule fired: %v", as)
	}
	for _, r := range e.Rules() {
		if r.ID == ruleLoki && r.Enabled {
			t.Errorf("Rules() lists %s as enabled", ruleLoki)
		}
	}
}

// TestConcurrentMatchDuringSwaps matches from several goroutines while the
// rule set is swapped; run with -race.
func TestConcurrentMatchDuringSwaps(t *testing.T) {
	base, _ := rules.Builtin()
	all := append(append([]rules.Rule(nil), base...), parseRules(t, countByRule)...)
	e, err := engine.New(all)
	if err != nil {
		t.Fatal(err)
	}
	norm := normalize.New(normalize.Options{})
	loki, _ := norm.Normalize("http_requests", record(t, "POST", "/sky/five/fre.php", lokiUA))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				as := e.Match(loki, "t", time.Now())
				if len(as) != 1 || as[0].Rule.ID != ruleLoki {
					t.Errorf("goroutine %d: Match = %d alerts; want the LokiBot one", g, len(as))
					return
				}
				e.Match(at(t, i, fmt.Sprintf("10.%d.0.1", g), "404", "/x"), "t", time.Now())
				_ = e.Rules()
			}
		}(g)
	}
	for i := 0; i < 50; i++ {
		if i%2 == 0 {
			if err := e.SetRules(all); err != nil {
				t.Fatal(err)
			}
		} else if problems := e.Reload(base); len(problems) > 0 {
			t.Fatal(problems)
		}
	}
	close(stop)
	wg.Wait()
}
