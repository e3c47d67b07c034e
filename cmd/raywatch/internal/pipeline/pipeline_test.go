package pipeline

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules/alert"
)

// everyEvent is a Matcher that makes one alert per event, keyed by the
// record, so that the order of the output shows the order of the records.
type everyEvent struct{}

func (everyEvent) Match(ev *normalize.Event, intake string, received time.Time) []alert.Alert {
	return []alert.Alert{{ID: ev.Key, RecordKey: ev.Key, Intake: intake, Rule: alert.RuleRef{ID: "every"}}}
}

// someEvents is a Matcher that alerts on one record in three, keeping the
// event's document and key as the engine's alerts do.
type someEvents struct{}

func (someEvents) Match(ev *normalize.Event, intake string, received time.Time) []alert.Alert {
	if h := ev.Key[len(ev.Key)-1]; h%3 != 0 {
		return nil
	}
	return []alert.Alert{{ID: ev.Key, RecordKey: ev.Key, Intake: intake, Rule: alert.RuleRef{ID: "some"}, Event: ev.Doc()}}
}

func testPipeline(opts Options) *Pipeline {
	opts.Detector = &Detector{Normalizer: normalize.New(normalize.Options{}), Engine: everyEvent{}, Dataset: "auto"}
	return New(opts)
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// scanned is what a scan reported, in order.
type scanned struct {
	events []string
	res    ScanResult
	keys   []string
}

func scan(t *testing.T, p *Pipeline, names ...string) scanned {
	t.Helper()
	var s scanned
	var out bytes.Buffer
	rep := ScanReport{
		Unreadable: func(name string, err error) {
			s.events = append(s.events, "unreadable "+filepath.Base(name)+": "+err.Error())
		},
		Malformed: func(n int, where string, err error) {
			s.events = append(s.events, fmt.Sprintf("malformed %s: %v", filepath.Base(where), err))
		},
	}
	res, err := p.Scan(context.Background(), &Files{Names: names, Intake: "test", Received: time.Now()}, &out, rep)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	s.res = res
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var a alert.Alert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		s.keys = append(s.keys, a.RecordKey)
	}
	return s
}

// TestScanOrderAndMalformed runs files of every kind through the
// pipeline: the output keeps the order of the records across files and
// workers; malformed records (a comment line, one over the size limit, one
// over the record limit, text) and unreadable inputs (a missing file, a
// folder) are reported where they are met, and the files after them are
// still read; Logpush's validation upload is skipped.
func TestScanOrderAndMalformed(t *testing.T) {
	dir := t.TempDir()
	var first bytes.Buffer
	first.Write(traffic.SequenceBatch(0, 300, 0))
	first.WriteString("# exported by a script\n")
	first.WriteString(`{"content":"tests"}` + "\n")
	first.WriteString(`{"RayID":"` + strings.Repeat("x", 2000) + `"}` + "\n")
	first.WriteString("not json at all\n")
	a := writeFile(t, dir, "a.ndjson", first.Bytes())
	b := writeFile(t, dir, "b.ndjson.gz", gz(t, traffic.SequenceBatch(1, 5, 0)))
	sub := filepath.Join(dir, "folder")
	os.Mkdir(sub, 0o700)
	c := writeFile(t, dir, "c.ndjson", traffic.SequenceBatch(2, 3, 0))

	for _, workers := range []int{1, 4} {
		p := testPipeline(Options{Workers: workers, MaxLineBytes: 1500, MaxRecords: 303})
		got := scan(t, p, a, filepath.Join(dir, "missing.ndjson"), b, sub, c)
		wantEvents := []string{
			"malformed a.ndjson: record 301: " + ErrCommentLine.Error(),
			// Record 302, the validation upload, is skipped.
			"malformed a.ndjson: record 303: record too long: over 1500 bytes",
			"malformed a.ndjson: record 304: not JSON", // checked by prefix below
			"unreadable missing.ndjson: stat " + filepath.Join(dir, "missing.ndjson") + ": no such file or directory",
			"unreadable folder: " + sub + " is a directory; give the files in it (for example " + sub + "/*)",
		}
		if len(got.events) != len(wantEvents) {
			t.Fatalf("workers %d: events = %q; want %d of them", workers, got.events, len(wantEvents))
		}
		for i, w := range wantEvents {
			if i == 2 {
				if !strings.HasPrefix(got.events[i], w) {
					t.Errorf("workers %d: event %d = %q; want %q...", workers, i, got.events[i], w)
				}
				continue
			}
			if got.events[i] != w {
				t.Errorf("workers %d: event %d = %q; want %q", workers, i, got.events[i], w)
			}
		}
		var want []string
		for _, batch := range []struct{ b, n int }{{0, 300}, {1, 5}, {2, 3}} {
			for i := range batch.n {
				want = append(want, fmt.Sprintf("%08x%08x", batch.b, i))
			}
		}
		if d := cmp.Diff(want, got.keys); d != "" {
			t.Errorf("workers %d: alerts not in record order (-want +got):\n%s", workers, d)
		}
		wantRes := ScanResult{Files: 5, Unreadable: 2, Records: 311, Alerts: 308, Malformed: 3}
		got.res.Elapsed = 0
		if got.res != wantRes {
			t.Errorf("workers %d: result = %+v; want %+v", workers, got.res, wantRes)
		}
	}
}

