package normalize

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in ../testdata/normalize")

// goldenRoot holds records written for raywatch's own golden tests: for
// each <dataset>.<name>.ndjson (one record a line, "#" lines are comments;
// the dataset may be "auto"), <dataset>.<name>.golden holds what Normalize
// makes of each record.
var goldenRoot = filepath.Join("..", "testdata", "normalize")

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join(goldenRoot, "*.ndjson"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs in %s: %v", goldenRoot, err)
	}
	n := New(Options{})
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			dataset, _, _ := strings.Cut(filepath.Base(in), ".")
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			no := 0
			for line := range strings.SplitSeq(string(data), "\n") {
				if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
					continue
				}
				no++
				fmt.Fprintf(&out, "# record %d: %s\n", no, line)
				out.Write(goldenDoc(t, n, dataset, line))
			}
			golden := strings.TrimSuffix(in, ".ndjson") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("%s differs from its golden file (-want +got):\n%s", filepath.Base(in), diff)
			}
		})
	}
}

// goldenDoc renders what Normalize makes of one record: the error, or the
// dataset, time, key, document, the fields present only in the flat view
// (empty strings) and the fields left out (FieldErrors).
func goldenDoc(t *testing.T, n *Normalizer, dataset, record string) []byte {
	t.Helper()
	ev, err := n.Normalize(dataset, []byte(record))
	if err != nil {
		return []byte("error: " + err.Error() + "\n")
	}
	var empty []string
	for name, v := range ev.FlatMap() {
		if v == "" {
			empty = append(empty, name)
		}
	}
	sort.Strings(empty)
	v := struct {
		Dataset string         `json:"dataset"`
		Time    string         `json:"time,omitempty"`
		Key     string         `json:"key"`
		Doc     map[string]any `json:"doc"`
		Empty   []string       `json:"empty_in_flat_view,omitempty"`
		Errors  []FieldError   `json:"field_errors,omitempty"`
	}{ev.Dataset, "", ev.Key, ev.Doc(), empty, ev.FieldErrors()}
	if !ev.Time.IsZero() {
		v.Time = ev.Time.Format(time.RFC3339Nano)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
