package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// lemonDuckID is the built-in Lemon Duck rule.
const lemonDuckID = "80b58af8-9f04-48b6-a252-0e94be0034c8"

// lpBase is the start of the generated Logpush archive: three days of
// objects.
var lpBase = time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC)

// lpObject is one object of the generated archive.
type lpObject struct {
	key  string // below the bucket or folder: logs/YYYYMMDD/<start>_<end>_<id>.log.gz
	body []byte // gzip'd NDJSON
}

// logpushArchive returns 3 daily folders of 4 objects (one every 6 h,
// each 5 minutes long) of 10 records 30 s apart. Records 0 and 8 of each
// object carry the Lemon Duck user-agent: at +0 s and +4 min.
func logpushArchive(t *testing.T) []lpObject {
	t.Helper()
	var out []lpObject
	n := 0
	for d := range 3 {
		for o := range 4 {
			start := lpBase.Add(time.Duration(d)*24*time.Hour + time.Duration(o)*6*time.Hour)
			end := start.Add(5 * time.Minute)
			var buf bytes.Buffer
			for r := range 10 {
				req := traffic.Request{
					IP: fmt.Sprintf("198.51.100.%d", n%200+1), Method: "GET", Host: "shop.example.com",
					URI: fmt.Sprintf("/p/%d", n), UA: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", Status: 200,
					Time: start.Add(time.Duration(r) * 30 * time.Second), RayID: fmt.Sprintf("8f%014x", n),
				}
				if r == 0 || r == 8 {
					req.UA = "Lemon-Duck-abc-XYZ"
				}
				buf.Write(traffic.Render(nil, req))
				buf.WriteByte('\n')
				n++
			}
			key := fmt.Sprintf("logs/%s/%s_%s_%08x.log.gz", start.Format("20060102"), start.Format("20060102T150405Z"), end.Format("20060102T150405Z"), n)
			out = append(out, lpObject{key: key, body: gzipBytes(t, buf.Bytes())})
		}
	}
	return out
}

// replayFrom and replayTo meet the objects of 2026-01-05 starting at 06:00
// and 12:00; the record of 12:04 is past replayTo.
const (
	replayFrom = "2026-01-05T06:00:00Z"
	replayTo   = "2026-01-05T12:02:00Z"
)

// inRange reports whether an object of logpushArchive meets the range.
func inRange(key string) bool {
	return strings.Contains(key, "20260105T060000Z_") || strings.Contains(key, "20260105T120000Z_")
}

