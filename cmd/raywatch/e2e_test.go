package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
)

// binPath is the raywatch binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "raywatch-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "raywatch")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build raywatch: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is a running raywatch serve process.
type instance struct {
	t       *testing.T
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:PORT
	mu      sync.Mutex
	stderr  bytes.Buffer
	exited  chan struct{}
	waitErr error
}

var addrRe = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServe starts `raywatch serve` on 127.0.0.1:0 with the given extra
// environment, and waits for /healthz.
func startServe(t *testing.T, dataDir string, env ...string) *instance {
	t.Helper()
	return startServeArgs(t, dataDir, nil, env...)
}

// startServeArgs is startServe with more serve flags.
func startServeArgs(t *testing.T, dataDir string, args []string, env ...string) *instance {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, cmd: cmd, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			in.mu.Lock()
			in.stderr.WriteString(line + "\n")
			in.mu.Unlock()
			if m := addrRe.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		in.waitErr = cmd.Wait()
		pw.Close()
		close(in.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-in.exited:
		default:
			cmd.Process.Kill()
			<-in.exited
		}
	})
	select {
	case a := <-addr:
		in.base = "http://" + a
	case <-in.exited:
		t.Fatalf("raywatch exited before listening: %v\n%s", in.waitErr, in.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("raywatch did not report its address\n%s", in.log())
	}
	waitFor(t, 30*time.Second, func() bool {
		resp, err := http.Get(in.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "healthz 200")
	return in
}

func (in *instance) log() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stderr.String()
}

// stop sends SIGTERM and returns the exit code.
func (in *instance) stop() int {
	in.t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		in.t.Fatal(err)
	}
	select {
	case <-in.exited:
	case <-time.After(60 * time.Second):
		in.t.Fatalf("raywatch did not exit after SIGTERM\n%s", in.log())
	}
	var ee *exec.ExitError
	if errors.As(in.waitErr, &ee) {
		return ee.ExitCode()
	}
	if in.waitErr != nil {
		in.t.Fatal(in.waitErr)
	}
	return 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// postBatch posts body gzip'd, as Logpush does, and returns status and body.
func postBatch(t *testing.T, base, key string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/plain/batch", bytes.NewReader(gzipBytes(t, body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "gzip")
	if key != "" {
		req.Header.Set("X-SEKOIAIO-INTAKE-KEY", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type apiAlert struct {
	ID   string `json:"id"`
	Rule struct {
		ID    string   `json:"id"`
		Title string   `json:"title"`
		Level string   `json:"level"`
		Tags  []string `json:"tags"`
	} `json:"rule"`
	Count     int    `json:"count"`
	FirstSeen string `json:"first_seen"`
	LastSeen  string `json:"last_seen"`
	Status    string `json:"status"`
	Intake    string `json:"intake"`
	Matches   []struct {
		Field string `json:"field"`
		Value any    `json:"value"`
	} `json:"matches"`
	Event map[string]any `json:"event"`
}

func listAlerts(t *testing.T, base string, limit int) []apiAlert {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/alerts?limit=%d", base, limit))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /api/v1/alerts = %d", resp.StatusCode)
	}
	var page struct {
		Alerts []apiAlert `json:"alerts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return page.Alerts
}

// rejectedRecords returns the malformed records listed by /api/v1/rejects.
func rejectedRecords(t *testing.T, base, token string) []map[string]any {
	t.Helper()
	var page struct {
		Records []map[string]any `json:"records"`
	}
	apiGetToken(t, base, "/api/v1/rejects", token, &page)
	return page.Records
}

func sampleBatch(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/sample-batch.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sampleTitles are the rule titles the sample batch must raise, sorted.
var sampleTitles = []string{
	"Bazar Loader Backdoor C2 Polling",
	"Covenant Default HTTP Beaconing",
	"Covenant Default HTTP Beaconing",
	"Lemon Duck User-Agent",
	"LokiBot User-Agent",
	"TrevorC2 HTTP Communication",
}

// sampleGrouped are the alerts the server keeps for the sample batch: the
// two Covenant records come from one source IP to one host within the
// grouping window, so they are one alert of count 2.
var sampleGrouped = map[string]int{
	"Bazar Loader Backdoor C2 Polling": 1,
	"Covenant Default HTTP Beaconing":  2,
	"Lemon Duck User-Agent":            1,
	"LokiBot User-Agent":               1,
	"TrevorC2 HTTP Communication":      1,
}

// waitAlerts waits until the server lists n alerts (batches are processed
// after the 2xx) and returns them.
func waitAlerts(t *testing.T, base string, n int) []apiAlert {
	t.Helper()
	var got []apiAlert
	waitFor(t, 30*time.Second, func() bool {
		got = listAlerts(t, base, 1000)
		return len(got) >= n
	}, fmt.Sprintf("%d alerts", n))
	return got
}

func TestEndToEnd(t *testing.T) {
	const key = "e2e-intake-key-0123456789"
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key)

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(in.base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	var first struct {
		Type string `json:"type"`
	}
	if err := ws.ReadJSON(&first); err != nil || first.Type != "ready" {
		t.Fatalf("first websocket frame = %+v, %v; want ready on an empty store", first, err)
	}

	// Logpush's validation upload: 2xx, nothing ingested.
	if status, body := postBatch(t, in.base, key, []byte(`{"content":"tests"}`)); status != 200 {
		t.Fatalf("validation upload = %d %s; want 200", status, body)
	}
	// Wrong and missing keys.
	for _, k := range []string{"", "not-the-key"} {
		if status, _ := postBatch(t, in.base, k, sampleBatch(t)); status != 401 {
			t.Errorf("POST with key %q = %d; want 401", k, status)
		}
	}
	if got := listAlerts(t, in.base, 100); len(got) != 0 {
		t.Fatalf("alerts after probe and rejected posts = %d; want 0", len(got))
	}

	status, body := postBatch(t, in.base, key, sampleBatch(t))
	if status != 200 {
		t.Fatalf("POST sample batch = %d %s", status, body)
	}
	// The 2xx means spooled; the alerts follow.
	alerts := waitAlerts(t, in.base, len(sampleGrouped))
	got := map[string]int{}
	for i, a := range alerts {
		got[a.Rule.Title] += a.Count
		if a.Intake != "default" || a.Status != "new" || a.ID == "" || len(a.Matches) == 0 || a.Event == nil || a.FirstSeen == "" {
			t.Errorf("alert %d = %+v; want intake default, status new, matches and event", i, a)
		}
		if i > 0 && alerts[i-1].ID < a.ID {
			t.Errorf("alerts not newest first: %s before %s", alerts[i-1].ID, a.ID)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(sampleGrouped) {
		t.Errorf("alert counts by title = %v; want %v", got, sampleGrouped)
	}
	if got := listAlerts(t, in.base, 2); len(got) != 2 || got[0].ID != alerts[0].ID {
		t.Errorf("limit=2 gave %d alerts; want the 2 newest", len(got))
	}

	// One websocket frame carries a new alert.
	var frame struct {
		Type  string   `json:"type"`
		Alert apiAlert `json:"alert"`
	}
	if err := ws.ReadJSON(&frame); err != nil {
		t.Fatal(err)
	}
	if frame.Type != "alert" || frame.Alert.ID == "" || frame.Alert.Rule.Title == "" {
		t.Errorf("websocket frame = %+v; want an alert", frame)
	}

	// A Logpush retry of the same batch creates no duplicates; neither
	// does the same records in another batch.
	if status, body := postBatch(t, in.base, key, sampleBatch(t)); status != 200 || !strings.Contains(body, `"duplicate":true`) {
		t.Fatalf("retry = %d %s; want 200 duplicate", status, body)
	}
	resent := append(append([]byte{}, sampleBatch(t)...), []byte("not json\n")...)
	if status, _ := postBatch(t, in.base, key, resent); status != 200 {
		t.Fatalf("records resent in another batch = %d", status)
	}
	waitFor(t, 30*time.Second, func() bool { return len(rejectedRecords(t, in.base, "")) == 1 }, "the malformed record in /api/v1/rejects")
	total := 0
	for _, a := range listAlerts(t, in.base, 100) {
		total += a.Count
	}
	if total != len(sampleTitles) {
		t.Errorf("after retries: counts add up to %d; want %d", total, len(sampleTitles))
	}

	if code := in.stop(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d; want 0\n%s", code, in.log())
	}
	if strings.Contains(in.log(), key) {
		t.Error("the intake key appears in raywatch's log")
	}
}

func TestGeneratedIntakeKeyPersists(t *testing.T) {
	dir := t.TempDir()
	in := startServe(t, dir, "RAYWATCH_INTAKE_KEY=", "RAYWATCH_INTAKE_KEYS=")
	keyBytes, err := os.ReadFile(filepath.Join(dir, "intake-key"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(keyBytes))
	if !strings.Contains(in.log(), "destination_conf:  https://YOUR-RAYWATCH-HOST/plain/batch?header_X-SEKOIAIO-INTAKE-KEY="+key) {
		t.Errorf("first start did not print the destination_conf with the key:\n%s", in.log())
	}
	if status, _ := postBatch(t, in.base, key, sampleBatch(t)); status != 200 {
		t.Errorf("POST with the generated key = %d; want 200", status)
	}
	// SIGTERM finishes the acknowledged batch before exiting.
	if code := in.stop(); code != 0 {
		t.Fatalf("exit = %d", code)
	}
	again := startServe(t, dir, "RAYWATCH_INTAKE_KEY=", "RAYWATCH_INTAKE_KEYS=")
	if strings.Contains(again.log(), key) {
		t.Error("second start printed the key again; want it printed only once")
	}
	if got := listAlerts(t, again.base, 100); len(got) != len(sampleGrouped) {
		t.Errorf("alerts after restart = %d; want %d (kept in bbolt)", len(got), len(sampleGrouped))
	}
	if status, _ := postBatch(t, again.base, key, []byte("{}\n")); status != 200 {
		t.Errorf("POST after restart with the kept key = %d; want 200", status)
	}
	if code := again.stop(); code != 0 {
		t.Fatalf("exit = %d", code)
	}
}

func TestScanCommand(t *testing.T) {
	gzPath := filepath.Join(t.TempDir(), "batch.ndjson.gz")
	if err := os.WriteFile(gzPath, gzipBytes(t, sampleBatch(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"scan", "../../testdata/sample-batch.ndjson"},
		{"scan", gzPath},
		{"scan", "-"},
	} {
		cmd := exec.Command(binPath, args...)
		cmd.Stdin = bytes.NewReader(append(sampleBatch(t), []byte("not json\n")...))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		want := 0
		if args[1] == "-" {
			want = 1 // the malformed last line
		}
		if err := cmd.Run(); exitCode(err) != want {
			t.Fatalf("%v: %v; want exit status %d\n%s", args, err, want, stderr.String())
		}
		var titles []string
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			var a apiAlert
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatalf("%v: stdout line %q is not an alert: %v", args, line, err)
			}
			titles = append(titles, a.Rule.Title)
		}
		sort.Strings(titles)
		if strings.Join(titles, "|") != strings.Join(sampleTitles, "|") {
			t.Errorf("%v: titles = %q; want %q", args, titles, sampleTitles)
		}
		wantSummary := "14 records in 1 files, 6 alerts, 0 malformed"
		if args[1] == "-" {
			wantSummary = "15 records in 1 files, 6 alerts, 1 malformed"
			if !strings.Contains(stderr.String(), "stdin: record 15:") {
				t.Errorf("%v: stderr does not name the malformed record 15:\n%s", args, stderr.String())
			}
		}
		if !strings.Contains(stderr.String(), wantSummary) {
			t.Errorf("%v: stderr = %q; want a summary with %q", args, stderr.String(), wantSummary)
		}
	}
}

func TestNormalizeCommand(t *testing.T) {
	cmd := exec.Command(binPath, "normalize", "--dataset", "http_requests", "../../testdata/sample-batch.ndjson")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 14 {
		t.Fatalf("normalize printed %d documents; want 14", len(lines))
	}
	var doc struct {
		Event struct {
			Dataset string `json:"dataset"`
		} `json:"event"`
		Source struct {
			IP string `json:"ip"`
		} `json:"source"`
		URL struct {
			Original string `json:"original"`
		} `json:"url"`
	}
	if err := json.Unmarshal([]byte(lines[7]), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Event.Dataset != "http_requests" || doc.Source.IP != "203.0.113.12" || !strings.HasPrefix(doc.URL.Original, "/report.jsp?ID=") {
		t.Errorf("document 8 = %+v; want the Lemon Duck record in input order", doc)
	}
	bad := exec.Command(binPath, "normalize", "--dataset", "nope", "-")
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), `"nope"`) {
		t.Errorf("--dataset nope: err %v, output %q; want an error naming the dataset", err, out)
	}
}

func TestRulesCommands(t *testing.T) {
	out, err := exec.Command(binPath, "rules", "list", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		ID, Title, Level, Status, Source string
		Enabled                          bool
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("rules list --json: %v\n%s", err, out)
	}
	if len(list) != 6 || list[0].Source != "builtin" || !list[0].Enabled {
		t.Errorf("rules list = %+v; want the 6 enabled built-in rules", list)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "good.yml"), []byte("title: Test\nid: 1\nlogsource: {category: webserver}\ndetection:\n  sel:\n    url.path: /x\n  condition: sel\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "broken.yml"), []byte("title: Broken\nid: 2\ndetection:\n  sel:\n    url.path: [\n  condition: sel\n"), 0o600)
	cmd := exec.Command(binPath, "rules", "check", "--rules-dir", dir)
	out, err = cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("rules check with a broken file: err %v; want exit 1", err)
	}
	if !strings.Contains(string(out), "broken.yml:") || !strings.Contains(string(out), "7 rules loaded, 1 errors") {
		t.Errorf("rules check output = %q; want the broken file with its line and the counts", out)
	}
}

func TestScanWithIOCs(t *testing.T) {
	dir := t.TempDir()
	feed := "# attackers' range\n203.0.113.0/24\nnot an indicator at all!\n"
	if err := os.WriteFile(filepath.Join(dir, "feed.txt"), []byte(feed), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "scan", "--ioc-dir", dir, "../../testdata/sample-batch.ndjson")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	intel := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var a struct {
			Rule    struct{ Title string }
			Matches []struct {
				Field     string
				Indicator struct {
					Type, Value, File string
					Line              int
				}
			}
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatal(err)
		}
		if a.Rule.Title != "Intelligence feed match" {
			continue
		}
		intel++
		if m := a.Matches[0]; m.Field != "source.ip" || m.Indicator.Type != "cidr" || m.Indicator.Line != 2 || !strings.HasSuffix(m.Indicator.File, "feed.txt") {
			t.Errorf("intelligence match = %+v; want source.ip on the CIDR of feed.txt line 2", m)
		}
	}
	// Six records of the sample come from 203.0.113.0/24.
	if intel != 6 {
		t.Errorf("intelligence alerts = %d; want 6\n%s", intel, stderr.String())
	}
	if !strings.Contains(stderr.String(), "feed.txt:3") {
		t.Errorf("stderr does not name the bad IOC line feed.txt:3:\n%s", stderr.String())
	}
}

// TestScanWorkersKeepOrder checks that the parallel scan writes the same
// alerts, in the order of the records, and reports the same malformed
// records in order, whatever the number of workers: several chunks of
// records, a malformed line every 97, an overlong one.
func TestScanWorkersKeepOrder(t *testing.T) {
	var body bytes.Buffer
	for b := range 3 {
		body.Write(genBatch(b, 1000, 97))
	}
	body.WriteString(`{"RayID":"` + strings.Repeat("x", 5<<20) + "\"}\n")
	body.Write(genBatch(3, 300, 0))
	path := filepath.Join(t.TempDir(), "records.ndjson")
	if err := os.WriteFile(path, body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(workers string) (string, string) {
		cmd := exec.Command(binPath, "scan", "--workers", workers, path)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); exitCode(err) != 1 {
			t.Fatalf("scan --workers %s: %v; want exit status 1 (some records malformed)\n%s", workers, err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	out1, err1 := run("1")
	out4, err4 := run("4")
	lines := strings.Split(strings.TrimSpace(out1), "\n")
	// Lemon Duck every 7th record and LokiBot every 11th (less the
	// malformed lines).
	if len(lines) < 500 {
		t.Fatalf("%d alerts with one worker; want over 500", len(lines))
	}
	if out1 != out4 {
		t.Errorf("alerts differ between 1 and 4 workers (%d and %d bytes)", len(out1), len(out4))
	}
	// RayIDs are the batch then the record number in hex: they grow
	// through the file.
	var prev string
	for i, line := range lines {
		var a struct {
			RecordKey string `json:"record_key"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil || a.RecordKey == "" {
			t.Fatalf("alert %d: %v, record key %q", i, err, a.RecordKey)
		}
		if a.RecordKey < prev {
			t.Fatalf("alert %d (record %s) after record %s: not in record order", i, a.RecordKey, prev)
		}
		prev = a.RecordKey
	}
	malformed := func(stderr string) []string {
		var out []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, ": record ") {
				out = append(out, l)
			}
		}
		return out
	}
	m1, m4 := malformed(err1), malformed(err4)
	if len(m1) != pipeline.MaxReportedErrors || strings.Join(m1, "\n") != strings.Join(m4, "\n") {
		t.Errorf("malformed reports differ or are not %d:\n1 worker:\n%s\n4 workers:\n%s", pipeline.MaxReportedErrors, strings.Join(m1, "\n"), strings.Join(m4, "\n"))
	}
	if !strings.Contains(m1[0], "records.ndjson: record 97:") {
		t.Errorf("first report %q; want record 97", m1[0])
	}
	if want := "3301 records in 1 files"; !strings.Contains(err4, want) || !strings.Contains(err4, "31 malformed") {
		t.Errorf("summary %q; want %q and 31 malformed (30 broken lines, 1 overlong)", err4, want)
	}
}
