package normalize

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func normalize(tb testing.TB, record string) *Event {
	tb.Helper()
	ev, err := New(Options{}).Normalize("http_requests", []byte(record))
	if err != nil {
		tb.Fatalf("Normalize(%s) error: %v", record, err)
	}
	return ev
}

// pick returns the named Flat fields that are present.
func pick(ev *Event, names ...string) map[string]any {
	m := make(map[string]any)
	flat := ev.FlatMap()
	for _, n := range names {
		if v, ok := flat[n]; ok {
			m[n] = v
		}
	}
	return m
}

func TestTimestampFormats(t *testing.T) {
	const ms = "2022-07-20T01:47:51.671000Z"
	const s = "2022-07-20T01:47:51Z"
	tests := []struct {
		in   string // JSON value of EdgeStartTimestamp
		want string
	}{
		{`1658281671671000000`, ms},
		{`"1658281671671000000"`, ms},
		{`1658281671671000`, ms},
		{`1658281671671`, ms},
		{`"1658281671671"`, ms},
		{`"2022-07-20T01:47:51.671Z"`, ms},
		{`"2022-07-20T01:47:51.671000000Z"`, ms},
		{`"2022-07-20T03:47:51.671+02:00"`, ms},
		{`1658281671`, s},
		{`"1658281671"`, s},
		{`"2022-07-20T01:47:51Z"`, s},
		{`1658281671000000000`, s},
		{`1658281671.671`, ms},
		// R10: float seconds, microseconds rounded half to even (values from
		// Python's datetime.fromtimestamp).
		{`1658281671671000500`, "2022-07-20T01:47:51.671000Z"},
		{`1658281671671001500`, "2022-07-20T01:47:51.671002Z"},
		{`1658281671999999600`, "2022-07-20T01:47:52Z"},
		{`"2022-07-20T01:47:51.671001500Z"`, "2022-07-20T01:47:51.671002Z"},
		// As other tools write them: a space for the T; no zone is UTC.
		{`"2022-07-20 01:47:51"`, s},
		{`"2022-07-20 01:47:51.671"`, ms},
		{`"2022-07-20T01:47:51.671"`, ms},
		{`"2022-07-20 01:47:51Z"`, s},
		{`"2022-07-20 03:47:51.671+02:00"`, ms},
	}
	for _, tt := range tests {
		ev := normalize(t, `{"RayID":"r","EdgeStartTimestamp":`+tt.in+`,"EdgeEndTimestamp":`+tt.in+`}`)
		want := map[string]any{"event.start": tt.want, "event.end": tt.want, "@timestamp": tt.want}
		if diff := cmp.Diff(want, pick(ev, "event.start", "event.end", "@timestamp")); diff != "" {
			t.Errorf("EdgeStartTimestamp %s (-want +got):\n%s", tt.in, diff)
		}
		wantTime, _ := time.Parse(time.RFC3339Nano, tt.want)
		if d := ev.Time.Sub(wantTime); d < -time.Microsecond || d > time.Microsecond || ev.Time.Location() != time.UTC {
			t.Errorf("EdgeStartTimestamp %s: Time = %v; want %v UTC", tt.in, ev.Time, wantTime)
		}
	}
}

// TestTimestampErrors checks that a timestamp that does not parse costs
// its field, named in FieldErrors, and not the record.
func TestTimestampErrors(t *testing.T) {
	for _, in := range []string{`true`, `"yesterday"`, `{}`, `99999999999999999999999`} {
		ev, err := New(Options{}).Normalize("http_requests", []byte(`{"RayID":"r1","EdgeStartTimestamp":`+in+`}`))
		if err != nil {
			t.Errorf("EdgeStartTimestamp %s: error %v; want the record normalized", in, err)
			continue
		}
		fe := ev.FieldErrors()
		if len(fe) != 1 || fe[0].Field != "EdgeStartTimestamp" || !strings.Contains(fe[0].Error(), `field "EdgeStartTimestamp"`) {
			t.Errorf("EdgeStartTimestamp %s: FieldErrors = %v; want one naming the field", in, fe)
		}
		if got := pick(ev, "event.start", "@timestamp"); len(got) != 0 || !ev.Time.IsZero() || ev.Key != "r1" {
			t.Errorf("EdgeStartTimestamp %s: got %v, Time %v, Key %q; want no time, the rest normalized", in, got, ev.Time, ev.Key)
		}
	}
	// Empty and null timestamps are absent, not errors.
	for _, in := range []string{`""`, `null`} {
		ev := normalize(t, `{"EdgeStartTimestamp":`+in+`}`)
		if got := pick(ev, "event.start", "@timestamp"); len(got) != 0 || !ev.Time.IsZero() {
			t.Errorf("EdgeStartTimestamp %s: got %v, Time %v; want nothing", in, got, ev.Time)
		}
	}
}

