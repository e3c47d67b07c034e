package normalize

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sekoiaRoot holds SEKOIA's Cloudflare test cases, one folder per format
// (shared/testdata/README.md).
var sekoiaRoot = filepath.Join("..", "..", "shared", "testdata", "sekoia")

// sekoiaFormats maps SEKOIA's format folders to the dataset id each is
// normalized as. Formats whose decoder is not written yet are skipped.
var sekoiaFormats = []struct{ dir, dataset string }{
	{"http_requests", "http_requests"},
	{"firewall_events", "firewall_events"},
	{"dns_logs", "dns_logs"},
	{"gateway_dns", "gateway_dns"},
	{"gateway_http", "gateway_http"},
	{"gateway_network", "gateway_network"},
	{"access_requests", "access_requests"},
	{"audit_logs", "audit_logs"},
}

// raywatchAdditions are the fields raywatch may add to a SEKOIA document;
// they are compared only when the expected document has them.
var raywatchAdditions = []string{"@timestamp", "url.original", "url.query", "url.scheme", "event.kind", "ecs.version"}

func TestSEKOIAConformance(t *testing.T) {
	if _, err := os.Stat(sekoiaRoot); err != nil {
		t.Skipf("SEKOIA fixtures not available at %s (the shared test data is not checked out): %v", sekoiaRoot, err)
	}
	n := New(Options{})
	for _, f := range sekoiaFormats {
		files, err := filepath.Glob(filepath.Join(sekoiaRoot, f.dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			t.Run(f.dir+"/"+filepath.Base(file), func(t *testing.T) {
				message, want := readSEKOIACase(t, file)
				ev, err := n.Normalize(f.dataset, []byte(message))
				if errors.Is(err, ErrUnsupportedDataset) {
					t.Skipf("decoder for %s not written yet", f.dataset)
				}
				if err != nil {
					t.Fatalf("Normalize(%q, %s) error: %v", f.dataset, filepath.Base(file), err)
				}
				for path, v := range fixes[f.dir+"/"+filepath.Base(file)] {
					setPath(want, path, v)
				}
				if diff := diffSEKOIA(t, want, ev.Doc()); diff != "" {
					t.Errorf("Normalize(%q, %s) mismatch (-want +got):\n%s", f.dataset, filepath.Base(file), diff)
				}
			})
		}
	}
}

// fixes are the fields where raywatch corrects a SEKOIA parser bug
// (README.md, "Fixes"), by fixture: the conformance test expects these
// values on top of SEKOIA's expected document.
var fixes = map[string]map[string]any{
	"firewall_events/block.json": {
		// The parser reads jjson_event.message.ClientASN.
		"source.as.number": json.Number("4562"),
		// The parser reads RuleId; Logpush sends RuleID.
		"rule.id": "100016",
		// The parser reads clientASNDescription, matchIndex and metadata;
		// Logpush sends ClientASNDescription, MatchIndex and Metadata.
		"cloudflare.clientASNDescription": "PERFORMIVE",
		"cloudflare.matchIndex":           json.Number("0"),
		"cloudflare.metadata": map[string]any{
			"group":        "cloudflare_specials",
			"rule_message": "Version Control - Information Disclosure",
		},
	},
	// The parser reads json_event.UserAgent instead of
	// json_event.message.UserAgent; R9 parsing follows.
	"gateway_http/test_blocked_file.json": {
		"user_agent.original":    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Safari/537.36 Edg/112.0.1722.64",
		"user_agent.name":        "Edge",
		"user_agent.version":     "112.0.1722",
		"user_agent.os.name":     "Windows",
		"user_agent.os.version":  "10",
		"user_agent.device.name": "Other",
	},
	"gateway_http/test_http.json": {
		"user_agent.original":    "curl/7.81.0",
		"user_agent.name":        "curl",
		"user_agent.version":     "7.81.0",
		"user_agent.os.name":     "Other",
		"user_agent.device.name": "Other",
	},
}

// setPath sets the dotted path in m, creating objects on the way.
func setPath(m map[string]any, path string, v any) {
	k, rest, nested := strings.Cut(path, ".")
	if !nested {
		m[k] = v
		return
	}
	child, ok := m[k].(map[string]any)
	if !ok {
		child = map[string]any{}
		m[k] = child
	}
	setPath(child, rest, v)
}

// readSEKOIACase returns a test case's input message and expected document.
func readSEKOIACase(tb testing.TB, file string) (string, map[string]any) {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var c struct {
		Input struct {
			Message string `json:"message"`
		} `json:"input"`
		Expected json.RawMessage `json:"expected"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		tb.Fatalf("%s: %v", file, err)
	}
	return c.Input.Message, decodeUseNumber(tb, c.Expected)
}

func decodeUseNumber(tb testing.TB, data []byte) map[string]any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		tb.Fatalf("decode %.80s: %v", data, err)
	}
	return m
}

// diffSEKOIA compares a document with SEKOIA's expected one under SEKOIA's
// test rules (mapping spec §1): message, sekoiaio.* and event.id are
// ignored, lists compare as sorted, and everything else must be equal, except
// that raywatch's additions are ignored when want lacks them. doc goes
// through encoding/json first, so numbers compare on their text.
func diffSEKOIA(tb testing.TB, want, doc map[string]any) string {
	tb.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		tb.Fatalf("marshal doc: %v", err)
	}
	got := decodeUseNumber(tb, data)
	want = decodeUseNumber(tb, mustMarshal(tb, want)) // a copy
	for _, m := range []map[string]any{want, got} {
		delete(m, "message")
		delete(m, "sekoiaio")
		deletePath(m, "event.id")
	}
	for _, path := range raywatchAdditions {
		if _, ok := lookupPath(want, path); !ok {
			deletePath(got, path)
		}
	}
	return cmp.Diff(sortLists(want), sortLists(got))
}

func mustMarshal(tb testing.TB, v any) []byte {
	tb.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func lookupPath(m map[string]any, path string) (any, bool) {
	parent, leaf := strings.Split(path, "."), ""
	parent, leaf = parent[:len(parent)-1], parent[len(parent)-1]
	for _, k := range parent {
		child, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = child
	}
	v, ok := m[leaf]
	return v, ok
}

// deletePath deletes the dotted path from m, and the objects on the path
// that this leaves empty.
func deletePath(m map[string]any, path string) {
	k, rest, nested := strings.Cut(path, ".")
	if !nested {
		delete(m, k)
		return
	}
	child, ok := m[k].(map[string]any)
	if !ok {
		return
	}
	deletePath(child, rest)
	if len(child) == 0 {
		delete(m, k)
	}
}

// sortLists sorts every list in v, at any depth, by its elements' JSON text.
func sortLists(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = sortLists(e)
		}
	case []any:
		keys := make([]string, len(x))
		for i, e := range x {
			x[i] = sortLists(e)
			b, _ := json.Marshal(x[i])
			keys[i] = string(b)
		}
		sort.Sort(byKey{keys, x})
	}
	return v
}

type byKey struct {
	keys []string
	vals []any
}

func (s byKey) Len() int           { return len(s.keys) }
func (s byKey) Less(i, j int) bool { return s.keys[i] < s.keys[j] }
func (s byKey) Swap(i, j int) {
	s.keys[i], s.keys[j] = s.keys[j], s.keys[i]
	s.vals[i], s.vals[j] = s.vals[j], s.vals[i]
}

// TestDiffSEKOIA checks the comparison helper itself.
func TestDiffSEKOIA(t *testing.T) {
	want := map[string]any{
		"message": "ignored",
		"event":   map[string]any{"id": "x", "type": []any{"b", "a"}},
		"n":       json.Number("279"),
	}
	tests := []struct {
		name  string
		doc   map[string]any
		equal bool
	}{
		{"equal", map[string]any{"event": map[string]any{"type": []any{"a", "b"}}, "n": json.Number("279")}, true},
		{"additions ignored", map[string]any{"event": map[string]any{"type": []any{"a", "b"}}, "n": json.Number("279"), "@timestamp": "t", "url": map[string]any{"original": "/"}}, true},
		{"extra field", map[string]any{"event": map[string]any{"type": []any{"a", "b"}}, "n": json.Number("279"), "x": "y"}, false},
		{"number as string", map[string]any{"event": map[string]any{"type": []any{"a", "b"}}, "n": "279"}, false},
		{"missing list element", map[string]any{"event": map[string]any{"type": []any{"a"}}, "n": json.Number("279")}, false},
	}
	for _, tt := range tests {
		diff := diffSEKOIA(t, want, tt.doc)
		if got := diff == ""; got != tt.equal {
			t.Errorf("%s: diffSEKOIA equal = %v; want %v\n%s", tt.name, got, tt.equal, diff)
		}
	}
	// An addition present in want is compared.
	want["@timestamp"] = "a"
	if diff := diffSEKOIA(t, want, map[string]any{"event": map[string]any{"type": []any{"a", "b"}}, "n": json.Number("279"), "@timestamp": "b"}); diff == "" {
		t.Errorf("diffSEKOIA ignored a @timestamp that want has")
	}
}

// TestHTTPRequestsFields checks httpRequestsFields against SEKOIA's
// fields.yml: the same names (the name: attribute, not the YAML key) and
// types.
func TestHTTPRequestsFields(t *testing.T) {
	file := filepath.Join("..", "..", "shared", "testdata", "sekoia-parsers", "http_requests", "fields.yml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Skipf("SEKOIA parser files not available: %v", err)
	}
	kinds := map[string]fieldKind{
		"keyword": kindText, "string": kindText, "number": kindNumber, "long": kindNumber,
		"float": kindNumber, "bool": kindBool, "boolean": kindBool, "object": kindObject,
	}
	want := make(map[string]fieldKind)
	var name string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "name: cloudflare."); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(line, "type: "); ok && name != "" {
			k, known := kinds[v]
			if !known {
				t.Fatalf("%s: field %s has unknown type %q", file, name, v)
			}
			want[name] = k
			name = ""
		}
	}
	if diff := cmp.Diff(want, httpRequestsFields); diff != "" {
		t.Errorf("httpRequestsFields differs from %s (-want +got):\n%s", file, diff)
	}
}

// misrouted are the fixtures whose record is not of its folder's format:
// SEKOIA routed them to another parser (mapping spec §3.5, §3.7). auto
// detection names the dataset the record really belongs to.
var misrouted = map[string]string{
	"gateway_http/test_1.json":      "access_requests",
	"gateway_http/test_2.json":      "access_requests",
	"gateway_http/test_3.json":      "access_requests",
	"gateway_http/test_4.json":      "access_requests",
	"gateway_http/test_5.json":      "access_requests",
	"gateway_http/test_6.json":      "access_requests",
	"gateway_http/test_7.json":      "access_requests",
	"gateway_http/test_8.json":      "access_requests",
	"gateway_http/test_9.json":      "access_requests",
	"gateway_http/test_http_2.json": "gateway_network",
	"access_requests/test_1.json":   "audit_logs",
	"access_requests/test_2.json":   "audit_logs",
}

// TestAutoFixtures frames every fixture message as a Logpush body (some are
// pretty-printed, some end in blank lines) and normalizes it with "auto".
func TestAutoFixtures(t *testing.T) {
	if _, err := os.Stat(sekoiaRoot); err != nil {
		t.Skipf("SEKOIA fixtures not available at %s: %v", sekoiaRoot, err)
	}
	n := New(Options{})
	for _, f := range sekoiaFormats {
		files, _ := filepath.Glob(filepath.Join(sekoiaRoot, f.dir, "*.json"))
		for _, file := range files {
			name := f.dir + "/" + filepath.Base(file)
			message, _ := readSEKOIACase(t, file)
			want := f.dataset
			if ds, ok := misrouted[name]; ok {
				want = ds
			}
			records := 0
			err := Split(strings.NewReader(message), SplitOptions{}, func(no int, raw []byte) error {
				records++
				ev, err := n.Normalize("auto", raw)
				if err != nil {
					t.Errorf("%s: Normalize(auto) error: %v", name, err)
					return nil
				}
				if ev.Dataset != want {
					t.Errorf("%s: Normalize(auto).Dataset = %q; want %q", name, ev.Dataset, want)
				}
				return nil
			})
			if err != nil || records != 1 {
				t.Errorf("%s: Split = %v with %d records; want 1 record", name, err, records)
			}
		}
	}
}
