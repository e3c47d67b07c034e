package ioc

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/normalize"
)

var fixtureNow = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func loadFixture(tb testing.TB) (*Set, []FileStatus) {
	tb.Helper()
	set, status, err := LoadDir(fixture, fixtureNow)
	if err != nil {
		tb.Fatal(err)
	}
	return set, status
}

func event(tb testing.TB, record string) *normalize.Event {
	tb.Helper()
	ev, err := normalize.New(normalize.Options{}).Normalize("http_requests", []byte(record))
	if err != nil {
		tb.Fatalf("Normalize(%s): %v", record, err)
	}
	return ev
}

// briefHits renders hits as "field=value -> type indicator (file:line)".
func briefHits(hits []Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, fmt.Sprintf("%s=%s -> %s %s (%s:%d)", h.Field, h.Value, h.Indicator.Type, h.Indicator.Value, h.Indicator.File, h.Indicator.Line))
	}
	sort.Strings(out)
	return out
}

func TestLoadDirFixture(t *testing.T) {
	set, status := loadFixture(t)
	want := map[Type]int{TypeIPv4: 7, TypeIPv6: 1, TypeCIDR: 4, TypeDomain: 11, TypeURL: 5, TypeUA: 3, TypeJA3: 2}
	if diff := cmp.Diff(want, set.Counts()); diff != "" {
		t.Errorf("Counts (-want +got):\n%s", diff)
	}
	if set.Len() != 33 {
		t.Errorf("Len = %d; want 33", set.Len())
	}
	type sum struct {
		File                                string
		Format                              string
		Total, Expired, Superseded, Skipped int
		BadLines                            int
	}
	var got []sum
	for _, fs := range status {
		got = append(got, sum{fs.File, fs.Format, fs.Total, fs.Expired, fs.Superseded, fs.Skipped, fs.BadLines})
		if fs.LastLoad != fixtureNow || fs.LastError != "" {
			t.Errorf("%s: LastLoad %v, LastError %q; want %v, none", fs.File, fs.LastLoad, fs.LastError, fixtureNow)
		}
	}
	wantStatus := []sum{
		{"bundle.json", "stix", 9, 1, 1, 2, 2},
		{"misp.csv", "csv", 8, 0, 0, 2, 1},
		{"plain.txt", "text", 14, 0, 0, 0, 3},
		{"zeek.intel", "text", 2, 0, 0, 0, 0},
	}
	if diff := cmp.Diff(wantStatus, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestMatchHTTPRequests(t *testing.T) {
	set, _ := loadFixture(t)
	tests := []struct {
		name, record string
		want         []string
	}{
		{"nothing", `{"ClientIP":"192.0.2.1","ClientRequestHost":"www.example.com","ClientRequestURI":"/","ClientRequestUserAgent":"curl/8"}`, nil},
		{"IPv4", `{"ClientIP":"198.51.100.7"}`, []string{"source.ip=198.51.100.7 -> ipv4 198.51.100.7 (plain.txt:2)"}},
		{"IPv4 from CSV ip|port", `{"ClientIP":"198.51.100.21"}`, []string{"source.ip=198.51.100.21 -> ipv4 198.51.100.21 (misp.csv:3)"}},
		{"C2-tagged IP on the client", `{"ClientIP":"198.51.100.66"}`, []string{"source.ip=198.51.100.66 -> ipv4 198.51.100.66 (bundle.json:5)"}},
		{"IPv6", `{"ClientIP":"2001:db8:bad::7"}`, []string{"source.ip=2001:db8:bad::7 -> ipv6 2001:db8:bad::7 (plain.txt:3)"}},
		{"IPv4-mapped IPv6", `{"ClientIP":"::ffff:198.51.100.7"}`, []string{"source.ip=::ffff:198.51.100.7 -> ipv4 198.51.100.7 (plain.txt:2)"}},
		{"CIDR v4", `{"ClientIP":"203.0.113.99"}`, []string{"source.ip=203.0.113.99 -> cidr 203.0.113.0/24 (plain.txt:4)"}},
		{"CIDR v4 edge", `{"ClientIP":"203.0.114.0"}`, nil},
		{"CIDR v6", `{"ClientIP":"2001:db8:c0:ffff::1"}`, []string{"source.ip=2001:db8:c0:ffff::1 -> cidr 2001:db8:c0::/48 (plain.txt:5)"}},
		{"CIDR v6 from STIX", `{"ClientIP":"2001:db8:5::abcd"}`, []string{"source.ip=2001:db8:5::abcd -> cidr 2001:db8:5::/64 (bundle.json:31)"}},
		{"CIDR v6 outside", `{"ClientIP":"2001:db8:5:1::1"}`, nil},
		{"revoked", `{"ClientIP":"203.0.113.250"}`, []string{"source.ip=203.0.113.250 -> cidr 203.0.113.0/24 (plain.txt:4)"}},
		{"expired", `{"ClientIP":"192.0.2.200"}`, nil},
		{"AND pattern left out", `{"ClientIP":"192.0.2.201"}`, nil},
		{"domain", `{"ClientRequestHost":"evil.example"}`, []string{"destination.address=evil.example -> domain evil.example (plain.txt:6)"}},
		{"subdomain, case, trailing dot, port", `{"ClientRequestHost":"A.B.Evil.Example.:8443"}`, []string{"destination.address=A.B.Evil.Example.:8443 -> domain evil.example (plain.txt:6)"}},
		{"not a subdomain", `{"ClientRequestHost":"notevil.example"}`, nil},
		{"parent not matched", `{"ClientRequestHost":"misp-host.example"}`, nil},
		{"wildcard domain", `{"ClientRequestHost":"x.wild.example"}`, []string{"destination.address=x.wild.example -> domain *.wild.example (plain.txt:7)"}},
		{"wildcard apex", `{"ClientRequestHost":"wild.example"}`, []string{"destination.address=wild.example -> domain *.wild.example (plain.txt:7)"}},
		{"superseded old version", `{"ClientRequestHost":"old-version.example"}`, nil},
		{"superseding version", `{"ClientRequestHost":"new-version.example"}`, []string{"destination.address=new-version.example -> domain new-version.example (bundle.json:73)"}},
		{"STIX IN, valid_until in the future", `{"ClientRequestHost":"in-two.example"}`, []string{"destination.address=in-two.example -> domain in-two.example (bundle.json:94)"}},
		{"referrer host", `{"ClientRequestReferer":"https://user@www.Phish.example:444/a?b#c"}`, []string{"http.request.referrer=https://user@www.Phish.example:444/a?b#c -> domain Phish.Example. (plain.txt:8)"}},
		{"referrer without host", `{"ClientRequestReferer":"phish.example"}`, nil},
		{"URL", `{"ClientRequestHost":"drop.example","ClientRequestURI":"/gate.php"}`, []string{"url.original=drop.example/gate.php -> url hxxp://drop[.]example/gate.php (plain.txt:9)"}},
		{"URL, any query when the indicator has none", `{"ClientRequestHost":"DROP.example","ClientRequestURI":"/gate.php?id=7"}`, []string{"url.original=drop.example/gate.php?id=7 -> url hxxp://drop[.]example/gate.php (plain.txt:9)"}},
		{"URL path is case-sensitive", `{"ClientRequestHost":"drop.example","ClientRequestURI":"/Gate.php"}`, nil},
		{"URL with query, port and fragment in the indicator", `{"ClientRequestHost":"shop.example","ClientRequestURI":"/kit/login.php?id=1"}`, []string{"url.original=shop.example/kit/login.php?id=1 -> url http://Shop.Example:8080/kit/login.php?id=1#frag (plain.txt:10)"}},
		{"URL with another query", `{"ClientRequestHost":"shop.example","ClientRequestURI":"/kit/login.php?id=2"}`, nil},
		{"URL without scheme", `{"ClientRequestHost":"shop.example","ClientRequestURI":"/landing"}`, []string{"url.original=shop.example/landing -> url shop.example/landing (plain.txt:11)"}},
		{"URL, prefix only", `{"ClientRequestHost":"shop.example","ClientRequestURI":"/landing/more"}`, nil},
		{"URL and domain", `{"ClientRequestHost":"misp-evil.example","ClientRequestURI":"/wp-admin/x.php"}`, []string{
			"destination.address=misp-evil.example -> domain misp-evil.example (misp.csv:4)",
			"url.original=misp-evil.example/wp-admin/x.php -> url https://misp-evil.example/wp-admin/x.php (misp.csv:6)",
		}},
		{"absolute URI", `{"ClientRequestHost":"x.example","ClientRequestURI":"http://stix-evil.example/Payload.exe"}`, []string{"url.original=stix-evil.example/Payload.exe -> url https://stix-evil.example/Payload.exe (bundle.json:31)"}},
		{"referrer URL", `{"ClientRequestReferer":"http://stix-evil.example/Payload.exe#x"}`, []string{"http.request.referrer=http://stix-evil.example/Payload.exe#x -> url https://stix-evil.example/Payload.exe (bundle.json:31)"}},
		{"user-agent", `{"ClientRequestUserAgent":"Mozilla/5.0 (compatible; EvilBot/1.0; +http://evil.example)"}`, []string{"user_agent.original=Mozilla/5.0 (compatible; EvilBot/1.0; +http://evil.example) -> ua Mozilla/5.0 (compatible; EvilBot/1.0; +http://evil.example) (plain.txt:12)"}},
		{"user-agent from STIX", `{"ClientRequestUserAgent":"Mozilla/5.0 (Windows NT 6.1; WOW64) Trevor's Agent"}`, []string{"user_agent.original=Mozilla/5.0 (Windows NT 6.1; WOW64) Trevor's Agent -> ua Mozilla/5.0 (Windows NT 6.1; WOW64) Trevor's Agent (bundle.json:41)"}},
		{"user-agent is exact", `{"ClientRequestUserAgent":"Mozilla/5.0 (compatible; EvilBot/1.0; +http://evil.example) extra"}`, nil},
		{"JA3", `{"JA3Hash":"e7d705a3286e19ea42f587b344ee6865"}`, []string{"cloudflare.JA3Hash=e7d705a3286e19ea42f587b344ee6865 -> ja3 E7D705A3286E19EA42F587B344EE6865 (plain.txt:13)"}},
		{"JA3 upper case", `{"JA3Hash":"6734F37431670B3AB4292B8F60F29984"}`, []string{"cloudflare.JA3Hash=6734F37431670B3AB4292B8F60F29984 -> ja3 6734f37431670b3ab4292b8f60f29984 (misp.csv:8)"}},
		{"many at once", `{"ClientIP":"60.2.148.167","ClientRequestHost":"av.ddns.example","ClientRequestReferer":"http://zeek-evil.example/","ClientRequestUserAgent":"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1, SV1)"}`, []string{
			"destination.address=av.ddns.example -> domain av.ddns.example (bundle.json:19)",
			"http.request.referrer=http://zeek-evil.example/ -> domain zeek-evil.example (zeek.intel:3)",
			"source.ip=60.2.148.167 -> ipv4 60.2.148.167 (bundle.json:19)",
			"user_agent.original=Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1, SV1) -> ua Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1, SV1) (misp.csv:7)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := event(t, tt.record)
			got := briefHits(set.Match(ev, nil))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Match(%s) (-want +got):\n%s", tt.record, diff)
			}
		})
	}
}

// fakeEvent is a flat event of a dataset normalize does not decode yet.
type fakeEvent map[string]string

func (f fakeEvent) StringField(field normalize.Field) (string, bool) {
	v, ok := f[field.Name()]
	return v, ok
}

func TestMatchOtherDatasets(t *testing.T) {
	set, _ := loadFixture(t)
	tests := []struct {
		dataset string
		ev      fakeEvent
		want    []string
	}{
		{"dns_logs", fakeEvent{"dns.question.name": "c2.av.ddns.example", "source.ip": "192.0.2.1"},
			[]string{"dns.question.name=c2.av.ddns.example -> domain av.ddns.example (bundle.json:19)"}},
		{"gateway_dns", fakeEvent{"dns.question.name": "EVIL.example.", "source.ip": "198.51.100.7"}, []string{
			"dns.question.name=EVIL.example. -> domain evil.example (plain.txt:6)",
			"source.ip=198.51.100.7 -> ipv4 198.51.100.7 (plain.txt:2)",
		}},
		{"firewall_events", fakeEvent{"url.domain": "evil.example", "destination.domain": "evil.example", "user_agent.original": "curl/8"},
			// The same indicator and value in two fields is one hit.
			[]string{"url.domain=evil.example -> domain evil.example (plain.txt:6)"}},
		{"firewall_events", fakeEvent{"url.domain": "drop.example", "url.original": "/gate.php"},
			[]string{"url.original=drop.example/gate.php -> url hxxp://drop[.]example/gate.php (plain.txt:9)"}},
	}
	for _, tt := range tests {
		got := briefHits(set.match(tt.dataset, time.Time{}, tt.ev, nil))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("match(%s, %v) (-want +got):\n%s", tt.dataset, tt.ev, diff)
		}
	}
}