func TestExactNumbers(t *testing.T) {
	ev := normalize(t, `{"EdgeStartTimestamp":1658281671671000123,"EdgeEndTimestamp":"1658281702371000001",
		"OriginResponseTime":9007199254740993,"ZoneID":12345678901234567890,"EdgeResponseBytes":279,
		"EdgeResponseCompressionRatio":1.50,"ClientSrcPort":0}`)
	want := map[string]any{
		"cloudflare.EdgeStartTimestamp":           "1658281671671000123",
		"cloudflare.EdgeEndTimestamp":             "1658281702371000001",
		"cloudflare.OriginResponseTime":           json.Number("9007199254740993"),
		"cloudflare.ZoneID":                       json.Number("12345678901234567890"),
		"cloudflare.EdgeResponseBytes":            json.Number("279"),
		"cloudflare.EdgeResponseCompressionRatio": json.Number("1.50"),
		"http.response.bytes":                     json.Number("279"),
		"source.port":                             json.Number("0"),
	}
	got := pick(ev, "cloudflare.EdgeStartTimestamp", "cloudflare.EdgeEndTimestamp", "cloudflare.OriginResponseTime",
		"cloudflare.ZoneID", "cloudflare.EdgeResponseBytes", "cloudflare.EdgeResponseCompressionRatio",
		"http.response.bytes", "source.port")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("numbers (-want +got):\n%s", diff)
	}
	data, err := json.Marshal(ev.Doc())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"ZoneID":12345678901234567890`) {
		t.Errorf("json.Marshal(Doc) = %s; want ZoneID with every digit", data)
	}
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		record string
		want   map[string]any
	}{
		{`{"ClientIP":"34.142.121.18"}`, map[string]any{
			"source.ip": "34.142.121.18", "source.address": "34.142.121.18",
			"related.ip": []any{"34.142.121.18"}, "cloudflare.ClientIP": "34.142.121.18"}},
		{`{"ClientIP":"2001:db8::1"}`, map[string]any{
			"source.ip": "2001:db8::1", "source.address": "2001:db8::1",
			"related.ip": []any{"2001:db8::1"}, "cloudflare.ClientIP": "2001:db8::1"}},
		{`{"ClientIP":"::ffff:1.2.3.4"}`, map[string]any{
			"source.ip": "::ffff:1.2.3.4", "source.address": "::ffff:1.2.3.4",
			"related.ip": []any{"::ffff:1.2.3.4"}, "cloudflare.ClientIP": "::ffff:1.2.3.4"}},
		{`{"ClientIP":"not-an-ip"}`, map[string]any{"cloudflare.ClientIP": "not-an-ip"}},
		{`{"ClientIP":"1.2.3.999"}`, map[string]any{"cloudflare.ClientIP": "1.2.3.999"}},
		{`{"ClientIP":12}`, map[string]any{"cloudflare.ClientIP": "12"}},
		{`{"ClientIP":""}`, map[string]any{"cloudflare.ClientIP": ""}},
		{`{"ClientIP":"1.1.1.1","clientIP":"2.2.2.2"}`, map[string]any{
			"source.ip": "2.2.2.2", "source.address": "2.2.2.2",
			"related.ip": []any{"2.2.2.2"}, "cloudflare.ClientIP": "1.1.1.1"}},
		{`{"ClientIP":"1.1.1.1","clientIP":"bad"}`, map[string]any{
			"source.ip": "1.1.1.1", "source.address": "1.1.1.1",
			"related.ip": []any{"1.1.1.1"}, "cloudflare.ClientIP": "1.1.1.1"}},
	}
	for _, tt := range tests {
		got := pick(normalize(t, tt.record), "source.ip", "source.address", "related.ip", "cloudflare.ClientIP")
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Normalize(%s) (-want +got):\n%s", tt.record, diff)
		}
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		record string
		want   map[string]any
	}{
		{`{"ClientRequestURI":"/a/b?x=1&y=%27"}`, map[string]any{
			"url.path": "/a/b?x=1&y=%27", "url.original": "/a/b?x=1&y=%27", "url.query": "x=1&y=%27"}},
		{`{"ClientRequestURI":"/a?"}`, map[string]any{"url.path": "/a?", "url.original": "/a?"}},
		{`{"ClientRequestURI":"/a?b?c"}`, map[string]any{"url.path": "/a?b?c", "url.original": "/a?b?c", "url.query": "b?c"}},
		{`{"ClientRequestURI":"/a"}`, map[string]any{"url.path": "/a", "url.original": "/a"}},
		{`{"ClientRequestPath":"/p","ClientRequestURI":"/p?q=1"}`, map[string]any{
			"url.path": "/p", "url.original": "/p?q=1", "url.query": "q=1"}},
		{`{"ClientRequestPath":"","ClientRequestURI":"/u"}`, map[string]any{"url.path": "/u", "url.original": "/u"}},
		{`{"ClientRequestPath":"/p"}`, map[string]any{"url.path": "/p"}},
		{`{"ClientRequestPath":"","ClientRequestURI":""}`, map[string]any{"url.path": "", "url.original": ""}},
	}
	for _, tt := range tests {
		ev := normalize(t, tt.record)
		got := pick(ev, "url.path", "url.original", "url.query", "url.domain")
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Normalize(%s) (-want +got):\n%s", tt.record, diff)
		}
	}
}

// TestDocAndFlat checks a whole document: empty values dropped from Doc but
// kept in Flat, 0 and false kept, nested objects, lists in keyword fields,
// undeclared fields dropped and the GraphQL style keys.
func TestDocAndFlat(t *testing.T) {
	ev := normalize(t, `{
		"RayID": "72d807ffeba5753d",
		"ClientRequestUserAgent": "",
		"ClientSrcPort": 0,
		"WorkerSubrequest": false,
		"WAFRuleID": null,
		"RequestHeaders": {"x-a": "1", "x-b": "", "x-n": null, "x-o": {"k": 2, "e": {}}},
		"Cookies": {},
		"BotTags": ["bing", ""],
		"FirewallMatchesActions": ["block", 1, true, {"b": 1, "a": "x"}],
		"SecurityActions": [],
		"JA4": "undeclared",
		"datetime": "2023-02-24T16:32:58Z",
		"action": "block",
		"clientAsn": 0,
		"ClientASN": 13335,
		"ruleId": "r1",
		"rulesetId": "rs1"
	}`)
	if ev.Dataset != "http_requests" || ev.Key != "72d807ffeba5753d" || !ev.Time.Equal(time.Date(2023, 2, 24, 16, 32, 58, 0, time.UTC)) {
		t.Errorf("Dataset, Key, Time = %q, %q, %v", ev.Dataset, ev.Key, ev.Time)
	}
	wantDoc := map[string]any{
		"@timestamp": "2023-02-24T16:32:58Z",
		"cloudflare": map[string]any{
			"RayID":                  "72d807ffeba5753d",
			"ClientSrcPort":          json.Number("0"),
			"ClientASN":              json.Number("13335"),
			"WorkerSubrequest":       false,
			"RequestHeaders":         map[string]any{"x-a": "1", "x-o": map[string]any{"k": json.Number("2"), "e": map[string]any{}}},
			"Cookies":                map[string]any{},
			"BotTags":                []any{"bing"},
			"FirewallMatchesActions": []any{"block", "1", "true", `{"a":"x","b":1}`},
			"SecurityActions":        []any{},
		},
		"event": map[string]any{
			"action":   "block",
			"category": []any{"web"},
			"type":     []any{"access"},
			"dataset":  "http_requests",
		},
		"observer": map[string]any{"vendor": "Cloudflare", "type": "proxy"},
		"rule":     map[string]any{"id": "r1", "ruleset": "rs1"},
		"source": map[string]any{
			"port": json.Number("0"),
			"as":   map[string]any{"number": json.Number("13335")},
		},
	}
	wantFlat := map[string]any{
		"@timestamp":                        "2023-02-24T16:32:58Z",
		"cloudflare.RayID":                  "72d807ffeba5753d",
		"cloudflare.ClientRequestUserAgent": "",
		"cloudflare.ClientSrcPort":          json.Number("0"),
		"cloudflare.ClientASN":              json.Number("13335"),
		"cloudflare.WorkerSubrequest":       false,
		"cloudflare.RequestHeaders.x-a":     "1",
		"cloudflare.RequestHeaders.x-b":     "",
		"cloudflare.RequestHeaders.x-o.k":   json.Number("2"),
		"cloudflare.BotTags":                []any{"bing"},
		"cloudflare.FirewallMatchesActions": []any{"block", "1", "true", `{"a":"x","b":1}`},
		"cloudflare.SecurityActions":        []any{},
		"user_agent.original":               "",
		"event.action":                      "block",
		"event.category":                    []any{"web"},
		"event.type":                        []any{"access"},
		"event.dataset":                     "http_requests",
		"observer.vendor":                   "Cloudflare",
		"observer.type":                     "proxy",
		"rule.id":                           "r1",
		"rule.ruleset":                      "rs1",
		"source.port":                       json.Number("0"),
		"source.as.number":                  json.Number("13335"),
	}
	if diff := cmp.Diff(wantDoc, ev.Doc()); diff != "" {
		t.Errorf("Doc (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantFlat, ev.FlatMap()); diff != "" {
		t.Errorf("FlatMap (-want +got):\n%s", diff)
	}
	if s, ok := ev.String("user_agent.original"); !ok || s != "" {
		t.Errorf(`String("user_agent.original") = %q, %v; want "", true`, s, ok)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		dataset, record string
		want            string // regexp
		is              error
	}{
		{"http_requests", `{"RayID":"x"`, `^not JSON: `, nil},
		{"http_requests", ``, `^not JSON: `, nil},
		{"http_requests", `{"a":1} {"b":2}`, `^not JSON: `, nil},
		{"http_requests", `[{"RayID":"x"}]`, `^not a JSON object: got array$`, nil},
		{"http_requests", `"RayID"`, `^not a JSON object: got string$`, nil},
		{"bogus", `{}`, `^dataset "bogus": unknown dataset$`, ErrUnknownDataset},
		{"auto", `{"foo":1}`, `unknown dataset$`, ErrUnknownDataset},
	}
	for _, tt := range tests {
		_, err := New(Options{}).Normalize(tt.dataset, []byte(tt.record))
		if err == nil || !regexp.MustCompile(tt.want).MatchString(err.Error()) {
			t.Errorf("Normalize(%q, %s) error = %v; want match for %s", tt.dataset, tt.record, err, tt.want)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Normalize(%q, %s) error = %v; want errors.Is %v", tt.dataset, tt.record, err, tt.is)
		}
	}

	n := New(Options{MaxRecordBytes: 10})
	if _, err := n.Normalize("http_requests", []byte(`{"RayID":"0123456789"}`)); err == nil {
		t.Errorf("Normalize of a record over MaxRecordBytes succeeded")
	}
}

// TestFieldErrors checks that a value of the wrong type or format costs
// its field only: the record normalizes, the field is absent (gone is a
// field of the event it would have set), and FieldErrors names it and
// says why.
func TestFieldErrors(t *testing.T) {
	tests := []struct {
		dataset, record string
		want            string // regexp for the one FieldError
		gone            string
	}{
		{"http_requests", `{"EdgeResponseStatus":"2xx"}`, `^field "EdgeResponseStatus": want number, got string$`, "http.response.status_code"},
		{"http_requests", `{"ClientSrcPort":true}`, `^field "ClientSrcPort": want number, got bool$`, "source.port"},
		{"http_requests", `{"WorkerSubrequest":"yes"}`, `^field "WorkerSubrequest": want bool, got string$`, "cloudflare.WorkerSubrequest"},
		{"http_requests", `{"Cookies":"a=b"}`, `^field "Cookies": want object or array, got string$`, "cloudflare.Cookies"},
		{"http_requests", `{"clientAsn":"AS13335"}`, `^field "clientAsn": want number, got string$`, "source.as.number"},
		{"http_requests", `{"EdgeResponseBytes":NaN}`, `^field "EdgeResponseBytes": invalid number "NaN"$`, "http.response.bytes"},
		{"http_requests", `{"EdgeResponseBytes":{"n":1}}`, `^field "EdgeResponseBytes": want number, got object$`, "http.response.bytes"},
		{"http_requests", `{"RequestHeaders":{"a":{"b":1-2}}}`, `^field "RequestHeaders.a.b": invalid number "1-2"$`, "cloudflare.RequestHeaders.a"},
		{"http_requests", `{"BotTags":["a",1-2]}`, `^field "BotTags": invalid number "1-2"$`, "cloudflare.BotTags"},
		{"firewall_events", `{"Datetime":true}`, `^field "Datetime": want timestamp`, "@timestamp"},
		{"firewall_events", `{"Source":{"name":"waf"}}`, `^field "Source": want text, got object$`, "event.module"},
		{"dns_logs", `{"QueryName":{"q":"example.com"}}`, `^field "QueryName": want text, got object$`, "dns.question.name"},
		{"gateway_dns", `{"DstPort":"fifty-three"}`, `^field "DstPort": want number, got string$`, "destination.port"},
		{"audit_logs", `{"Metadata":{"Request":{"networks":"x"}}}`, `^field "Metadata.Request.networks": want object or array, got string$`, "cloudflare.request_networks"},
	}
	for _, tt := range tests {
		rec := strings.Replace(tt.record, "{", `{"RayID":"r1","ClientIP":"203.0.113.9",`, 1)
		ev, err := New(Options{}).Normalize(tt.dataset, []byte(rec))
		if err != nil {
			t.Errorf("Normalize(%q, %s) error %v; want the record normalized without the field", tt.dataset, rec, err)
			continue
		}
		fe := ev.FieldErrors()
		if len(fe) != 1 || !regexp.MustCompile(tt.want).MatchString(fe[0].Error()) {
			t.Errorf("Normalize(%q, %s): FieldErrors = %v; want one matching %s", tt.dataset, rec, fe, tt.want)
		}
		if v, ok := ev.FlatMap()[tt.gone]; ok {
			t.Errorf("Normalize(%q, %s): %s = %v; want it left out", tt.dataset, rec, tt.gone, v)
		}
		if len(ev.Fields()) < 3 {
			t.Errorf("Normalize(%q, %s): fields %v; want the rest of the record", tt.dataset, rec, ev.Fields())
		}
	}
}

func TestDatasets(t *testing.T) {
	for _, ds := range Datasets {
		_, err := New(Options{}).Normalize(ds, []byte(`{}`))
		if err != nil {
			t.Errorf("Normalize(%q, {}) error: %v", ds, err)
		}
	}
}

func TestKey(t *testing.T) {
	a := normalize(t, `{"ClientIP":"1.2.3.4"}`)
	b := normalize(t, " \t{\"ClientIP\":\"1.2.3.4\"}\r\n")
	c := normalize(t, `{"ClientIP":"1.2.3.5"}`)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(a.Key) {
		t.Errorf("Key = %q; want 32 hex digits", a.Key)
	}
	if a.Key != b.Key || a.Key == c.Key {
		t.Errorf("Keys %q, %q, %q: want the first two equal and the third different", a.Key, b.Key, c.Key)
	}
	if got := normalize(t, `{"RayID":"","ClientIP":"1.2.3.4"}`).Key; len(got) != 32 {
		t.Errorf("Key with empty RayID = %q; want a hash", got)
	}
}

// TestElasticInputs normalizes every line of Elastic's Logpush test inputs
// (http_request, firewall_event, dns), which use the rfc3339, unix and
// unixnano timestamp formats, with dataset detection. Elastic's expected
// outputs use Elastic's mapping, so only the inputs are used. Two lines are
// of the other dataset than their file: the http_request file has a
// firewall event (it has Datetime) and the firewall_event file an
// http_requests record (it has EdgeStartTimestamp).
func TestElasticInputs(t *testing.T) {
	root := filepath.Join("..", "..", "shared", "testdata", "elastic")
	files, _ := filepath.Glob(filepath.Join(root, "*", "*.log"))
	more, _ := filepath.Glob(filepath.Join(root, "dns", "_unpaired", "*"))
	files = append(files, more...)
	if len(files) == 0 {
		t.Skipf("Elastic fixtures not available under %s", root)
	}
	n := New(Options{})
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := 0
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			lines++
			ev, err := n.Normalize("auto", []byte(line))
			if err != nil {
				t.Errorf("%s line %d: Normalize error: %v", file, lines, err)
				continue
			}
			want := "dns_logs"
			switch {
			case strings.Contains(line, `"Datetime"`):
				want = "firewall_events"
			case strings.Contains(line, `"EdgeStartTimestamp"`):
				want = "http_requests"
			}
			if ev.Dataset != want {
				t.Errorf("%s line %d: Dataset = %q; want %q", file, lines, ev.Dataset, want)
			}
			ts, ok := ev.String("@timestamp")
			if !ok || ev.Time.IsZero() || ev.Time.Year() < 2020 {
				t.Errorf("%s line %d: @timestamp = %q, Time = %v; want a time after 2020", file, lines, ts, ev.Time)
			}
			if want == "http_requests" && strings.Contains(file, "http_request") {
				wantTime := time.Date(2022, 5, 25, 13, 25, 26, 0, time.UTC)
				if ts != "2022-05-25T13:25:26Z" || !ev.Time.Equal(wantTime) {
					t.Errorf("%s line %d: @timestamp = %q, Time = %v; want 2022-05-25T13:25:26Z", file, lines, ts, ev.Time)
				}
			}
		}
		if lines == 0 {
			t.Errorf("%s has no lines", file)
		}
	}
}

func TestConcurrentNormalize(t *testing.T) {
	n := New(Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := fmt.Sprintf("%d-%d", g, i)
				ev, err := n.Normalize("http_requests", []byte(`{"RayID":"`+id+`","ClientIP":"10.0.0.1","RequestHeaders":{"a":"b"}}`))
				if err != nil {
					t.Error(err)
					return
				}
				if ev.Key != id {
					t.Errorf("Key = %q; want %q", ev.Key, id)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestDetect(t *testing.T) {
	tests := []struct{ record, want string }{
		{`{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1,"RayID":"r"}`, "http_requests"},
		{`{"WAFProfile":"unknown","ZoneName":"example.com"}`, "http_requests"},
		{`{"ClientRequestHost":"example.com","RayID":"r","Datetime":"2022-05-25T13:25:26Z","Action":"block"}`, "firewall_events"},
		{`{"Datetime":1,"Kind":"firewall","RuleID":"x","RayID":"r","EdgeResponseStatus":403}`, "firewall_events"},
		{`{"QueryName":"example.com","QueryType":1,"ResponseCode":0,"Timestamp":1}`, "dns_logs"},
		{`{"QueryName":"example.com","QueryType":1,"PolicyID":"p","Datetime":1}`, "gateway_dns"},
		{`{"Datetime":1,"Action":"allow","HTTPHost":"example.com","URL":"https://example.com/"}`, "gateway_http"},
		{`{"Datetime":1,"SessionID":"s","DestinationIP":"1.2.3.4","Transport":"tcp"}`, "gateway_network"},
		{`{"AppUUID":"u","Action":"login","Allowed":true,"RayID":"r"}`, "access_requests"},
		{`{"ActionType":"create","ActorEmail":"a@example.com","ResourceType":"x","When":"t"}`, "audit_logs"},
		{`{"foo":1}`, ""},
	}
	var p jparser
	for _, tt := range tests {
		v, err := p.parse([]byte(tt.record))
		if err != nil {
			t.Fatal(err)
		}
		if got := detect(&p, v); got != tt.want {
			t.Errorf("detect(%s) = %q; want %q", tt.record, got, tt.want)
		}
	}
}

func TestValidNumber(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"0", true}, {"-0", true}, {"279", true}, {"1658281671671000000", true}, {"1.50", true},
		{"-1.5e+10", true}, {"2E-3", true}, {"0.0", true},
		{"", false}, {"-", false}, {"01", false}, {"1.", false}, {".5", false}, {"1e", false},
		{"1e+", false}, {"+1", false}, {"1-2", false}, {"NaN", false}, {"inf", false}, {"-Inf", false},
	}
	for _, tt := range tests {
		if got := validNumber([]byte(tt.in)); got != tt.want {
			t.Errorf("validNumber(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

// TestOr checks Jinja's "a or b" for the fields with two sources.
func TestOr(t *testing.T) {
	tests := []struct {
		record string
		want   map[string]any
	}{
		{`{"userAgent":"gql","ClientRequestUserAgent":"logpush"}`, map[string]any{"user_agent.original": "gql"}},
		{`{"userAgent":"","ClientRequestUserAgent":"logpush"}`, map[string]any{"user_agent.original": "logpush"}},
		{`{"userAgent":null,"ClientRequestUserAgent":""}`, map[string]any{"user_agent.original": ""}},
		{`{"clientAsn":0}`, map[string]any{}},
		{`{"clientAsn":0,"ClientASN":0}`, map[string]any{"source.as.number": json.Number("0")}},
		{`{"clientAsn":0.0,"ClientASN":7}`, map[string]any{"source.as.number": json.Number("7")}},
		{`{"clientRequestHTTPHost":"h","ClientRequestHost":"H"}`, map[string]any{"destination.address": "H"}},
		{`{"clientRequestHTTPHost":"h","ClientRequestHost":[]}`, map[string]any{"destination.address": "h"}},
	}
	for _, tt := range tests {
		got := pick(normalize(t, tt.record), "user_agent.original", "source.as.number", "destination.address")
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Normalize(%s) (-want +got):\n%s", tt.record, diff)
		}
	}
}

func TestAppendDateTime(t *testing.T) {
	for _, sec := range []int64{0, -1, 86399, 86400, 951782400, 1658281671, 4102444800, 253402300799, -62135596800, 253402300800, -62135596801} {
		want := time.Unix(sec, 0).UTC().Format("2006-01-02T15:04:05")
		if got := string(appendDateTime(nil, sec)); got != want {
			t.Errorf("appendDateTime(%d) = %q; want %q", sec, got, want)
		}
	}
	for sec := int64(-1e10); sec < 1e10; sec += 86400*7 + 3601 {
		want := time.Unix(sec, 0).UTC().Format("2006-01-02T15:04:05")
		if got := string(appendDateTime(nil, sec)); got != want {
			t.Fatalf("appendDateTime(%d) = %q; want %q", sec, got, want)
		}
	}
}

// TestNormalizeIntoReuse checks that what an Event handed out stays as it
// was when the Event is reused.
func TestNormalizeIntoReuse(t *testing.T) {
	n := New(Options{})
	var ev Event
	if err := n.NormalizeInto(&ev, "http_requests", []byte(`{"RayID":"first","ClientIP":"10.0.0.1","Cookies":{"a":"b"}}`)); err != nil {
		t.Fatal(err)
	}
	doc := ev.Doc()
	before, _ := json.Marshal(doc)
	ip, _ := ev.String("source.ip")
	for i := range 100 {
		rec := fmt.Sprintf(`{"RayID":"r%d","ClientIP":"192.168.%d.%d","Cookies":{"a":"%d"},"ClientRequestURI":"/%d"}`, i, i, i, i, i)
		if err := n.NormalizeInto(&ev, "auto", []byte(rec)); err != nil {
			t.Fatal(err)
		}
		if got, _ := ev.String("cloudflare.RayID"); got != fmt.Sprintf("r%d", i) {
			t.Fatalf("after reuse %d: RayID = %q", i, got)
		}
	}
	if err := n.NormalizeInto(&ev, "http_requests", []byte(`{"RayID":"x","EdgeResponseStatus":`)); err == nil {
		t.Fatal("want an error")
	}
	if _, ok := ev.String("cloudflare.RayID"); ok || len(ev.Fields()) != 0 {
		t.Errorf("after an error the Event still has fields %v", ev.Fields())
	}
	after, _ := json.Marshal(doc)
	if string(before) != string(after) || ip != "10.0.0.1" {
		t.Errorf("reuse changed what was handed out: Doc %s then %s, source.ip %q", before, after, ip)
	}
}

func TestAllocsNormalizeInto(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	recs := benchRecords(64)
	n := New(Options{})
	var ev Event
	for _, r := range recs {
		if err := n.NormalizeInto(&ev, "http_requests", r); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	allocs := testing.AllocsPerRun(500, func() {
		if err := n.NormalizeInto(&ev, "http_requests", recs[i%len(recs)]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs > 1 {
		t.Errorf("NormalizeInto allocates %.2f times per record; want at most 1", allocs)
	}
}

// TestFingerprintBitsMatchesMap checks the fast key table against the map
// it is built from, on every fingerprint key and on every field name of
// every dataset.
func TestFingerprintBitsMatchesMap(t *testing.T) {
	keys := []string{"", "x", "Q", "RayIDx", "rayname"}
	for k := range fingerprintKeys {
		keys = append(keys, k, k[:len(k)-1], k+"s")
	}
	for _, ds := range datasetsByName {
		keys = append(keys, ds.names...)
	}
	for _, k := range keys {
		if got, want := fingerprintBits.bit(k), fingerprintKeys[k]; got != want {
			t.Errorf("bit(%q) = %#x; want %#x", k, got, want)
		}
	}
}

// TestRecordsFromOtherTools normalizes http_requests records shaped as log
// pipelines and SIEM rule test suites write them (timestamps as
// "YYYY-MM-DD HH:MM:SS", numbers in strings), whole, and the same record
// with fields of the wrong type, which cost those fields only.
func TestRecordsFromOtherTools(t *testing.T) {
	const rec = `{"ClientIP":"175.16.199.0","ClientRequestHost":"xyz.example.com","ClientRequestMethod":"POST",` +
		`"ClientRequestURI":"/xyz/checkout?id=7","ClientRequestPath":"/xyz/checkout","ClientRequestProtocol":"HTTP/1.1",` +
		`"ClientRequestUserAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.103 Safari/537.36",` +
		`"ClientASN":"43766","ClientCountry":"sa","ClientSrcPort":"52764","ClientRequestBytes":"5800",` +
		`"EdgeStartTimestamp":"2022-05-07 18:53:12","EdgeEndTimestamp":"2022-05-07 18:53:13",` +
		`"EdgeResponseBytes":"69045","EdgeResponseStatus":"200","OriginResponseStatus":"0","WorkerSubrequest":false,` +
		`"RayID":"71a9bc6e3d7b4f2a","ZoneID":"155978002"}`
	ev, err := New(Options{}).Normalize("auto", []byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	if fe := ev.FieldErrors(); fe != nil {
		t.Errorf("FieldErrors = %v; want none", fe)
	}
	want := map[string]any{
		"@timestamp":                "2022-05-07T18:53:12Z",
		"event.end":                 "2022-05-07T18:53:13Z",
		"http.response.bytes":       json.Number("69045"),
		"http.response.status_code": json.Number("200"),
		"http.request.bytes":        json.Number("5800"),
		"source.as.number":          json.Number("43766"),
		"source.port":               json.Number("52764"),
		"source.ip":                 "175.16.199.0",
	}
	if diff := cmp.Diff(want, pick(ev, "@timestamp", "event.end", "http.response.bytes", "http.response.status_code", "http.request.bytes", "source.as.number", "source.port", "source.ip")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if ev.Dataset != "http_requests" || ev.Key != "71a9bc6e3d7b4f2a" || !ev.Time.Equal(time.Date(2022, 5, 7, 18, 53, 12, 0, time.UTC)) {
		t.Errorf("Dataset %q, Key %q, Time %v; want http_requests, the RayID, 2022-05-07 18:53:12 UTC", ev.Dataset, ev.Key, ev.Time)
	}

	// Wrong types: an object where a number is expected, a string where a
	// bool is, an object where text is (firewall_events' Source).
	bad := strings.NewReplacer(`"ClientSrcPort":"52764"`, `"ClientSrcPort":{"port":52764}`, `"WorkerSubrequest":false`, `"WorkerSubrequest":"maybe"`).Replace(rec)
	ev, err = New(Options{}).Normalize("http_requests", []byte(bad))
	if err != nil {
		t.Fatalf("record with two bad fields: %v; want it normalized", err)
	}
	var got []string
	for _, fe := range ev.FieldErrors() {
		got = append(got, fe.Error())
	}
	wantErrs := []string{`field "ClientSrcPort": want number, got object`, `field "WorkerSubrequest": want bool, got string`}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("FieldErrors (-want +got):\n%s", diff)
	}
	flat := ev.FlatMap()
	for _, gone := range []string{"source.port", "cloudflare.ClientSrcPort", "cloudflare.WorkerSubrequest"} {
		if v, ok := flat[gone]; ok {
			t.Errorf("%s = %v; want it left out", gone, v)
		}
	}
	bytes, _ := ev.String("http.response.bytes")
	uri, _ := ev.String("url.original")
	if bytes != "69045" || uri != "/xyz/checkout?id=7" || ev.Time.IsZero() {
		t.Errorf("the rest of the record: %v; want it normalized", flat)
	}

	fw := `{"Action":"block","ClientIP":"175.16.199.0","ClientRequestHost":"xyz.example.com","Datetime":"2022-05-07 18:53:12",` +
		`"RayID":"71a9bc6e3d7b4f2a","RuleID":"100001","Source":{"name":"firewallManaged"}}`
	ev, err = New(Options{}).Normalize("firewall_events", []byte(fw))
	if err != nil {
		t.Fatal(err)
	}
	if fe := ev.FieldErrors(); len(fe) != 1 || fe[0].Field != "Source" {
		t.Errorf("firewall_events FieldErrors = %v; want Source", fe)
	}
	if got := pick(ev, "@timestamp", "event.action", "rule.id", "event.module"); !cmp.Equal(got, map[string]any{"@timestamp": "2022-05-07T18:53:12Z", "event.action": "block", "rule.id": "100001"}) {
		t.Errorf("firewall_events fields %v; want the record without event.module", got)
	}
}
