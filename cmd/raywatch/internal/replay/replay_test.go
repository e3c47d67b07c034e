package replay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/replay"
	"github.com/raywatch/raywatch/normalize"
)

func TestParseName(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name       string
		start, end time.Time
		ok         bool
	}{
		{"20260105T120000Z_20260105T120500Z_abc123.log.gz", at("2026-01-05T12:00:00Z"), at("2026-01-05T12:05:00Z"), true},
		{"logs/20260105/20260105T235930Z_20260106T000030Z_f00d.log.gz", at("2026-01-05T23:59:30Z"), at("2026-01-06T00:00:30Z"), true},
		{"20260105T120000Z_20260105T120500Z.log.gz", at("2026-01-05T12:00:00Z"), at("2026-01-05T12:05:00Z"), true},
		{"20260105T120500Z_20260105T120000Z_abc.log.gz", time.Time{}, time.Time{}, false}, // ends before it starts
		{"batch.ndjson.gz", time.Time{}, time.Time{}, false},
		{"2026-01-05_2026-01-06_x.log.gz", time.Time{}, time.Time{}, false},
		{"20260105T120000Z_x.log.gz", time.Time{}, time.Time{}, false},
	}
	for _, tt := range tests {
		start, end, ok := replay.ParseName(tt.name)
		if ok != tt.ok || !start.Equal(tt.start) || !end.Equal(tt.end) {
			t.Errorf("ParseName(%q) = %v, %v, %v; want %v, %v, %v", tt.name, start, end, ok, tt.start, tt.end, tt.ok)
		}
	}
}

func TestRangeContains(t *testing.T) {
	from := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	r := replay.Range{From: from, To: to}
	tests := []struct {
		t    time.Time
		want bool
	}{
		{from, true},
		{to, true},
		{from.Add(-time.Nanosecond), false},
		{to.Add(time.Nanosecond), false},
		{time.Time{}, true}, // a record without a time is kept
	}
	for _, tt := range tests {
		if got := r.Contains(tt.t); got != tt.want {
			t.Errorf("Range.Contains(%v) = %v; want %v", tt.t, got, tt.want)
		}
	}
	if got := (replay.Range{}).Contains(from); !got {
		t.Error("the zero Range does not contain a time")
	}
	if err := (replay.Range{From: to, To: from}).Validate(); err == nil {
		t.Error("Validate of a range ending before it starts = nil; want an error")
	}
}

// base is the start of the generated archive: three days of objects.
var base = time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC)

// archiveObject is one generated Logpush object.
type archiveObject struct {
	key     string // path below the archive root
	records []string
	body    []byte // gzip'd
}

