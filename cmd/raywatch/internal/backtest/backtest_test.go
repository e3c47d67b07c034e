package backtest_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/backtest"
	"github.com/raywatch/raywatch/rules"
)

// shipped is the folder of the cases shipped for the built-in rules.
const shipped = "../../../../testdata/rules-cases"

func builtin(t *testing.T) []rules.Rule {
	t.Helper()
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func table(t *testing.T, rep *backtest.Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestShippedCases(t *testing.T) {
	rs := builtin(t)
	rep, err := backtest.Run(context.Background(), shipped, backtest.Options{Rules: rs})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(backtest.Fail) != 0 || rep.Count(backtest.Skip) != 0 {
		t.Errorf("shipped cases: %d failed, %d skipped; want all to pass:\n%s", rep.Count(backtest.Fail), rep.Count(backtest.Skip), table(t, rep))
	}
	if len(rep.Uncovered) != 0 {
		t.Errorf("built-in rules without cases: %v", rep.Uncovered)
	}
	// Every built-in rule has cases of both kinds.
	kinds := map[string]map[string]int{}
	for _, res := range rep.Results {
		if kinds[res.Rule] == nil {
			kinds[res.Rule] = map[string]int{}
		}
		kinds[res.Rule][res.Kind]++
	}
	for _, r := range rs {
		if kinds[r.ID][backtest.KindMatch] == 0 || kinds[r.ID][backtest.KindNoMatch] == 0 {
			t.Errorf("rule %s (%s) has %d match and %d nomatch cases; want both", r.ID, r.Title, kinds[r.ID][backtest.KindMatch], kinds[r.ID][backtest.KindNoMatch])
		}
	}
}

const lemonID = "80b58af8-9f04-48b6-a252-0e94be0034c8"

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rec(ua, ip string, sec int) string {
	return fmt.Sprintf(`{"ClientIP":%q,"ClientRequestHost":"shop.example.com","ClientRequestMethod":"GET","ClientRequestURI":"/","ClientRequestPath":"/","ClientRequestUserAgent":%q,"EdgeStartTimestamp":%d,"EdgeResponseStatus":404,"RayID":"%016x"}`,
		ip, ua, time.Date(2026, 1, 5, 10, 0, sec, 0, time.UTC).UnixNano(), sec+1)
}

// junit is what the test reads back from the JUnit file.
type junit struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Cases    []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestFailingCase(t *testing.T) {
	dir := t.TempDir()
	// A match case whose record does not match, a nomatch case whose
	// record does, a passing case, and a folder for a rule that is not
	// loaded.
	writeFile(t, filepath.Join(dir, lemonID, "match", "ok.ndjson"), rec("Lemon-Duck-A-B", "192.0.2.1", 1)+"\n")
	writeFile(t, filepath.Join(dir, lemonID, "match", "wrong.ndjson"), rec("Lemon-Ducky", "192.0.2.1", 2)+"\n")
	writeFile(t, filepath.Join(dir, lemonID, "nomatch", "oops.ndjson"), rec("Mozilla/5.0", "192.0.2.1", 3)+"\n"+rec("Lemon-Duck--", "192.0.2.1", 4)+"\n")
	writeFile(t, filepath.Join(dir, "no-such-rule", "match", "a.ndjson"), rec("x", "192.0.2.1", 5)+"\n")
	writeFile(t, filepath.Join(dir, lemonID, "nomatch", "broken.ndjson"), "{\"ClientIP\":\n")
	rep, err := backtest.Run(context.Background(), dir, backtest.Options{Rules: builtin(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, res := range rep.Results {
		got[res.File] = res.Outcome + ": " + res.Reason
	}
	want := map[string]string{
		lemonID + "/match/ok.ndjson":       "pass: ",
		lemonID + "/match/wrong.ndjson":    "fail: no alert: none of its 1 records matched the rule",
		lemonID + "/nomatch/oops.ndjson":   "fail: raised 1 alert(s), the first on record 2",
		"no-such-rule/match/a.ndjson":      `fail: no loaded rule has the id "no-such-rule"`,
		lemonID + "/nomatch/broken.ndjson": "fail: record 1: ",
	}
	for file, w := range want {
		if g := got[file]; !strings.HasPrefix(g, w) {
			t.Errorf("%s: %q; want %q", file, g, w)
		}
	}
	if rep.OK() || rep.Count(backtest.Fail) != 4 {
		t.Errorf("OK() = %v with %d failures; want false with 4", rep.OK(), rep.Count(backtest.Fail))
	}

	path := filepath.Join(t.TempDir(), "junit.xml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJUnit(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j junit
	if err := xml.Unmarshal(data, &j); err != nil {
		t.Fatalf("JUnit file does not parse: %v\n%s", err, data)
	}
	if j.Tests != 5 || j.Failures != 4 || len(j.Suites) != 2 {
		t.Fatalf("JUnit: %d tests, %d failures, %d suites; want 5, 4, 2:\n%s", j.Tests, j.Failures, len(j.Suites), data)
	}
	lemon := j.Suites[0]
	if lemon.Name != "Lemon Duck User-Agent ("+lemonID+")" || lemon.Tests != 4 || lemon.Failures != 3 {
		t.Errorf("suite %q: %d tests, %d failures; want Lemon Duck's, 4, 3", lemon.Name, lemon.Tests, lemon.Failures)
	}
	for _, c := range lemon.Cases {
		if c.Classname != lemonID {
			t.Errorf("testcase %s classname %q; want the rule id", c.Name, c.Classname)
		}
		if c.Name == "match/wrong.ndjson" && (c.Failure == nil || !strings.Contains(c.Failure.Message, "no alert")) {
			t.Errorf("testcase %s failure = %+v; want one saying no alert", c.Name, c.Failure)
		}
		if c.Name == "match/ok.ndjson" && c.Failure != nil {
			t.Errorf("passing testcase has a failure: %+v", c.Failure)
		}
	}
	out := table(t, rep)
	if !strings.Contains(out, "wrong.ndjson") || !strings.Contains(out, "2 rules, 5 cases: 1 passed, 4 failed, 0 skipped") {
		t.Errorf("table:\n%s", out)
	}
}

func TestIntelligenceFeedNeedsIndicators(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, rules.IntelligenceFeedID, "match", "a.ndjson"), rec("x", "192.0.2.66", 1)+"\n")
	writeFile(t, filepath.Join(dir, rules.IntelligenceFeedID, "nomatch", "b.ndjson"), rec("x", "192.0.2.67", 2)+"\n")
	rep, err := backtest.Run(context.Background(), dir, backtest.Options{Rules: builtin(t)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(backtest.Skip) != 2 || !strings.Contains(rep.Results[0].Reason, "--ioc-dir") {
		t.Errorf("without indicators: %s; want both cases skipped, saying --ioc-dir", table(t, rep))
	}
	iocDir := t.TempDir()
	writeFile(t, filepath.Join(iocDir, "feed.txt"), "192.0.2.66\n")
	rep, err = backtest.Run(context.Background(), dir, backtest.Options{Rules: builtin(t), IOCDir: iocDir})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(backtest.Pass) != 2 {
		t.Errorf("with --ioc-dir: %s; want both cases to pass", table(t, rep))
	}
	// A broken indicator file fails the cases, naming file and line.
	writeFile(t, filepath.Join(dir, rules.IntelligenceFeedID, "iocs", "bad.txt"), "192.0.2.66\nnot an indicator\n")
	rep, err = backtest.Run(context.Background(), dir, backtest.Options{Rules: builtin(t), IOCDir: iocDir})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(backtest.Fail) != 2 || !strings.Contains(rep.Results[0].Reason, "bad.txt:2") {
		t.Errorf("with a broken iocs/ file: %s; want both cases failed naming bad.txt:2", table(t, rep))
	}
}

func TestAggregationCasesAreIsolated(t *testing.T) {
	r, err := rules.Parse("scan.yml", []byte(`title: Many 404s
id: 0c3f1d9e-6b1e-4a55-9a37-2f4b8e1c7d20
status: experimental
logsource:
  category: webserver
  product: cloudflare
detection:
  selection:
    http.response.status_code: 404
  timeframe: 10m
  condition: selection | count() by source.ip > 2
level: low
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ip := "198.51.100.9"
	writeFile(t, filepath.Join(dir, r.ID, "match", "three.ndjson"), rec("a", ip, 1)+"\n"+rec("a", ip, 2)+"\n"+rec("a", ip, 3)+"\n")
	// Two more from the same address: a case of their own, which would
	// fire if the window carried the match case's three.
	writeFile(t, filepath.Join(dir, r.ID, "nomatch", "two.ndjson"), rec("a", ip, 4)+"\n"+rec("a", ip, 5)+"\n")
	rep, err := backtest.Run(context.Background(), dir, backtest.Options{Rules: append(builtin(t), r)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Count(backtest.Pass) != 2 {
		t.Errorf("aggregation cases:\n%s", table(t, rep))
	}
}