func writeObjects(t *testing.T, objs []lpObject) string {
	t.Helper()
	root := t.TempDir()
	for _, o := range objs {
		p := filepath.Join(root, filepath.FromSlash(o.key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, o.body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// runBinEnv is runBin with extra environment variables.
func runBinEnv(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code = exitCode(cmd.Run())
	if code < 0 {
		t.Fatalf("raywatch %v did not run", args)
	}
	return code, out.String(), errb.String()
}

// alertLines parses JSON lines of alerts.
func alertLines(t *testing.T, out string) []alert.Alert {
	t.Helper()
	var as []alert.Alert
	for line := range strings.Lines(out) {
		var a alert.Alert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("not an alert: %v\n%s", err, line)
		}
		as = append(as, a)
	}
	return as
}

// TestReplayFolder replays a folder of Logpush-named objects over a range:
// the objects outside it are left out by their names, the records outside
// it by their own time, and the output is raywatch scan's for the records
// in range, in record order.
func TestReplayFolder(t *testing.T) {
	objs := logpushArchive(t)
	root := writeObjects(t, objs)
	code, out, errOut := runBin(t, nil, "replay", "--state", filepath.Join(t.TempDir(), "state"), "--intake", "scan",
		"--from", replayFrom, "--to", replayTo, root)
	if code != 0 {
		t.Fatalf("replay = %d\n%s", code, errOut)
	}
	for _, want := range []string{"2 objects to read, 10 left out by their names' time", "replay: 2/2 objects", "20 records in 2 objects, 5 outside the time range, 3 alerts, 0 malformed"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// scan of the two objects read gives one more alert: the record past
	// --to.
	var files []string
	for _, o := range objs {
		if inRange(o.key) {
			files = append(files, filepath.Join(root, filepath.FromSlash(o.key)))
		}
	}
	code, scanOut, scanErr := runBin(t, nil, append([]string{"scan"}, files...)...)
	if code != 0 {
		t.Fatalf("scan = %d\n%s", code, scanErr)
	}
	to, _ := time.Parse(time.RFC3339, replayTo)
	var want []string
	for line := range strings.Lines(scanOut) {
		var a alert.Alert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatal(err)
		}
		if !a.FirstSeen.After(to) {
			want = append(want, line)
		}
	}
	if got := slices.Collect(strings.Lines(out)); len(want) != 3 || !slices.Equal(got, want) {
		t.Errorf("replay output is not scan's for the records in range:\nreplay:\n%s\nscan (in range):\n%s", out, strings.Join(want, ""))
	}
}

// s3Bucket serves objs in bucket "cf-logs" with gofakes3, counting the
// GETs of each object; block, if set, holds the GET of that key until
// release is closed or the client goes.
type s3Bucket struct {
	h       http.Handler
	URL     string
	release chan struct{}

	mu    sync.Mutex
	gets  map[string]int
	block string // a GET of this key waits for release
}

func newS3Bucket(t *testing.T, objs []lpObject) *s3Bucket {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("cf-logs"); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if _, err := backend.PutObject("cf-logs", o.key, map[string]string{}, bytes.NewReader(o.body), int64(len(o.body)), nil); err != nil {
			t.Fatal(err)
		}
	}
	b := &s3Bucket{h: gofakes3.New(backend).Server(), gets: map[string]int{}, release: make(chan struct{})}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}

func (b *s3Bucket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodGet && !q.Has("list-type") && !q.Has("prefix") && !q.Has("delimiter") {
		key := strings.TrimPrefix(r.URL.Path, "/cf-logs/")
		b.mu.Lock()
		b.gets[key]++
		blocked := key == b.block
		b.mu.Unlock()
		if blocked {
			select {
			case <-b.release:
			case <-r.Context().Done():
				return
			}
		}
	}
	b.h.ServeHTTP(w, r)
}

// blockGets makes GETs of key wait until b.release is closed.
func (b *s3Bucket) blockGets(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.block = key
}

func (b *s3Bucket) getsOf(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gets[key]
}

// awsEnv points the AWS SDK at nothing but the test's credentials.
func awsEnv(t *testing.T, endpoint string) []string {
	dir := t.TempDir()
	env := []string{
		"AWS_ACCESS_KEY_ID=test-key", "AWS_SECRET_ACCESS_KEY=test-secret", "AWS_REGION=auto",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=", "AWS_SESSION_TOKEN=",
	}
	if endpoint != "" {
		env = append(env, "AWS_ENDPOINT_URL="+endpoint)
	}
	return env
}

// TestReplayS3 replays s3://BUCKET/PREFIX from an in-process S3 server
// (--s3-endpoint): the objects outside the range are never fetched, those
// in it once each, and the output is the folder replay's.
func TestReplayS3(t *testing.T) {
	objs := logpushArchive(t)
	bucket := newS3Bucket(t, objs)
	args := []string{"replay", "--state", filepath.Join(t.TempDir(), "state"), "--from", replayFrom, "--to", replayTo}
	code, out, errOut := runBinEnv(t, awsEnv(t, ""), append(args, "--s3-endpoint", bucket.URL, "s3://cf-logs/logs")...)
	if code != 0 {
		t.Fatalf("replay s3:// = %d\n%s", code, errOut)
	}
	for _, o := range objs {
		want := 0
		if inRange(o.key) {
			want = 1
		}
		if got := bucket.getsOf(o.key); got != want {
			t.Errorf("GET %s %d times; want %d", o.key, got, want)
		}
	}
	code, folderOut, errOut := runBin(t, nil, append(args, writeObjects(t, objs))...)
	if code != 0 {
		t.Fatalf("replay folder = %d\n%s", code, errOut)
	}
	if out != folderOut || len(alertLines(t, out)) != 3 {
		t.Errorf("replay of S3 gave\n%s\nthe folder replay\n%s\nwant the same 3 alerts", out, folderOut)
	}
}

// TestReplayResume interrupts a replay from S3 while an object is being
// fetched, then runs it again with --resume: the second run starts at that
// object (those finished are not fetched again), and the two outputs make
// the whole replay's, nothing repeated. The state is in the user cache
// folder.
func TestReplayResume(t *testing.T) {
	objs := logpushArchive(t)
	bucket := newS3Bucket(t, objs)
	const stop = 5 // objects 0-4 are finished when the replay is stopped
	bucket.blockGets(objs[stop].key)
	cache := t.TempDir()
	env := append(awsEnv(t, bucket.URL), "XDG_CACHE_HOME="+cache, "HOME="+cache)

	cmd := exec.Command(binPath, "replay", "--downloads", "2", "s3://cf-logs/logs/")
	cmd.Env = append(os.Environ(), env...)
	var out1, err1 bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out1, &err1
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, func() bool {
		states, _ := filepath.Glob(filepath.Join(cache, "raywatch", "replay-*.state"))
		if len(states) != 1 {
			return false
		}
		b, _ := os.ReadFile(states[0])
		return bytes.Count(b, []byte("\n")) == 1+stop // the header, then one line per object
	}, "the first objects finished")
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := exitCode(cmd.Wait())
	if code != 1 || !strings.Contains(err1.String(), "--resume to continue") {
		t.Fatalf("interrupted replay = %d; want 1 and a hint at --resume\n%s", code, err1.String())
	}
	close(bucket.release)

	code, out2, err2 := runBinEnv(t, env, "replay", "--downloads", "2", "--resume", "s3://cf-logs/logs/")
	if code != 0 || !strings.Contains(err2, fmt.Sprintf("%d objects to read, 0 left out by their names' time, %d finished by an earlier run", len(objs)-stop, stop)) {
		t.Fatalf("resumed replay = %d; want 0 and %d objects finished before\n%s", code, stop, err2)
	}
	for _, o := range objs[:stop] {
		if n := bucket.getsOf(o.key); n != 1 {
			t.Errorf("object %s finished by the first run was fetched %d times; want 1", o.key, n)
		}
	}
	_, whole, errOut := runBinEnv(t, env, "replay", "--state", filepath.Join(t.TempDir(), "state"), "s3://cf-logs/logs/")
	if got := out1.String() + out2; got != whole || len(alertLines(t, whole)) != 2*len(objs) {
		t.Errorf("interrupted + resumed output:\n%s\nwhole replay:\n%s\n%s", got, whole, errOut)
	}
}

// TestReplayTruncatedObject checks that a truncated .gz object is
// reported, its records before the damage still read, and the other
// objects read: exit status 1.
func TestReplayTruncatedObject(t *testing.T) {
	objs := logpushArchive(t)
	bad := objs[4]
	objs[4].body = bad.body[:len(bad.body)*2/3]
	root := writeObjects(t, objs)
	code, out, errOut := runBin(t, nil, "replay", "--state", filepath.Join(t.TempDir(), "state"), root)
	if code != 1 {
		t.Errorf("replay with a truncated object = %d; want 1\n%s", code, errOut)
	}
	badPath := filepath.Join(root, filepath.FromSlash(bad.key))
	if !strings.Contains(errOut, badPath+": read up to an error: unexpected EOF") {
		t.Errorf("stderr does not name the truncated object:\n%s", errOut)
	}
	// Every other object's two alerts, and the truncated one's first.
	as := alertLines(t, out)
	if len(as) != 2*(len(objs)-1)+1 {
		t.Errorf("%d alerts; want %d (the other objects' and the first of the truncated one)\n%s", len(as), 2*(len(objs)-1)+1, errOut)
	}
	if !strings.Contains(errOut, "1 objects not read whole") {
		t.Errorf("summary does not count the truncated object:\n%s", errOut)
	}
}

// TestReplayDataDirAndStats replays into a store (alerts marked replayed)
// and, with --rule --stats, counts a rule's alerts per day without
// storing anything.
func TestReplayDataDirAndStats(t *testing.T) {
	root := writeObjects(t, logpushArchive(t))
	dataDir := filepath.Join(t.TempDir(), "data")
	code, out, errOut := runBin(t, nil, "replay", "--data-dir", dataDir, "--group-window", "0", "--from", "2026-01-05", "--to", "2026-01-05", root)
	if code != 0 || out != "" {
		t.Fatalf("replay --data-dir = %d, stdout %q\n%s", code, out, errOut)
	}
	if states, _ := filepath.Glob(filepath.Join(dataDir, "replay-*.state")); len(states) != 1 {
		t.Errorf("resume state files in the data folder: %v; want one", states)
	}
	st, err := store.Open(filepath.Join(dataDir, "alerts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	as, _, err := st.List(context.Background(), store.Query{Limit: 100})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 8 {
		t.Errorf("%d alerts stored; want the 8 of 2026-01-05", len(as))
	}
	for _, a := range as {
		if !a.Replayed || a.Rule.ID != lemonDuckID || a.FirstSeen.Format(time.DateOnly) != "2026-01-05" {
			t.Errorf("stored alert: replayed %v, rule %s, first seen %v; want a replayed Lemon Duck alert of 2026-01-05", a.Replayed, a.Rule.ID, a.FirstSeen)
		}
	}

	code, out, errOut = runBin(t, nil, "replay", "--rule", lemonDuckID, "--stats", "--json", root)
	var rep struct {
		Alerts int `json:"alerts"`
		PerDay []struct {
			Value  string `json:"value"`
			Alerts int    `json:"alerts"`
		} `json:"per_day"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("replay --stats --json = %d\n%s\n%s", code, out, errOut)
	}
	if rep.Alerts != 24 || len(rep.PerDay) != 3 || rep.PerDay[1].Value != "2026-01-05" || rep.PerDay[1].Alerts != 8 {
		t.Errorf("stats = %+v; want 24 alerts, 8 a day over 3 days", rep)
	}
	for _, args := range [][]string{{"--stats"}, {"--rule", lemonDuckID, "--stats", "--resume"}} {
		code, _, errOut = runBin(t, nil, append(append([]string{"replay"}, args...), root)...)
		if code != 2 || !strings.Contains(errOut, "--stats") {
			t.Errorf("replay %v = %d\n%s; want 2 and the reason", args, code, errOut)
		}
	}
}

// TestRulesTestCommand runs the shipped cases, then a cases folder with
// one failing case, and checks the table, the exit status and the JUnit
// file.
func TestRulesTestCommand(t *testing.T) {
	junit := filepath.Join(t.TempDir(), "junit.xml")
	code, out, errOut := runBin(t, nil, "rules", "test", "--junit", junit, "../../testdata/rules-cases")
	if code != 0 || !strings.Contains(out, "0 failed, 0 skipped; 0 loaded rules have no cases") {
		t.Fatalf("rules test of the shipped cases = %d\n%s%s", code, out, errOut)
	}
	x, err := os.ReadFile(junit)
	if err != nil || !bytes.Contains(x, []byte(`failures="0"`)) {
		t.Errorf("JUnit file: %v\n%s", err, x)
	}

	cases := t.TempDir()
	nomatch := filepath.Join(cases, lemonDuckID, "nomatch")
	if err := os.MkdirAll(nomatch, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := traffic.Render(nil, traffic.Request{IP: "198.51.100.7", Method: "GET", Host: "shop.example.com", URI: "/", UA: "Lemon-Duck-abc-XYZ", Status: 200, Time: lpBase, RayID: "8f00000000000001"})
	if err := os.WriteFile(filepath.Join(nomatch, "not-really.ndjson"), append(rec, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runBin(t, nil, "rules", "test", "--junit", junit, cases)
	if code != 1 || !strings.Contains(out, "FAIL    Lemon Duck User-Agent  nomatch/not-really.ndjson") || !strings.Contains(out, "raised 1 alert(s), the first on record 1") {
		t.Errorf("rules test with a failing case = %d; want 1 and the case named\n%s%s", code, out, errOut)
	}
	x, _ = os.ReadFile(junit)
	for _, want := range []string{`<testsuites name="raywatch rules test" tests="1" failures="1"`, `<testcase name="nomatch/not-really.ndjson" classname="` + lemonDuckID + `"`, `<failure message="raised 1 alert(s), the first on record 1"`} {
		if !bytes.Contains(x, []byte(want)) {
			t.Errorf("JUnit file lacks %s:\n%s", want, x)
		}
	}
}