// logpushRecord returns an http_requests record at t.
func logpushRecord(t time.Time, n int) string {
	return fmt.Sprintf(`{"ClientIP":"198.51.100.%d","ClientRequestHost":"shop.example.com","ClientRequestMethod":"GET","ClientRequestURI":"/p/%d","ClientRequestUserAgent":"Mozilla/5.0","EdgeStartTimestamp":%d,"EdgeEndTimestamp":%d,"EdgeResponseStatus":200,"RayID":"%016x"}`,
		n%250+1, n, t.UnixNano(), t.Add(20*time.Millisecond).UnixNano(), t.UnixNano()+int64(n))
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeArchive builds days daily folders, each of perDay objects of
// 3 records spread over 6 hours (one object every 6h, 5 minutes long),
// under the prefix "logs/", plus an object without a Logpush name and an
// ownership-challenge file.
func makeArchive(t testing.TB, days, perDay int) []archiveObject {
	t.Helper()
	var out []archiveObject
	n := 0
	for d := range days {
		for o := range perDay {
			start := base.Add(time.Duration(d)*24*time.Hour + time.Duration(o)*6*time.Hour)
			end := start.Add(5 * time.Minute)
			obj := archiveObject{key: fmt.Sprintf("logs/%s/%s_%s_%08x.log.gz", start.Format("20060102"), start.Format("20060102T150405Z"), end.Format("20060102T150405Z"), n)}
			for r := range 3 {
				obj.records = append(obj.records, logpushRecord(start.Add(time.Duration(r)*time.Minute), n))
				n++
			}
			obj.body = gzipBytes(t, []byte(strings.Join(obj.records, "\n")+"\n"))
			out = append(out, obj)
		}
	}
	extra := archiveObject{key: "logs/manual/batch.ndjson", records: []string{logpushRecord(base.Add(30*time.Hour), n)}}
	extra.body = []byte(extra.records[0] + "\n")
	out = append(out, extra)
	out = append(out, archiveObject{key: "logs/ownership-challenge-1a2b3c.txt", body: []byte("eyJhbGciOi...")})
	return out
}

func writeFolder(t testing.TB, objs []archiveObject) string {
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

// collector records what Run hands to fn.
type collector struct {
	objects []string
	records []string
}

func (c *collector) fn(plan *replay.Plan) func(replay.Object, io.Reader) error {
	return func(obj replay.Object, r io.Reader) error {
		c.objects = append(c.objects, obj.Name)
		return normalize.Split(r, normalize.SplitOptions{}, func(_ int, raw []byte) error {
			c.records = append(c.records, string(raw))
			plan.AddRecords(1)
			return nil
		})
	}
}

// rangeDay2 is 2026-01-05 06:00 to 12:02: it meets the objects of that
// day starting at 06:00 and 12:00 only.
var rangeDay2 = replay.Range{From: base.Add(30 * time.Hour), To: base.Add(36*time.Hour + 2*time.Minute)}

// wantInRange lists the keys of objs that a replay of rng reads.
func wantInRange(objs []archiveObject, rng replay.Range) []string {
	var keys []string
	for _, o := range objs {
		if strings.Contains(o.key, "ownership-challenge") {
			continue
		}
		if start, end, ok := replay.ParseName(o.key); ok && (!rng.From.IsZero() && end.Before(rng.From) || !rng.To.IsZero() && start.After(rng.To)) {
			continue
		}
		keys = append(keys, o.key)
	}
	slices.Sort(keys)
	return keys
}

func TestReplayFolder(t *testing.T) {
	objs := makeArchive(t, 3, 4)
	root := writeFolder(t, objs)
	ctx := context.Background()
	plan, err := replay.Open(ctx, []string{root}, replay.Options{Range: rangeDay2})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	var want []string
	for _, k := range wantInRange(objs, rangeDay2) {
		want = append(want, filepath.Join(root, filepath.FromSlash(k)))
	}
	var got []string
	for _, o := range plan.Objects() {
		got = append(got, o.Name)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Objects() (-want +got):\n%s", diff)
	}
	var progress []replay.Progress
	var mu sync.Mutex
	plan2, err := replay.Open(ctx, []string{root}, replay.Options{Range: rangeDay2, Progress: func(p replay.Progress) {
		mu.Lock()
		progress = append(progress, p)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer plan2.Close()
	var c collector
	if err := plan2.Run(ctx, c.fn(plan2)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff(want, c.objects); diff != "" {
		t.Errorf("objects read (-want +got):\n%s", diff)
	}
	// Every record of the objects read, in object then record order.
	var wantRecords []string
	byKey := map[string]archiveObject{}
	for _, o := range objs {
		byKey[o.key] = o
	}
	for _, k := range wantInRange(objs, rangeDay2) {
		wantRecords = append(wantRecords, byKey[k].records...)
	}
	if diff := cmp.Diff(wantRecords, c.records); diff != "" {
		t.Errorf("records read (-want +got):\n%s", diff)
	}
	mu.Lock()
	last := progress[len(progress)-1]
	mu.Unlock()
	if last.Objects != len(want) || last.ObjectsTotal != len(want) || last.Records != int64(len(wantRecords)) || last.Bytes != last.BytesTotal || last.Failed != 0 {
		t.Errorf("last progress = %+v; want %d/%d objects, %d records, all bytes", last, len(want), len(want), len(wantRecords))
	}
	// 4 objects of 2026-01-04, 2 of 2026-01-05 and 4 of 2026-01-06 are
	// pruned by their names.
	if got := plan2.Pruned(); got != 10 {
		t.Errorf("Pruned() = %d; want 10", got)
	}
}

// counting wraps an S3 server and counts its requests.
type counting struct {
	h    http.Handler
	mu   sync.Mutex
	gets map[string]int // GET object by path
	list []string       // the prefixes listed
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if r.Method == http.MethodGet {
		if r.URL.Query().Has("list-type") || r.URL.Query().Has("prefix") || r.URL.Query().Has("delimiter") {
			c.list = append(c.list, r.URL.Query().Get("prefix"))
		} else {
			c.gets[r.URL.Path]++
		}
	}
	c.mu.Unlock()
	c.h.ServeHTTP(w, r)
}

// s3Server serves objs in bucket "cf-logs" with gofakes3 and points the
// AWS SDK's environment at it.
func s3Server(t *testing.T, objs []archiveObject) *counting {
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
	c := &counting{h: gofakes3.New(backend).Server(), gets: map[string]int{}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_REGION", "auto")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	return c
}

func TestReplayS3(t *testing.T) {
	objs := makeArchive(t, 3, 4)
	srv := s3Server(t, objs)
	ctx := context.Background()
	// The endpoint comes from AWS_ENDPOINT_URL, as the SDK reads it.
	tmp := t.TempDir()
	plan, err := replay.Open(ctx, []string{"s3://cf-logs/logs"}, replay.Options{Range: rangeDay2, Workers: 3, TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	var c collector
	if err := plan.Run(ctx, c.fn(plan)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var want []string
	for _, k := range wantInRange(objs, rangeDay2) {
		want = append(want, "s3://cf-logs/"+k)
	}
	if diff := cmp.Diff(want, c.objects); diff != "" {
		t.Errorf("objects read (-want +got):\n%s", diff)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, o := range objs {
		inRange := slices.Contains(want, "s3://cf-logs/"+o.key)
		if got := srv.gets["/cf-logs/"+o.key]; inRange && got != 1 || !inRange && got != 0 {
			t.Errorf("GET %s %d times; want %d", o.key, got, map[bool]int{true: 1, false: 0}[inRange])
		}
	}
	// No day folder more than a day away from the range was listed.
	for _, p := range srv.list {
		if strings.HasPrefix(p, "logs/2026010") && p != "logs/20260104/" && p != "logs/20260105/" && p != "logs/20260106/" {
			t.Errorf("listed %q", p)
		}
	}
	if len(srv.gets) != len(want) {
		t.Errorf("GET %d objects; want %d: %v", len(srv.gets), len(want), srv.gets)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("%d temporary files left behind, %s first", len(entries), entries[0].Name())
	}
}

func TestReplayDayFolders(t *testing.T) {
	// Seven days; a range of one day in the middle reads only that day's
	// folder and its neighbours', and fetches nothing else.
	objs := makeArchive(t, 7, 2)
	rng := replay.Range{From: base.Add(3 * 24 * time.Hour), To: base.Add(4*24*time.Hour - time.Second)}
	for _, where := range []string{"folder", "s3"} {
		t.Run(where, func(t *testing.T) {
			source, opts := "", replay.Options{Range: rng}
			var srv *counting
			if where == "folder" {
				source = writeFolder(t, objs)
			} else {
				srv = s3Server(t, objs)
				source, opts.S3Endpoint = "s3://cf-logs/logs/", os.Getenv("AWS_ENDPOINT_URL")
			}
			plan, err := replay.Open(context.Background(), []string{source}, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer plan.Close()
			if got, want := plan.Pruned(), 4+4; got != want { // 4 day folders, 2+2 objects of the neighbour days
				t.Errorf("Pruned() = %d; want %d", got, want)
			}
			if got := len(plan.Objects()); got != 3 {
				t.Errorf("%d objects planned; want the day's 2 and the unnamed one", got)
			}
			if srv == nil {
				return
			}
			srv.mu.Lock()
			listed := slices.Clone(srv.list)
			srv.mu.Unlock()
			want := []string{"logs/", "logs/20260106/", "logs/20260107/", "logs/20260108/", "logs/manual/"}
			slices.Sort(listed)
			if diff := cmp.Diff(want, listed); diff != "" {
				t.Errorf("prefixes listed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReplayResume(t *testing.T) {
	objs := makeArchive(t, 1, 4)
	root := writeFolder(t, objs)
	statePath := replay.StatePath(t.TempDir(), replay.StateKey([]string{root}, replay.Range{}))
	opts := replay.Options{StateFile: statePath, StateKey: replay.StateKey([]string{root}, replay.Range{})}
	ctx, cancel := context.WithCancel(context.Background())
	plan, err := replay.Open(ctx, []string{root}, opts)
	if err != nil {
		t.Fatal(err)
	}
	var first collector
	read := first.fn(plan)
	err = plan.Run(ctx, func(obj replay.Object, r io.Reader) error {
		if len(first.objects) == 2 {
			cancel() // interrupted while reading the third object
			return ctx.Err()
		}
		return read(obj, r)
	})
	plan.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Run = %v; want context.Canceled", err)
	}
	all := wantInRange(objs, replay.Range{})
	opts.Resume = true
	plan, err = replay.Open(context.Background(), []string{root}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Resumed(); got != 2 {
		t.Errorf("Resumed() = %d; want 2", got)
	}
	var second collector
	if err := plan.Run(context.Background(), second.fn(plan)); err != nil {
		t.Fatal(err)
	}
	plan.Close()
	var want []string
	for _, k := range all[2:] {
		want = append(want, filepath.Join(root, filepath.FromSlash(k)))
	}
	if diff := cmp.Diff(want, second.objects); diff != "" {
		t.Errorf("resumed run read (-want +got):\n%s", diff)
	}
	if got := len(first.records) + len(second.records); got != 4*3+1 {
		t.Errorf("both runs read %d records; want %d, each once", got, 4*3+1)
	}

	// Resumed once more: nothing is left.
	plan, err = replay.Open(context.Background(), []string{root}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(plan.Objects()); n != 0 {
		t.Errorf("after a complete run, resume plans %d objects; want 0", n)
	}
	plan.Close()

	// Other arguments: the state is refused.
	other := opts
	other.StateKey = replay.StateKey([]string{root}, replay.Range{From: base})
	if _, err := replay.Open(context.Background(), []string{root}, other); err == nil || !strings.Contains(err.Error(), "other arguments") {
		t.Errorf("resume with other arguments: err = %v; want one saying so", err)
	}
	// Without --resume it starts over.
	opts.Resume = false
	plan, err = replay.Open(context.Background(), []string{root}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(plan.Objects()); n != len(all) {
		t.Errorf("without resume, %d objects planned; want %d", n, len(all))
	}
	plan.Close()
}

func TestReplayResumeAfterTornWrite(t *testing.T) {
	objs := makeArchive(t, 1, 2)
	root := writeFolder(t, objs)
	key := replay.StateKey([]string{root}, replay.Range{})
	path := filepath.Join(t.TempDir(), "state")
	plan, err := replay.Open(context.Background(), []string{root}, replay.Options{StateFile: path, StateKey: key})
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	if err := plan.Run(context.Background(), c.fn(plan)); err != nil {
		t.Fatal(err)
	}
	plan.Close()
	// A kill in the middle of writing the last line.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:len(data)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	plan, err = replay.Open(context.Background(), []string{root}, replay.Options{StateFile: path, StateKey: key, Resume: true})
	if err != nil {
		t.Fatalf("resume after a torn write: %v", err)
	}
	if got := len(plan.Objects()); got != 1 {
		t.Errorf("%d objects left; want the 1 whose line was torn", got)
	}
	if err := plan.Run(context.Background(), c.fn(plan)); err != nil {
		t.Fatal(err)
	}
	plan.Close()
	plan, err = replay.Open(context.Background(), []string{root}, replay.Options{StateFile: path, StateKey: key, Resume: true})
	if err != nil {
		t.Fatalf("resume after repair: %v", err)
	}
	if got := len(plan.Objects()); got != 0 {
		t.Errorf("%d objects left after the repaired run; want 0", got)
	}
	plan.Close()
}

func TestReplayStateRefusesOtherFile(t *testing.T) {
	root := writeFolder(t, makeArchive(t, 1, 1))
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("my notes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Open(context.Background(), []string{root}, replay.Options{StateFile: path, StateKey: "k"}); err == nil {
		t.Fatal("Open with a state file that is something else = nil error; want a refusal")
	}
	if b, _ := os.ReadFile(path); string(b) != "my notes\n" {
		t.Errorf("the file was overwritten: %q", b)
	}
}

func TestReplayTruncatedObject(t *testing.T) {
	for _, where := range []string{"folder", "s3"} {
		t.Run(where, func(t *testing.T) {
			objs := makeArchive(t, 1, 3)
			// The second object loses the end of its gzip stream.
			bad := &objs[1]
			bad.body = bad.body[:len(bad.body)*2/3]
			source := "s3://cf-logs/logs/"
			if where == "folder" {
				source = writeFolder(t, objs)
			} else {
				s3Server(t, objs)
			}
			var reported []string
			stateFile := filepath.Join(t.TempDir(), "state")
			plan, err := replay.Open(context.Background(), []string{source}, replay.Options{
				TempDir: t.TempDir(), StateFile: stateFile, StateKey: "k",
				OnObjectError: func(obj replay.Object, err error) {
					reported = append(reported, obj.Name+": "+err.Error())
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer plan.Close()
			var c collector
			if err := plan.Run(context.Background(), c.fn(plan)); err != nil {
				t.Fatalf("Run = %v; want nil (a truncated object does not stop the replay)", err)
			}
			if len(reported) != 1 || !strings.Contains(reported[0], filepath.Base(bad.key)) || !strings.Contains(reported[0], "unexpected EOF") {
				t.Errorf("reported %q; want one error naming %s and unexpected EOF", reported, bad.key)
			}
			if f := plan.Failures(); len(f) != 1 || !f[0].Finished {
				t.Errorf("Failures() = %v; want the truncated object, finished", f)
			}
			// The other objects were read whole, after the bad one too.
			for _, o := range []archiveObject{objs[0], objs[2], objs[3]} {
				for _, rec := range o.records {
					if !slices.Contains(c.records, rec) {
						t.Errorf("record of %s not read: %s", o.key, rec)
					}
				}
			}
			if len(c.objects) != 4 {
				t.Errorf("read %d objects; want 4", len(c.objects))
			}
		})
	}
}

func TestReplayFatalError(t *testing.T) {
	root := writeFolder(t, makeArchive(t, 1, 3))
	plan, err := replay.Open(context.Background(), []string{root}, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	boom := errors.New("stdout closed")
	calls := 0
	err = plan.Run(context.Background(), func(replay.Object, io.Reader) error {
		calls++
		return boom
	})
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("Run = %v after %d calls; want fn's own error after 1", err, calls)
	}
}

func TestStateKey(t *testing.T) {
	a := replay.StateKey([]string{"s3://b/p"}, replay.Range{From: base}, "rules=/r")
	for _, other := range []string{
		replay.StateKey([]string{"s3://b/p"}, replay.Range{From: base}, "rules=/s"),
		replay.StateKey([]string{"s3://b/p"}, replay.Range{From: base.Add(time.Second)}, "rules=/r"),
		replay.StateKey([]string{"s3://b/p", "x"}, replay.Range{From: base}, "rules=/r"),
		replay.StateKey([]string{"s3://b/prules=/r"}, replay.Range{From: base}),
	} {
		if other == a {
			t.Errorf("StateKey collides for different arguments: %s", a)
		}
	}
	if b := replay.StateKey([]string{"s3://b/p"}, replay.Range{From: base}, "rules=/r"); b != a {
		t.Errorf("StateKey is not deterministic: %s, %s", a, b)
	}
}

// BenchmarkReplayFolder measures replay's own read path from a folder of
// Logpush objects: listing, gunzip and splitting into records (detection
// is the caller's and is not included).
func BenchmarkReplayFolder(b *testing.B) {
	var objs []archiveObject
	n := 0
	for o := range 20 {
		start := base.Add(time.Duration(o) * 5 * time.Minute)
		obj := archiveObject{key: fmt.Sprintf("logs/%s/%s_%s_%08x.log.gz", start.Format("20060102"), start.Format("20060102T150405Z"), start.Add(5*time.Minute).Format("20060102T150405Z"), o)}
		var raw strings.Builder
		for r := range 2000 {
			raw.WriteString(logpushRecord(start.Add(time.Duration(r)*100*time.Millisecond), n))
			raw.WriteByte('\n')
			n++
		}
		obj.body = gzipBytes(b, []byte(raw.String()))
		objs = append(objs, obj)
	}
	root := writeFolder(b, objs)
	b.ResetTimer()
	var records int
	for b.Loop() {
		plan, err := replay.Open(context.Background(), []string{root}, replay.Options{})
		if err != nil {
			b.Fatal(err)
		}
		err = plan.Run(context.Background(), func(_ replay.Object, r io.Reader) error {
			return normalize.Split(r, normalize.SplitOptions{}, func(int, []byte) error { records++; return nil })
		})
		plan.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