func TestMatchExpiryAtEventTime(t *testing.T) {
	until := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	set := NewSet([]Indicator{
		{Type: TypeIPv4, Value: "192.0.2.9", File: "f", Line: 1, Meta: &Meta{ValidUntil: until}},
		{Type: TypeIPv4, Value: "192.0.2.9", File: "g", Line: 1},
	}, fixtureNow)
	ev := fakeEvent{"source.ip": "192.0.2.9"}
	for _, tt := range []struct {
		at   time.Time
		want int
	}{{until.Add(-time.Second), 2}, {until, 1}, {until.Add(time.Hour), 1}} {
		if got := len(set.match("http_requests", tt.at, ev, nil)); got != tt.want {
			t.Errorf("match at %v: %d hits; want %d", tt.at, got, tt.want)
		}
	}
	if got := NewSet([]Indicator{{Type: TypeIPv4, Value: "192.0.2.9", Meta: &Meta{ValidUntil: until}}}, until).Len(); got != 0 {
		t.Errorf("NewSet at valid_until: Len = %d; want 0", got)
	}
}

func TestMatchOverlappingRanges(t *testing.T) {
	set := NewSet([]Indicator{
		{Type: TypeCIDR, Value: "10.0.0.0/8", File: "a"},
		{Type: TypeCIDR, Value: "10.1.0.0/16", File: "a"},
		{Type: TypeCIDR, Value: "10.1.0.0/16", File: "b"},
		{Type: TypeIPv4, Value: "10.1.2.3", File: "a"},
		{Type: TypeCIDR, Value: "10.2.0.0/16", File: "a"},
		{Type: TypeDomain, Value: "example", File: "a"}, // invalid: dropped
	}, fixtureNow)
	got := briefHits(set.match("http_requests", time.Time{}, fakeEvent{"source.ip": "10.1.2.3"}, nil))
	want := []string{
		"source.ip=10.1.2.3 -> cidr 10.0.0.0/8 (a:0)",
		"source.ip=10.1.2.3 -> cidr 10.1.0.0/16 (a:0)",
		"source.ip=10.1.2.3 -> cidr 10.1.0.0/16 (b:0)",
		"source.ip=10.1.2.3 -> ipv4 10.1.2.3 (a:0)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Match (-want +got):\n%s", diff)
	}
	if set.Len() != 5 {
		t.Errorf("Len = %d; want 5", set.Len())
	}
}

