package ioc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fixture is the testdata/ioc folder at the module root.
var fixture = filepath.Join("..", "..", "testdata", "ioc")

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(fixture, name))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// brief renders indicators as "line type value" for comparison.
func brief(inds []Indicator) []string {
	var out []string
	for _, ind := range inds {
		out = append(out, fmt.Sprintf("%d %s %s", ind.Line, ind.Type, ind.Value))
	}
	return out
}

func briefErrs(errs []LineError) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestParseText(t *testing.T) {
	res, err := parseFile("plain.txt", readFixture(t, "plain.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if res.format != FormatText {
		t.Errorf("format = %q; want text", res.format)
	}
	want := []string{
		"2 ipv4 198.51.100.7",
		"3 ipv6 2001:db8:bad::7",
		"4 cidr 203.0.113.0/24",
		"5 cidr 2001:db8:c0::/48",
		"6 domain evil.example",
		"7 domain *.wild.example",
		"8 domain Phish.Example.",
		"9 url hxxp://drop[.]example/gate.php",
		"10 url http://Shop.Example:8080/kit/login.php?id=1#frag",
		"11 url shop.example/landing",
		"12 ua Mozilla/5.0 (compatible; EvilBot/1.0; +http://evil.example)",
		"13 ja3 E7D705A3286E19EA42F587B344EE6865",
		"14 domain typed.example",
		"15 ipv4 192.0.2.55",
	}
	if diff := cmp.Diff(want, brief(res.inds)); diff != "" {
		t.Errorf("indicators (-want +got):\n%s", diff)
	}
	if got := res.inds[2].Meta; got == nil || got.Name != "scanner range" {
		t.Errorf("inline comment: Meta = %+v; want Name %q", got, "scanner range")
	}
	wantErrs := []string{
		`plain.txt:16: "not an indicator" is not an IP address, CIDR range, domain or URL (prefix it with ua: or ja3: for those)`,
		`plain.txt:17: "300.1.2.3" is not an IP address, CIDR range, domain or URL (prefix it with ua: or ja3: for those)`,
		`plain.txt:18: "xyz" is not a JA3 hash (32 hex digits)`,
	}
	if diff := cmp.Diff(wantErrs, briefErrs(res.errs)); diff != "" {
		t.Errorf("line errors (-want +got):\n%s", diff)
	}
	if res.badLines != 3 {
		t.Errorf("badLines = %d; want 3", res.badLines)
	}
}

func TestParseTextInference(t *testing.T) {
	tests := []struct {
		line string
		want Type // "" for an error
	}{
		{"10.0.0.1", TypeIPv4},
		{"::ffff:10.0.0.1", TypeIPv4},
		{"fe80::1", TypeIPv6},
		{"10.0.0.0/8", TypeCIDR},
		{"10.1.2.3/8", TypeCIDR},
		{"::/0", TypeCIDR},
		{"a.b", TypeDomain},
		{"xn--bcher-kva.example", TypeDomain},
		{"under_score.example", TypeDomain},
		{"localhost", ""},
		{"a..b", ""},
		{"-", ""},
		{"http://x.example", TypeURL},
		{"x.example/p", TypeURL},
		{"x.example?q", TypeURL},
		{"10.0.0.1/admin", TypeURL},
		{"ftp://", ""},
		{"ua:", ""},
		{"UA: curl/8.0", TypeUA},
		{"user-agent:curl/8.0", TypeUA},
		{"ja3:00000000000000000000000000000000", TypeJA3},
		{"cidr:10.0.0.1", TypeIPv4},
		{"ip:evil.example", ""},
		{"domain:10.0.0.1", ""},
		{"300.1.2.3/x", ""},
		{"url:evil.example", TypeURL},
		{"e7d705a3286e19ea42f587b344ee6865", ""},
		{"bücher.example", ""},
	}
	for _, tt := range tests {
		res := &fileResult{}
		parseText("f", tt.line, res)
		var got Type
		if len(res.inds) == 1 {
			got = res.inds[0].Type
		}
		if got != tt.want || len(res.inds)+res.badLines != 1 {
			t.Errorf("parseText(%q) = %v, %v; want type %q", tt.line, brief(res.inds), briefErrs(res.errs), tt.want)
		}
	}
}

func TestParseZeek(t *testing.T) {
	res, err := parseFile("zeek.intel", readFixture(t, "zeek.intel"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2 ipv4 192.0.2.77", "3 domain zeek-evil.example"}
	if diff := cmp.Diff(want, brief(res.inds)); diff != "" {
		t.Errorf("indicators (-want +got):\n%s", diff)
	}
	if m := res.inds[0].Meta; m == nil || m.Name != "Sending phishing email" || m.Category != "source1" {
		t.Errorf("Meta = %+v; want desc and source", m)
	}
}

func TestParseMISPCSV(t *testing.T) {
	res, err := parseFile("misp.csv", readFixture(t, "misp.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if res.format != FormatCSV {
		t.Errorf("format = %q; want csv", res.format)
	}
	want := []string{
		"2 ipv4 198.51.100.20",
		"3 ipv4 198.51.100.21",
		"4 domain misp-evil.example",
		"5 domain cdn.misp-host.example",
		"6 url https://misp-evil.example/wp-admin/x.php",
		"7 ua Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1, SV1)",
		"8 ja3 6734f37431670b3ab4292b8f60f29984",
		"12 cidr 2001:db8:dead::/64",
	}
	if diff := cmp.Diff(want, brief(res.inds)); diff != "" {
		t.Errorf("indicators (-want +got):\n%s", diff)
	}
	wantMeta := &Meta{ID: "5f1c2a3b-0001-4c1a-9d1a-0a0b0c0d0e01", Name: "Emotet C2", Event: "1042", Category: "Network activity"}
	if diff := cmp.Diff(wantMeta, res.inds[0].Meta); diff != "" {
		t.Errorf("Meta (-want +got):\n%s", diff)
	}
	wantErrs := []string{`misp.csv:11: "not-an-ip" is not an IP address, CIDR range, domain or URL (prefix it with ua: or ja3: for those)`}
	if diff := cmp.Diff(wantErrs, briefErrs(res.errs)); diff != "" {
		t.Errorf("line errors (-want +got):\n%s", diff)
	}
	if res.skipped != 2 { // the md5 and the to_ids=0 row
		t.Errorf("skipped = %d; want 2", res.skipped)
	}
}

func TestParseCSV(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
		wantErrs   []string
		wantFile   string // file error
	}{
		{
			name: "value and type",
			data: "Indicator,Type,Confidence,Valid_Until\n10.0.0.1,ip,80,2099-01-01\ncurl/8,ua,,\nevil.example,,,\n\"a,b\",domain,,\n10.0.0.2,ip,high,\n",
			want: []string{"2 ipv4 10.0.0.1", "3 ua curl/8", "4 domain evil.example"},
			wantErrs: []string{
				`f.csv:5: "a,b" is not a domain name`,
				`f.csv:6: confidence "high" is not an integer`,
			},
		},
		{
			name: "value only, quoted multi-line field",
			data: "value\n\"ua\nx\"\n10.0.0.3\n",
			want: []string{"4 ipv4 10.0.0.3"},
			wantErrs: []string{
				"f.csv:2: \"ua\\nx\" is not an IP address, CIDR range, domain or URL (prefix it with ua: or ja3: for those)",
			},
		},
		{
			name:     "no value column",
			data:     "ip,comment\n10.0.0.1,x\n",
			wantFile: "CSV header names no value column (value, indicator, ioc or observable)",
		},
		{name: "empty", data: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := parseFile("f.csv", []byte(tt.data))
			if tt.wantFile != "" {
				if err == nil || err.Error() != tt.wantFile {
					t.Fatalf("parseFile error = %v; want %q", err, tt.wantFile)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, brief(res.inds)); diff != "" {
				t.Errorf("indicators (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantErrs, briefErrs(res.errs)); diff != "" {
				t.Errorf("line errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSTIX(t *testing.T) {
	res, err := parseFile("bundle.json", readFixture(t, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"5 ipv4 198.51.100.66",
		"19 domain av.ddns.example",
		"19 ipv4 60.2.148.167",
		"31 cidr 2001:db8:5::/64",
		"31 url https://stix-evil.example/Payload.exe",
		"41 ua Mozilla/5.0 (Windows NT 6.1; WOW64) Trevor's Agent",
		"63 domain old-version.example",
		"73 domain new-version.example",
		"83 ipv4 192.0.2.200",
		"94 domain in-one.example",
		"94 domain in-two.example",
	}
	if diff := cmp.Diff(want, brief(res.inds)); diff != "" {
		t.Errorf("indicators (-want +got):\n%s", diff)
	}
	wantMeta := &Meta{
		ID:              "indicator--33fe3b22-0201-47cf-85d0-97c02164528d",
		Name:            "Cobalt Strike C2",
		Confidence:      85,
		IndicatorTypes:  []string{"malicious-activity"},
		KillChainPhases: []string{"command-and-control"},
		ValidFrom:       time.Date(2024, 2, 1, 10, 0, 0, 0, time.UTC),
		Modified:        time.Date(2024, 2, 1, 10, 0, 0, 0, time.UTC),
	}
	if diff := cmp.Diff(wantMeta, res.inds[0].Meta); diff != "" {
		t.Errorf("Meta (-want +got):\n%s", diff)
	}
	wantErrs := []string{
		`bundle.json:105: indicator indicator--9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b: pattern "[ipv4-addr:value = '192.0.2.201' AND network-traffic:dst_port = 443]": AND-joined comparisons are not supported (only OR)`,
		`bundle.json:135: indicator indicator--2b3c4d5e-6f7a-4b8c-9d9e-0f1a2b3c4d5e: pattern "[ipv4-addr:value = '192.0.2.202'": unexpected end of pattern`,
	}
	if diff := cmp.Diff(wantErrs, briefErrs(res.errs)); diff != "" {
		t.Errorf("line errors (-want +got):\n%s", diff)
	}
	if res.skipped != 2 { // the file hash and the sigma pattern
		t.Errorf("skipped = %d; want 2", res.skipped)
	}
	var revoked int
	for _, v := range res.versions {
		if v.revoked {
			revoked++
		}
	}
	if revoked != 1 {
		t.Errorf("revoked versions = %d; want 1", revoked)
	}
}

func TestParseSTIXShapes(t *testing.T) {
	ind := `{"type":"indicator","id":"indicator--1","pattern":"[url:value = 'http://a.example/x']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}`
	tests := []struct {
		name, data string
		want       []string
		wantErr    string
	}{
		{"single object", ind, []string{"1 url http://a.example/x"}, ""},
		{"array", "[\n" + ind + ",\n" + ind + "]", []string{"2 url http://a.example/x", "3 url http://a.example/x"}, ""},
		{"taxii envelope", `{"more":false,"objects":[` + ind + `]}`, []string{"1 url http://a.example/x"}, ""},
		{"null objects", `{"type":"bundle","objects":null}`, nil, ""},
		{"broken", "{\"type\":\"bundle\",\n\"objects\":[" + ind, nil, "JSON line 2: unexpected EOF"},
		{"syntax", "{\"type\":\"bundle\",\n\n\"objects\":[}", nil, "JSON line 3: invalid character '}' looking for beginning of value"},
		{"trailing", ind + " {}", nil, "JSON line 1: invalid character '{' after top-level value"},
		{"not an object", `"x"`, nil, "JSON: want an object or an array, got x"},
		{"objects not array", `{"objects":{}}`, nil, `JSON line 1: "objects" is not an array`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := parseFile("b.json", []byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("parseFile error = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, brief(res.inds)); diff != "" {
				t.Errorf("indicators (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParsePattern(t *testing.T) {
	tests := []struct {
		pattern string
		want    string // comparisons as "path op values and", or "error: ..."
	}{
		{`[ipv4-addr:value = '10.0.0.1']`, "ipv4-addr:value = [10.0.0.1] false"},
		{`[ipv4-addr:value = '10.0.0.1' OR ipv6-addr:value = '::1']`, "ipv4-addr:value = [10.0.0.1] false; ipv6-addr:value = [::1] false"},
		{`[a:x = 'a'] OR ([b:y = 'b'] OR [c:z = 'c'])`, "a:x = [a] false; b:y = [b] false; c:z = [c] false"},
		{`[a:x = 'a'] AND [b:y = 'b']`, "a:x = [a] true; b:y = [b] true"},
		{`[a:x = 'a'] FOLLOWEDBY [b:y = 'b'] WITHIN 300 SECONDS`, "a:x = [a] true; b:y = [b] true"},
		{`[a:x = 'a'] REPEATS 5 TIMES`, "a:x = [a] true"},
		{`[a:x = 'a'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'`, "a:x = [a] true"},
		{`[domain-name:value IN ('a.example', 'b.example')]`, "domain-name:value IN [a.example b.example] false"},
		{`[domain-name:value NOT = 'a.example']`, "domain-name:value NOT = [a.example] false"},
		{`[domain-name:value LIKE '%.example']`, "domain-name:value LIKE [%.example] false"},
		{`[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = 'a\'b\\c']`,
			`network-traffic:extensions.http-request-ext.request_header.user-agent = [a'b\c] false`},
		{`[file:hashes.'SHA-256' = 'ab']`, "file:hashes.sha-256 = [ab] false"},
		{`[network-traffic:dst_port = 443]`, "network-traffic:dst_port = [] false"},
		{`[x:values[*] = 'v']`, "x:values[*] = [v] false"},
		{`[ipv4-addr:value = '10.0.0.1'`, "error: unexpected end of pattern"},
		{`[ipv4-addr:value = '10.0.0.1]`, "error: unterminated string"},
		{`ipv4-addr:value = '10.0.0.1'`, `error: unexpected "ipv4-addr:value"`},
		{`[ipv4-addr:value ~ '10.0.0.1']`, "error: unexpected character '~'"},
		{`[a:x = 'a'] ]`, `error: unexpected "]"`},
		{`[a:x QUUX 'a']`, `error: unknown operator "QUUX"`},
		{strings.Repeat("(", 60) + "[a:x = 'a']" + strings.Repeat(")", 60), "error: nested too deep"},
	}
	for _, tt := range tests {
		cmps, err := parsePattern(tt.pattern)
		var got string
		if err != nil {
			got = "error: " + err.Error()
		} else {
			var parts []string
			for _, c := range cmps {
				parts = append(parts, fmt.Sprintf("%s %s %v %v", c.path, c.op, c.values, c.and))
			}
			got = strings.Join(parts, "; ")
		}
		if got != tt.want {
			t.Errorf("parsePattern(%q) = %s; want %s", tt.pattern, got, tt.want)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"a.json", "", FormatSTIX},
		{"a.stix", "10.0.0.1", FormatSTIX},
		{"a.csv", "10.0.0.1", FormatCSV},
		{"a.txt", " \n{\"type\":\"bundle\"}", FormatSTIX},
		{"feed", "uuid,event_id,category,type,value\n", FormatCSV},
		{"feed", "ua:Mozilla/5.0 (KHTML, like Gecko)\n", FormatText},
		{"feed", "10.0.0.1\n", FormatText},
	}
	for _, tt := range tests {
		if got := detectFormat(tt.name, []byte(tt.data)); got != tt.want {
			t.Errorf("detectFormat(%q, %q) = %q; want %q", tt.name, tt.data, got, tt.want)
		}
	}
}
