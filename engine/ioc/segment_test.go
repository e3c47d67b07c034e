package ioc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bigTextFeed is a plain-text feed big enough for a segment of its own.
func bigTextFeed() string {
	var b strings.Builder
	for i := range bigFile {
		fmt.Fprintf(&b, "10.%d.%d.%d\n", 100+i>>16&255, i>>8&255, i&255)
	}
	return b.String()
}

// TestReloadRebuildsOnlyChangedSegments edits a small file next to a big
// feed: the big feed's part of the index is reused as it is, the small
// file's change shows, and an edit of the big feed rebuilds its part.
func TestReloadRebuildsOnlyChangedSegments(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "big.txt", bigTextFeed())
	writeFile(t, dir, "small.txt", "192.0.2.1\n")
	w, err := NewWatcher(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := w.l.segs["big.txt"]
	if big == nil || len(w.Current().segs) != 2 {
		t.Fatalf("segments %v; want one for big.txt and one for the small files", w.l.segs)
	}
	writeFile(t, dir, "small.txt", "192.0.2.2\n198.51.100.7\n")
	if err := w.reload(map[string]bool{"small.txt": true}, false, false); err != nil {
		t.Fatal(err)
	}
	if w.l.segs["big.txt"] != big {
		t.Error("editing small.txt rebuilt big.txt's segment")
	}
	if !matches(w, "192.0.2.2") || matches(w, "192.0.2.1") || !matches(w, "10.100.0.5") {
		t.Error("after the edit of small.txt: want 192.0.2.2 and 10.100.0.5 to match, not 192.0.2.1")
	}
	if got, want := w.Current().Len(), bigFile+2; got != want {
		t.Errorf("Len = %d; want %d", got, want)
	}
	if fs, _ := fileStatus(w, "big.txt"); fs.Total != bigFile {
		t.Errorf("big.txt: Total %d; want %d", fs.Total, bigFile)
	}
	writeFile(t, dir, "big.txt", "10.200.0.1\n"+bigTextFeed())
	if err := w.reload(map[string]bool{"big.txt": true}, false, false); err != nil {
		t.Fatal(err)
	}
	if w.l.segs["big.txt"] == big || !matches(w, "10.200.0.1") {
		t.Error("editing big.txt did not rebuild its segment")
	}
	// A big file that shrinks joins the small files' segment.
	writeFile(t, dir, "big.txt", "10.200.0.2\n")
	if err := w.reload(map[string]bool{"big.txt": true}, false, false); err != nil {
		t.Fatal(err)
	}
	if len(w.l.segs) != 1 || !matches(w, "10.200.0.2") || matches(w, "10.200.0.1") || !matches(w, "192.0.2.2") {
		t.Errorf("after big.txt shrank: %d segments, want one holding both files", len(w.l.segs))
	}
}

// TestSupersessionAcrossSegments revises, in a small file, a STIX object
// of a big bundle: the big bundle's segment is rebuilt so that the old
// version stops matching, and again when the revision goes.
func TestSupersessionAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	obj := func(id int, ip, modified, extra string) string {
		return fmt.Sprintf(`{"type":"indicator","spec_version":"2.1","id":"indicator--%08d-0000-4000-8000-000000000000","created":"2024-01-01T00:00:00Z","modified":%q,"pattern":"[ipv4-addr:value = '%s']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"%s}`, id, modified, ip, extra)
	}
	var objs []string
	objs = append(objs, obj(0, "10.7.0.1", "2024-01-01T00:00:00Z", ""))
	for i := 1; i < bigFile; i++ {
		objs = append(objs, obj(i, fmt.Sprintf("10.6.%d.%d", i>>8&255, i&255), "2024-01-01T00:00:00Z", ""))
	}
	writeFile(t, dir, "big.json", `{"type":"bundle","id":"bundle--1","objects":[`+strings.Join(objs, ",")+`]}`)
	w, err := NewWatcher(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w.l.segs["big.json"] == nil || !matches(w, "10.7.0.1") {
		t.Fatal("big.json: want a segment of its own and 10.7.0.1 to match")
	}
	reload := func(name string) {
		t.Helper()
		if err := w.reload(map[string]bool{name: true}, false, false); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, dir, "update.json", `{"type":"bundle","id":"bundle--2","objects":[`+obj(0, "10.7.0.2", "2024-06-01T00:00:00Z", "")+`]}`)
	reload("update.json")
	if matches(w, "10.7.0.1") || !matches(w, "10.7.0.2") {
		t.Error("revised in update.json: want 10.7.0.2 to match and the old 10.7.0.1 not")
	}
	if fs, _ := fileStatus(w, "big.json"); fs.Superseded != 1 {
		t.Errorf("big.json: Superseded %d; want 1", fs.Superseded)
	}
	if err := os.Remove(filepath.Join(dir, "update.json")); err != nil {
		t.Fatal(err)
	}
	reload("update.json")
	if !matches(w, "10.7.0.1") || matches(w, "10.7.0.2") {
		t.Error("revision removed: want 10.7.0.1 to match again")
	}
	writeFile(t, dir, "update.json", `{"type":"bundle","id":"bundle--3","objects":[`+obj(0, "10.7.0.1", "2024-06-01T00:00:00Z", `,"revoked":true`)+`]}`)
	reload("update.json")
	if matches(w, "10.7.0.1") {
		t.Error("revoked in update.json: 10.7.0.1 still matches")
	}
}
