package ioc

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// htmlErrorPage is what a failed feed download leaves.
const htmlErrorPage = `<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
`

// TestSuspectFileKeepsIndicators replaces files that have indicators with
// what a failed download leaves (nothing, an HTML error page) or with
// mostly bad lines: each keeps its indicators, with a warning in its
// status, the log and the failure metric. A file that says it is empty
// (only comments; a CSV header; a bundle without objects) is taken as it
// is, and so is a file with a few bad lines; a fixed file clears the
// warning.
func TestSuspectFileKeepsIndicators(t *testing.T) {
	ten := ""
	for i := range 10 {
		ten += fmt.Sprintf("10.9.0.%d\n", i+1)
	}
	bundle := func(objects string) string { return `{"type":"bundle","id":"bundle--1","objects":[` + objects + `]}` }
	stixIP := `{"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '10.9.0.1']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}`
	tests := []struct {
		name, file, before, after string
		keep                      bool   // the file keeps its indicators
		want                      int    // indicators of the file after
		warn                      string // in the warning ("" for none)
	}{
		{"zero bytes", "feed.txt", ten, "", true, 10, "no indicators"},
		{"blank lines", "feed.txt", ten, "\n\n  \n", true, 10, "no indicators"},
		{"HTML error page", "feed.txt", ten, htmlErrorPage, true, 10, "not indicators"},
		{"mostly bad lines", "feed.txt", ten, "10.9.1.1\n10.9.1.2\n10.9.1.3\n10.9.1.4\nnot an ip\n<p>\nfoo bar\n<br>\nbaz qux\n%%%\n", true, 10, "6 of 10 entries are not indicators"},
		{"some bad lines", "feed.txt", ten, "10.9.1.1\n10.9.1.2\n10.9.1.3\n10.9.1.4\n10.9.1.5\n10.9.1.6\nnot an ip\n<p>\n", false, 6, ""},
		{"only comments", "feed.txt", ten, "# nothing today\n", false, 0, ""},
		{"CSV zero bytes", "feed.csv", "value,type\n10.9.0.1,ip-dst\n", "", true, 1, "no indicators"},
		{"CSV only comments", "feed.csv", "value,type\n10.9.0.1,ip-dst\n", "# nothing today\n", false, 0, ""},
		{"CSV header only", "feed.csv", "value,type\n10.9.0.1,ip-dst\n", "value,type\n", false, 0, ""},
		{"STIX HTML error page", "feed.json", bundle(stixIP), htmlErrorPage, true, 1, ""},
		{"STIX no objects", "feed.json", bundle(stixIP), bundle(""), false, 0, ""},
		{"STIX zero bytes", "feed.json", bundle(stixIP), "", true, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, tt.file, tt.before)
			writeFile(t, dir, "other.txt", "10.8.0.1\n")
			var logs bytes.Buffer
			w, err := NewWatcher(dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(w.Collectors()...)
			before := w.Current().Len()
			writeFile(t, dir, tt.file, tt.after)
			if err := w.Reload(); err != nil {
				t.Fatal(err)
			}
			fs, _ := fileStatus(w, tt.file)
			if fs.Total != tt.want || w.Current().Len() != tt.want+1 {
				t.Errorf("%s: Total %d, set %d (before %d); want %d and %d", tt.file, fs.Total, w.Current().Len(), before, tt.want, tt.want+1)
			}
			if tt.keep != matches(w, "10.9.0.1") {
				t.Errorf("10.9.0.1 matches: %v; want %v", !tt.keep, tt.keep)
			}
			if !matches(w, "10.8.0.1") {
				t.Error("other.txt lost its indicator")
			}
			kept := fs.Warning != "" || fs.LastError != ""
			if kept != tt.keep || !strings.Contains(fs.Warning, tt.warn) {
				t.Errorf("status %+v; want the file kept %v, with a warning saying %q", fs, tt.keep, tt.warn)
			}
			if tt.warn != "" && (!strings.Contains(fs.Warning, "keeping the") || !strings.Contains(logs.String(), "keeping its previous indicators") || fs.WarningTime.IsZero()) {
				t.Errorf("warning %q, log %q; want both to say the previous indicators are kept", fs.Warning, logs.String())
			}
			if got := metricValue(t, reg, "raywatch_ioc_reload_failures_total", ""); tt.keep && got < 1 || !tt.keep && got != 0 {
				t.Errorf("raywatch_ioc_reload_failures_total = %v; want it counted only when the file is set aside", got)
			}
			if !tt.keep {
				return
			}
			// The fixed file loads and clears the warning.
			writeFile(t, dir, tt.file, tt.before)
			if err := w.Reload(); err != nil {
				t.Fatal(err)
			}
			if fs, _ := fileStatus(w, tt.file); fs.Warning != "" || fs.LastError != "" || fs.Total != tt.want {
				t.Errorf("fixed file: status %+v; want no warning and %d indicators", fs, tt.want)
			}
		})
	}
}

// TestNewSuspectFileWarns loads a new file that is mostly junk: with no
// previous indicators to keep, what parses loads, and the status warns.
func TestNewSuspectFileWarns(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "feed.txt", "10.9.0.1\n"+htmlErrorPage)
	_, status, err := LoadDir(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 1 || status[0].Total != 1 || !strings.Contains(status[0].Warning, "entries are not indicators") || strings.Contains(status[0].Warning, "keeping") {
		t.Errorf("status %+v; want 1 indicator and a warning that the file is mostly not indicators", status)
	}
}
