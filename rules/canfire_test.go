package rules

import (
	"testing"
)

// knownECS stands in for normalize.HasField: the fields the test mapping's
// targets need.
func knownECS(f string) bool {
	switch f {
	case "url.original", "url.path", "url.query", "user_agent.original", "http.request.method",
		"http.response.status_code", "source.ip", "destination.address", "http.request.referrer":
		return true
	}
	return len(f) > len("cloudflare.RequestHeaders.") && f[:len("cloudflare.RequestHeaders.")] == "cloudflare.RequestHeaders."
}

func TestCanFire(t *testing.T) {
	m := DefaultMapping()
	tests := []struct {
		name      string
		logsource string
		detection string
		wantField string // "" with wantLine 0 and !unable: can fire
		wantLine  int
		unable    bool
	}{
		// The three cases of issue 15.
		{"windows process_creation", "{category: process_creation, product: windows}", "  sel:\n    Image|endswith: '\\whoami.exe'\n  condition: sel\n", "", 3, true},
		{"proxy rule on an unmapped field", "{category: proxy}", "  sel:\n    TargetFilename|endswith: '.exe'\n  condition: sel\n", "TargetFilename", 7, true},
		{"unmapped field beside a mapped one", "{category: proxy}", "  sel:\n    c-uri|contains: /x\n    TargetFilename: a\n  condition: sel\n", "TargetFilename", 8, true},
		{"unmapped in every branch", "{category: webserver}", "  a:\n    Foo: 1\n  b:\n    Bar: 2\n  condition: a or b\n", "Foo", 7, true},
		{"cs-username has no Cloudflare field", "{category: webserver}", "  sel:\n    cs-username: admin\n  condition: sel\n", "cs-username", 7, true},
		{"count(field) unmapped", "{category: proxy}", "  sel:\n    cs-method: POST\n  timeframe: 1m\n  condition: sel | count(Image) by c-ip > 3\n", "Image", 9, true},
		{"fieldref to an unmapped field", "{category: proxy}", "  sel:\n    c-uri|fieldref: Image\n  condition: sel\n", "Image", 7, true},

		// Rules that can fire.
		{"mapped fields", "{category: proxy}", "  sel:\n    c-uri|contains: /x\n    c-useragent: curl\n  condition: sel\n", "", 0, false},
		{"no logsource", "", "  sel:\n    url.path: /x\n  condition: sel\n", "", 0, false},
		{"product cloudflare", "{product: cloudflare}", "  sel:\n    url.path: /x\n  condition: sel\n", "", 0, false},
		{"service nginx", "{service: nginx}", "  sel:\n    url.path: /x\n  condition: sel\n", "", 0, false},
		{"header field", "{category: proxy}", "  sel:\n    cloudflare.RequestHeaders.x-api: k\n  condition: sel\n", "", 0, false},
		{"derived extension", "{category: proxy}", "  sel:\n    c-uri-extension: php\n  condition: sel\n", "", 0, false},
		{"unmapped in an optional branch", "{category: proxy}", "  a:\n    c-uri: /x\n  b:\n    Image: x\n  condition: a or b\n", "", 0, false},
		{"unmapped in 1 of", "{category: proxy}", "  sel_a:\n    c-uri: /x\n  sel_b:\n    Image: x\n  condition: 1 of sel_*\n", "", 0, false},
		{"unmapped under not", "{category: proxy}", "  sel:\n    c-uri: /x\n  filter:\n    Image: x\n  condition: sel and not filter\n", "", 0, false},
		{"unmapped tested for null", "{category: proxy}", "  sel:\n    c-uri: /x\n    Image: null\n  condition: sel\n", "", 0, false},
		{"unmapped tested for absence", "{category: proxy}", "  sel:\n    c-uri: /x\n    Image|exists: false\n  condition: sel\n", "", 0, false},
		{"keywords", "{category: proxy}", "  keywords:\n    - evil\n  condition: keywords\n", "", 0, false},
		{"one condition of a list can fire", "{category: proxy}", "  a:\n    Image: x\n  b:\n    c-uri: /x\n  condition:\n    - a\n    - b\n", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "title: t\nid: i\n"
			if tc.logsource != "" {
				src += "logsource: " + tc.logsource + "\n"
			} else {
				src += "\n"
			}
			src += "level: high\ndetection:\n" + tc.detection
			r, err := Parse("r.yml", []byte(src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := m.CanFire(&r, knownECS)
			if !tc.unable {
				if got != nil {
					t.Fatalf("CanFire = %v; want nil (the rule can fire)", got)
				}
				return
			}
			if got == nil {
				t.Fatal("CanFire = nil; want the rule unable to fire")
			}
			if got.File != "r.yml" || got.Line != tc.wantLine || got.Field != tc.wantField || got.Reason == "" {
				t.Errorf("CanFire = %+v; want r.yml:%d field %q", got, tc.wantLine, tc.wantField)
			}
		})
	}
}
