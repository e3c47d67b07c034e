package normalize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// varietyRecords are records whose values take every path into an Event:
// SEKOIA's fixtures and the golden inputs (every dataset), realistic
// records, and records built to leave the arena's usual chunk (many
// copied members, a long value) or to hold values the decoders make up
// (booleans, compact JSON, user-agents, timestamps).
func varietyRecords(tb testing.TB) []struct{ dataset, raw string } {
	tb.Helper()
	var out []struct{ dataset, raw string }
	add := func(dataset, raw string) { out = append(out, struct{ dataset, raw string }{dataset, raw}) }
	for _, format := range sekoiaFormats {
		files, _ := filepath.Glob(filepath.Join(sekoiaRoot, format.dir, "*.json"))
		for _, file := range files {
			message, _ := readSEKOIACase(tb, file)
			add(format.dataset, message)
		}
	}
	goldens, _ := filepath.Glob(filepath.Join(goldenRoot, "*.ndjson"))
	for _, file := range goldens {
		data, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		dataset, _, _ := strings.Cut(filepath.Base(file), ".")
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#") {
				add(dataset, line)
			}
		}
	}
	for _, r := range benchRecords(64) {
		add("http_requests", string(r))
	}
	var many strings.Builder
	for i := range 400 {
		fmt.Fprintf(&many, `,"h%d":%d`, i, i)
	}
	add("http_requests", `{"RayID":"1","RequestHeaders":{"a":"b"`+many.String()+`},"EdgeStartTimestamp":1658281671671000000}`)
	add("http_requests", `{"RayID":"2","ClientRequestUserAgent":"`+strings.Repeat("Mozilla/5.0 ", 400)+`","ClientRequestURI":"/`+strings.Repeat("x", 3000)+`?q=1"}`)
	add("http_requests", `{"RayID":"3","WorkerSubrequest":true,"CacheTieredFill":false,"EdgeCFConnectingO2O":true,"FirewallMatchesActions":[{"b":1,"a":"x"},[2],"log"],"ClientRequestHost":"a.b.example.co.uk","ClientRequestUserAgent":"curl/8.5.0"}`)
	add("http_requests", `{"RayID":"4","ClientRequestPath":"/caf\u00e9/\u212a","ClientRequestUserAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)","Cookies":{"s":"\u0000x"}}`)
	return out
}

// TestReuse normalizes records into one Event, handing its memory back
// after most of them (Event.Reuse) as the pipeline does after records that
// raise no alert: each record must come out as a new Event would, what was
// kept from the records not handed back must stay as it was, and the loop
// must not allocate.
func TestReuse(t *testing.T) {
	n := New(Options{})
	var ev Event
	type kept struct {
		doc    map[string]any
		json   string
		key    string
		vals   []string // pointing into the Event's memory
		copies []string
	}
	var keep []kept
	for i, rec := range varietyRecords(t) {
		fresh, ferr := n.Normalize(rec.dataset, []byte(rec.raw))
		if err := n.NormalizeInto(&ev, rec.dataset, []byte(rec.raw)); (err != nil) != (ferr != nil) {
			t.Fatalf("record %.100s: NormalizeInto error %v, Normalize error %v", rec.raw, err, ferr)
		}
		if ferr != nil {
			continue
		}
		got, _ := json.Marshal(ev.Doc())
		want, _ := json.Marshal(fresh.Doc())
		if !bytes.Equal(got, want) || ev.Key != fresh.Key {
			t.Fatalf("record %.100s after Reuse:\n%s (key %q)\nwant\n%s (key %q)", rec.raw, got, ev.Key, want, fresh.Key)
		}
		if i%7 != 0 {
			ev.Reuse()
			continue
		}
		// Keep what an alert keeps: the document, the key, values.
		k := kept{doc: ev.Doc(), json: string(got), key: ev.Key}
		ev.Range(func(_, v string) bool {
			k.vals = append(k.vals, v)
			k.copies = append(k.copies, strings.Clone(v))
			return true
		})
		keep = append(keep, k)
	}
	if len(keep) < 10 {
		t.Fatalf("%d records kept; want 10 or more", len(keep))
	}
	for _, k := range keep {
		if d, _ := json.Marshal(k.doc); string(d) != k.json {
			t.Errorf("a kept document changed:\n%s\nwant\n%s", d, k.json)
		}
		if !slices.Equal(k.vals, k.copies) {
			t.Errorf("kept values changed: %q; want %q", k.vals, k.copies)
		}
	}
	if raceEnabled {
		return // the race detector drops pooled objects at random
	}
	raws := benchRecords(64)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		if err := n.NormalizeInto(&ev, "http_requests", raws[i%len(raws)]); err != nil {
			t.Fatal(err)
		}
		ev.Reuse()
		i++
	})
	if allocs != 0 {
		t.Errorf("NormalizeInto and Reuse: %.2f allocations a record; want 0", allocs)
	}
}