// TestRecordLimit checks that the records past MaxRecords are malformed,
// each named.
func TestRecordLimit(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "a.ndjson", traffic.SequenceBatch(0, 5, 0))
	got := scan(t, testPipeline(Options{MaxRecords: 3}), f)
	if got.res.Records != 5 || got.res.Malformed != 2 || len(got.keys) != 3 {
		t.Errorf("result = %+v, %d alerts; want 5 records, 2 malformed, 3 alerts", got.res, len(got.keys))
	}
	if len(got.events) != 2 || !strings.Contains(got.events[0], "record 4: over the limit of 3 records per batch") {
		t.Errorf("events = %q; want records 4 and 5 over the limit", got.events)
	}
}

// TestScanExitCodes checks the documented exit status of scan: 0 all
// read, 1 some malformed or unreadable, 2 nothing read.
func TestScanExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.ndjson", traffic.SequenceBatch(0, 3, 0))
	mixed := writeFile(t, dir, "mixed.ndjson", traffic.SequenceBatch(0, 10, 3))
	foreign := writeFile(t, dir, "foreign.json", []byte(`{"user":"alice","action":"login"}`+"\n"+`{"user":"bob","action":"logout"}`+"\n"))
	binary := make([]byte, 4096)
	for i := range binary {
		binary[i] = byte(i*7 + i/13)
	}
	bin := writeFile(t, dir, "blob.bin", binary)
	missing := filepath.Join(dir, "missing")
	empty := writeFile(t, dir, "empty.ndjson", nil)
	for _, tc := range []struct {
		name  string
		files []string
		want  int
	}{
		{"good", []string{good}, 0},
		{"empty", []string{empty}, 0},
		{"some malformed", []string{mixed}, 1},
		{"a missing file among good ones", []string{good, missing}, 1},
		{"not Cloudflare JSON", []string{foreign}, 2},
		{"binary", []string{bin}, 2},
		{"only missing files", []string{missing, missing}, 2},
	} {
		got := scan(t, testPipeline(Options{}), tc.files...)
		if code := got.res.ExitCode(); code != tc.want {
			t.Errorf("%s: ExitCode() = %d; want %d (result %+v)", tc.name, code, tc.want, got.res)
		}
	}
}

