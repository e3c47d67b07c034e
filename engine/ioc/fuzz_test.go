package ioc

import (
	"bytes"
	"testing"
)

// checkResult holds the invariants of any parse: every indicator is valid
// for its type, lines are within the file, and the result indexes and
// matches without panicking.
func checkResult(t *testing.T, data []byte, res *fileResult, err error) {
	t.Helper()
	if err != nil {
		if res != nil {
			t.Fatalf("error %v with a result", err)
		}
		return
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	for _, ind := range res.inds {
		if err := check(ind.Type, ind.Value); err != nil {
			t.Fatalf("indicator %+v: %v", ind, err)
		}
		if ind.Line < 1 || ind.Line > lines {
			t.Fatalf("indicator %+v: line outside 1..%d", ind, lines)
		}
	}
	for _, e := range res.errs {
		if e.Line < 1 || e.Line > lines {
			t.Fatalf("line error %v: line outside 1..%d", e, lines)
		}
	}
	if len(res.errs) > maxLineErrors || res.badLines < len(res.errs) {
		t.Fatalf("%d line errors kept, %d counted", len(res.errs), res.badLines)
	}
	set := NewSet(res.inds, fixtureNow)
	for _, ind := range res.inds {
		set.match("http_requests", fixtureNow, fakeEvent{
			"source.ip": ind.Value, "destination.address": ind.Value, "url.original": ind.Value,
			"http.request.referrer": ind.Value, "user_agent.original": ind.Value, "cloudflare.JA3Hash": ind.Value,
		}, nil)
	}
}

func seed(f *testing.F, names ...string) {
	for _, name := range names {
		f.Add(readFixture(f, name))
	}
}

func FuzzParseText(f *testing.F) {
	seed(f, "plain.txt", "zeek.intel")
	f.Add([]byte("ua:\n#fields\tindicator\n\tx\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := &fileResult{}
		parseText("f", string(data), res)
		checkResult(t, data, res, nil)
	})
}

func FuzzParseCSV(f *testing.F) {
	seed(f, "misp.csv")
	f.Add([]byte("value,type,valid_until,confidence\n\"a\"\"b\",ua,2024-01-01,5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := &fileResult{}
		if err := parseCSV("f", data, res); err != nil {
			res = nil
			checkResult(t, data, res, err)
			return
		}
		checkResult(t, data, res, nil)
	})
}

func FuzzParseSTIX(f *testing.F) {
	seed(f, "bundle.json")
	f.Add([]byte(`[{"type":"indicator","pattern":"[url:value = 'x.example/a'] OR [ipv6-addr:value IN ('::1','::/0')]","revoked":1}]`))
	f.Add([]byte(`{"type":"indicator","pattern":"[domain-name:value = 'a.example']","valid_until":"2000-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := &fileResult{}
		if err := parseSTIX("f", data, res); err != nil {
			checkResult(t, data, nil, err)
			return
		}
		checkResult(t, data, res, nil)
	})
}

func FuzzParsePattern(f *testing.F) {
	for _, p := range []string{
		"[ipv4-addr:value = '10.0.0.1' OR domain-name:value = 'a.example']",
		"[a:x = 'a'] FOLLOWEDBY ([b:y IN ('b', 'c')] REPEATS 2 TIMES) WITHIN 5 SECONDS",
		`[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = 'a\'b']`,
		"[x:values[*] NOT LIKE t'2020-01-01T00:00:00Z']",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		cmps, err := parsePattern(p)
		if err != nil && cmps != nil {
			t.Fatalf("parsePattern(%q): error %v with comparisons", p, err)
		}
		for _, c := range cmps {
			if c.path == "" || c.op == "" {
				t.Fatalf("parsePattern(%q): empty comparison %+v", p, c)
			}
		}
	})
}
