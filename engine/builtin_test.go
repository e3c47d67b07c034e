package engine_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

const (
	covenantUA = "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2228.0 Safari/537.36"
	chromeUA   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	trevorUA   = "Mozilla/5.0 (Windows NT 6.3; Trident/7.0; rv:11.0) like Gecko"
	trevorCUA  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.74 Safari/537.37 Edg/79.0.309.43"
	lokiUA     = "Mozilla/4.08 (Charon; Inferno)"

	ruleCovenant = "12761736-9417-4a8c-963c-bda704b01468"
	ruleBazar    = "dd0546b3-5700-4bb4-a3fb-7409868a5c00"
	ruleLemon    = "80b58af8-9f04-48b6-a252-0e94be0034c8"
	ruleLoki     = "7c5c2e06-91d3-4bed-a5e3-06e7c83af1db"
	ruleTrevor   = "c0ba0fe2-2266-4916-b42e-54dff94d5ff4"
)

// record builds a Cloudflare http_requests record: method, URI (path and
// query) and user-agent, plus the fields every record has.
func record(t *testing.T, method, uri, ua string) []byte {
	t.Helper()
	path, _, _ := cut(uri)
	rec := map[string]any{
		"ClientIP":               "203.0.113.7",
		"ClientRequestHost":      "shop.example.com",
		"ClientRequestMethod":    method,
		"ClientRequestURI":       uri,
		"ClientRequestPath":      path,
		"ClientRequestUserAgent": ua,
		"EdgeStartTimestamp":     1658281671671000000,
		"EdgeEndTimestamp":       1658281671871000000,
		"EdgeResponseStatus":     200,
		"RayID":                  "7f00c0ffee" + method + uri,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cut(uri string) (string, string, bool) {
	for i := 0; i < len(uri); i++ {
		if uri[i] == '?' {
			return uri[:i], uri[i+1:], true
		}
	}
	return uri, "", false
}

func builtinEngine(t testing.TB) *engine.Engine {
	t.Helper()
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(rs)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestBuiltinRules(t *testing.T) {
	e := builtinEngine(t)
	norm := normalize.New(normalize.Options{})
	tests := []struct {
		name            string
		method, uri, ua string
		want            string // rule id that must fire; "" means none may
	}{
		// Covenant: default profile URLs with its fixed Chrome 41 user-agent.
		{"covenant index GET", "GET", "/en-us/index.html", covenantUA, ruleCovenant},
		{"covenant docs POST", "POST", "/en-us/docs.html", covenantUA, ruleCovenant},
		{"covenant custom profile query", "GET", "/en-us/test.html?message=7a9b1c&v=1", covenantUA, ruleCovenant},
		{"covenant UA on another page", "GET", "/en-us/about.html", covenantUA, ""},
		{"chrome on covenant URL", "GET", "/en-us/index.html", chromeUA, ""},
		{"covenant UA on longer path", "GET", "/en-us/index.html.bak", covenantUA, ""},

		// Bazar: the documented task polling URL.
		{"bazar polling", "GET", "/pool/job/priority/normal", "", ruleBazar},
		{"bazar polling high", "GET", "/pool/job/priority/high", chromeUA, ruleBazar},
		{"pool page", "GET", "/pool/jobs", "", ""},
		{"bazar path POST", "POST", "/pool/job/priority/normal", "", ""},
		{"job priority elsewhere", "GET", "/api/pool/job/priority/normal", chromeUA, ""},

		// Lemon Duck: Lemon-Duck-<letters>-<letters>.
		{"lemon duck", "GET", "/report.jsp?ID=a&GUID=b", "Lemon-Duck-TKShM-InUsrPcv", ruleLemon},
		{"lemon duck empty sets", "GET", "/a.jsp", "Lemon-Duck--", ruleLemon},
		{"lemon ducky", "GET", "/", "Lemon-Ducky", ""},
		{"lemon duck inside", "GET", "/", "Mozilla/5.0 Lemon-Duck-A-B", ""},
		{"lemon duck lowercase", "GET", "/", "lemon-duck-a-b", ""},

		// LokiBot: POST with the Charon user-agent.
		{"lokibot fre.php", "POST", "/sky/five/fre.php", lokiUA, ruleLoki},
		{"lokibot other panel", "POST", "/panel/fre.php", "Mozilla/4.08 (Charon; Inferno)", ruleLoki},
		{"fre.php browser", "POST", "/sky/five/fre.php", chromeUA, ""},
		{"charon GET", "GET", "/sky/five/fre.php", lokiUA, ""},
		{"charon other", "POST", "/fre.php", "Mozilla/4.08 (Charon)", ""},

		// TrevorC2: GET /images?guid= with its agents' user-agents.
		{"trevorc2 python agent", "GET", "/images?guid=VGhpcyBpcyBhIHRlc3Q=", trevorUA, ruleTrevor},
		{"trevorc2 c agent", "GET", "/images?guid=QUJD", trevorCUA, ruleTrevor},
		{"images id", "GET", "/images?id=3", trevorUA, ""},
		{"guid with chrome", "GET", "/images?guid=QUJD", chromeUA, ""},
		{"trevorc2 polling root", "GET", "/", trevorUA, ""},

		// Ordinary traffic.
		{"chrome index", "GET", "/en-us/index.html", chromeUA, ""},
		{"chrome home", "GET", "/", chromeUA, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := norm.Normalize("http_requests", record(t, tt.method, tt.uri, tt.ua))
			if err != nil {
				t.Fatal(err)
			}
			alerts := e.Match(ev, "test", time.Now())
			var got []string
			for _, a := range alerts {
				got = append(got, a.Rule.ID)
			}
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("Match(%s %s, %q) fired %v; want no alert", tt.method, tt.uri, tt.ua, got)
			case tt.want != "" && (len(got) != 1 || got[0] != tt.want):
				t.Errorf("Match(%s %s, %q) fired %v; want [%s]", tt.method, tt.uri, tt.ua, got, tt.want)
			}
		})
	}
}

func TestBuiltinRuleMetadata(t *testing.T) {
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 6 {
		t.Fatalf("Builtin() = %d rules; want 6 (five detections and the intelligence feed)", len(rs))
	}
	for _, r := range rs {
		if r.ID == "" || r.Title == "" || r.Description == "" || r.Level == "" || len(r.References) == 0 || len(r.FalsePositives) == 0 {
			t.Errorf("rule %s (%s) lacks id, title, description, level, references or falsepositives", r.File, r.Title)
		}
		tags := map[string]bool{}
		for _, tag := range r.Tags {
			tags[tag] = true
		}
		want := []string{"attack.command-and-control", "attack.t1071.001"}
		if r.ID == rules.IntelligenceFeedID {
			want = []string{"attack.t1071", "attack.t1041", "attack.t1566"}
			if r.Title != "Intelligence feed match" {
				t.Errorf("intelligence rule title = %q", r.Title)
			}
		}
		for _, tag := range want {
			if !tags[tag] {
				t.Errorf("rule %s tags = %v; want %v among them", r.File, r.Tags, want)
			}
		}
	}
}

func TestAlertShape(t *testing.T) {
	e := builtinEngine(t)
	norm := normalize.New(normalize.Options{})
	raw := record(t, "POST", "/sky/five/fre.php", lokiUA)
	ev, err := norm.Normalize("auto", raw)
	if err != nil {
		t.Fatal(err)
	}
	alerts := e.Match(ev, "zone-a", time.Now())
	if len(alerts) != 1 {
		t.Fatalf("got %d alerts; want 1", len(alerts))
	}
	a := alerts[0]
	if a.Intake != "zone-a" || a.Count != 1 || a.Status != alert.StatusNew {
		t.Errorf("alert intake/count/status = %q/%d/%q; want zone-a/1/new", a.Intake, a.Count, a.Status)
	}
	if want := time.Unix(0, 1658281671671000000).UTC(); !a.FirstSeen.Equal(want) || !a.LastSeen.Equal(want) {
		t.Errorf("first/last seen = %v/%v; want %v", a.FirstSeen, a.LastSeen, want)
	}
	fields := map[string]any{}
	for _, m := range a.Matches {
		fields[m.Field] = m.Value
	}
	if fields["user_agent.original"] != lokiUA || fields["http.request.method"] != "POST" {
		t.Errorf("matches = %v; want user_agent.original and http.request.method with the event's values", a.Matches)
	}
	// The same record again (a Logpush retry) gives the same alert ID.
	ev2, _ := norm.Normalize("auto", raw)
	if again := e.Match(ev2, "zone-a", time.Now().Add(time.Hour)); again[0].ID != a.ID {
		t.Errorf("retried record got alert ID %s; want %s", again[0].ID, a.ID)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "rule", "count", "first_seen", "last_seen", "status", "intake", "matches", "event"} {
		if _, ok := m[k]; !ok {
			t.Errorf("alert JSON lacks %q: %s", k, b)
		}
	}
	rule := m["rule"].(map[string]any)
	for _, k := range []string{"id", "title", "level", "tags"} {
		if _, ok := rule[k]; !ok {
			t.Errorf("alert JSON rule lacks %q", k)
		}
	}
}

func TestAlertIDSortsByTime(t *testing.T) {
	early := alert.AlertID(time.Unix(1000, 0), "r", "k")
	late := alert.AlertID(time.Unix(2000, 0), "r", "k")
	if !(early < late) {
		t.Errorf("AlertID(1000s) = %s not < AlertID(2000s) = %s", early, late)
	}
	if alert.AlertID(time.Unix(1000, 0), "r", "k1") == early {
		t.Error("AlertID ignores the record key")
	}
}

func BenchmarkMatchBuiltin(b *testing.B) {
	e := builtinEngine(b)
	norm := normalize.New(normalize.Options{})
	ev, err := norm.Normalize("http_requests", []byte(`{"ClientIP":"203.0.113.7","ClientRequestHost":"shop.example.com","ClientRequestMethod":"GET","ClientRequestURI":"/products?id=3","ClientRequestUserAgent":"`+chromeUA+`","EdgeStartTimestamp":1658281671671000000,"RayID":"abc"}`))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		e.Match(ev, "bench", now)
	}
}