// TestDedupeKeyFirewall checks that the several events of one request in
// firewall_events have keys of their own (it failed when DedupeKey read
// cloudflare.RuleID, cloudflare.Source and cloudflare.MatchIndex, which
// normalize does not set: every match of a request shared the RayID).
func TestDedupeKeyFirewall(t *testing.T) {
	n := normalize.New(normalize.Options{})
	keys := map[string]bool{}
	for _, idx := range []int{0, 1} {
		rec := fmt.Sprintf(`{"Action":"block","ClientIP":"192.0.2.1","ClientRequestHost":"example.com","Datetime":"2026-11-24T10:00:00Z","RayID":"8e1","RuleID":"r1","Source":"waf","MatchIndex":%d}`, idx)
		ev, err := n.Normalize("firewall_events", []byte(rec))
		if err != nil {
			t.Fatal(err)
		}
		keys[DedupeKey(ev)] = true
	}
	if len(keys) != 2 {
		t.Errorf("DedupeKey gave %d distinct keys for two matches of one request; want 2", len(keys))
	}
}

// TestSkipRecords checks that a record OnEvent drops with ErrSkip is
// neither matched nor malformed, only counted as skipped.
func TestSkipRecords(t *testing.T) {
	p := testPipeline(Options{Workers: 2, OnEvent: func(c *Chunk, ev *normalize.Event) error {
		if strings.HasSuffix(ev.Key, "1") {
			return fmt.Errorf("out of range: %w", ErrSkip)
		}
		return nil
	}})
	var records, skipped, alerts, bad int
	src := &Files{Names: []string{writeFile(t, t.TempDir(), "b.ndjson", traffic.SequenceBatch(0, 40, 0))}, Intake: "test", Received: time.Now()}
	err := p.Run(context.Background(), src, func(_ context.Context, c *Chunk) error {
		records += c.Records
		skipped += c.Skipped
		alerts += len(c.Alerts)
		bad += len(c.Bad)
		for _, a := range c.Alerts {
			if strings.HasSuffix(a.RecordKey, "1") {
				t.Errorf("alert of a skipped record %s", a.RecordKey)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if records != 40 || skipped == 0 || bad != 0 || alerts+skipped != 40 {
		t.Errorf("records %d, skipped %d, alerts %d, malformed %d; want 40 records, some skipped, the others alerting, none malformed", records, skipped, alerts, bad)
	}
}

// TestAlertsKeepTheirEvents scans records of which one in three alerts,
// with workers that hand the memory of the others back to the next record
// (normalize's Event.Reuse): each alert, written out once its whole chunk
// is detected, must still hold its own record's document.
func TestAlertsKeepTheirEvents(t *testing.T) {
	dir := t.TempDir()
	body := traffic.SequenceBatch(3, 1000, 0)
	name := writeFile(t, dir, "a.ndjson", body)
	norm := normalize.New(normalize.Options{})
	want := map[string]string{}
	for line := range bytes.Lines(body) {
		ev, err := norm.Normalize("auto", bytes.TrimSpace(line))
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := json.Marshal(ev.Doc())
		want[ev.Key] = string(doc)
	}
	for _, workers := range []int{1, 2} {
		p := New(Options{Workers: workers, Detector: &Detector{Normalizer: normalize.New(normalize.Options{}), Engine: someEvents{}, Dataset: "auto"}})
		var out bytes.Buffer
		if _, err := p.Scan(context.Background(), &Files{Names: []string{name}, Intake: "test", Received: time.Now()}, &out, ScanReport{}); err != nil {
			t.Fatal(err)
		}
		n := 0
		for line := range bytes.Lines(out.Bytes()) {
			var a struct {
				RecordKey string          `json:"record_key"`
				Event     json.RawMessage `json:"event"`
			}
			if err := json.Unmarshal(line, &a); err != nil {
				t.Fatalf("output line %q: %v", line, err)
			}
			var got bytes.Buffer
			json.Compact(&got, a.Event)
			if got.String() != want[a.RecordKey] {
				t.Errorf("workers %d: alert of record %s holds\n%s\nwant\n%s", workers, a.RecordKey, got.String(), want[a.RecordKey])
			}
			n++
		}
		if n < 300 {
			t.Errorf("workers %d: %d alerts; want a third of 1000", workers, n)
		}
	}
}