// TestMatchSingleType matches a full event against sets that hold one type
// of indicator only, so that every other index is absent.
func TestMatchSingleType(t *testing.T) {
	ev := fakeEvent{
		"source.ip": "10.1.2.3", "destination.address": "www.Evil.Example", "url.original": "/x?y=1",
		"http.request.referrer": "https://ref.example/p", "user_agent.original": "EvilKit/1",
		"cloudflare.JA3Hash": "E7D705A3286E19EA42F587B344EE6860",
	}
	for _, c := range []struct {
		ind  Indicator
		want string
	}{
		{Indicator{Type: TypeCIDR, Value: "10.0.0.0/8"}, "source.ip=10.1.2.3 -> cidr 10.0.0.0/8 (:0)"},
		{Indicator{Type: TypeIPv4, Value: "10.1.2.3"}, "source.ip=10.1.2.3 -> ipv4 10.1.2.3 (:0)"},
		{Indicator{Type: TypeIPv6, Value: "2001:db8::1"}, ""},
		{Indicator{Type: TypeDomain, Value: "evil.example"}, "destination.address=www.Evil.Example -> domain evil.example (:0)"},
		{Indicator{Type: TypeURL, Value: "http://www.evil.example/x"}, "url.original=www.evil.example/x?y=1 -> url http://www.evil.example/x (:0)"},
		{Indicator{Type: TypeUA, Value: "EvilKit/1"}, "user_agent.original=EvilKit/1 -> ua EvilKit/1 (:0)"},
		{Indicator{Type: TypeJA3, Value: "e7d705a3286e19ea42f587b344ee6860"}, "cloudflare.JA3Hash=E7D705A3286E19EA42F587B344EE6860 -> ja3 e7d705a3286e19ea42f587b344ee6860 (:0)"},
	} {
		set := NewSet([]Indicator{c.ind}, fixtureNow)
		got := briefHits(set.match("http_requests", time.Time{}, ev, nil))
		var want []string
		if c.want != "" {
			want = []string{c.want}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Match with only %s %s (-want +got):\n%s", c.ind.Type, c.ind.Value, diff)
		}
	}
}

func TestMatchEmpty(t *testing.T) {
	ev := event(t, `{"ClientIP":"10.0.0.1"}`)
	var nilSet *Set
	if got := nilSet.Match(ev, nil); got != nil {
		t.Errorf("nil Set: Match = %v; want nil", got)
	}
	if got := NewSet(nil, fixtureNow).Match(ev, nil); got != nil {
		t.Errorf("empty Set: Match = %v; want nil", got)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	set, _ := loadFixture(t)
	ev := event(t, `{"ClientIP":"2001:db8::1","ClientRequestHost":"www.shop.example","ClientRequestURI":"/a/b/c.php?x=1",`+
		`"ClientRequestReferer":"https://misp-evil.example.net/x?y","ClientRequestUserAgent":"Mozilla/5.0","JA3Hash":"E7D705A3286E19EA42F587B344EE6860"}`)
	dst := make([]Hit, 0, 8)
	if n := testing.AllocsPerRun(100, func() { dst = set.Match(ev, dst[:0]) }); n != 0 {
		t.Errorf("Match with no hit: %v allocations; want 0", n)
	}
	if len(dst) != 0 {
		t.Errorf("Match = %v; want no hit", briefHits(dst))
	}
}
