package archive_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/store/archive"
)

var t0 = time.Date(2026, 1, 5, 10, 59, 0, 123456789, time.UTC)

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func open(t *testing.T, opts archive.Options) *archive.Archive {
	t.Helper()
	a, err := archive.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func scanAll(t *testing.T, a *archive.Archive, since time.Time) (names, bodies []string) {
	t.Helper()
	err := a.Scan(context.Background(), since, func(obj archive.Object, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%s: %w", obj.Name, err)
		}
		names = append(names, obj.Name)
		bodies = append(bodies, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names, bodies
}

func TestPutScan(t *testing.T) {
	dir := t.TempDir()
	a := open(t, archive.Options{Dir: dir})
	gzBody := gz(t, "{\"n\":1}\n")
	// Put out of order; Scan reads in received order.
	o2, err := a.Put(t0.Add(2*time.Hour), "zone_a/b", "b2", bytes.NewReader(gzBody))
	if err != nil {
		t.Fatal(err)
	}
	o1, err := a.Put(t0, "default", "b1", strings.NewReader("{\"n\":0}\n")) // plain: gzip'd on the way
	if err != nil {
		t.Fatal(err)
	}
	if want := "20260105/10/20260105T105900.123456789Z_default_b1.ndjson.gz"; o1.Name != want {
		t.Errorf("object name = %s; want %s", o1.Name, want)
	}
	// The gzip'd body is kept byte for byte.
	stored, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(o2.Name)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, gzBody) {
		t.Error("a gzip'd batch was not stored as received")
	}
	names, bodies := scanAll(t, a, time.Time{})
	if diff := cmp.Diff([]string{o1.Name, o2.Name}, names); diff != "" {
		t.Errorf("Scan order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"{\"n\":0}\n", "{\"n\":1}\n"}, bodies); diff != "" {
		t.Errorf("Scan bodies (-want +got):\n%s", diff)
	}
	if names, _ := scanAll(t, a, t0.Add(time.Hour)); len(names) != 1 || names[0] != o2.Name {
		t.Errorf("Scan since t0+1h = %v; want only %s", names, o2.Name)
	}
	st := a.Stats()
	if want := (archive.Stats{Bytes: o1.Size + o2.Size, Objects: 2, Oldest: o1.Received, Newest: o2.Received}); st != want {
		t.Errorf("Stats() = %+v; want %+v", st, want)
	}
	// Reopened, the archive finds its objects, intake names included.
	b := open(t, archive.Options{Dir: dir})
	if st2 := b.Stats(); st2 != st {
		t.Errorf("reopened Stats() = %+v; want %+v", st2, st)
	}
	objs := b.Objects(time.Time{})
	if len(objs) != 2 || objs[1].Intake != "zone_a/b" || objs[1].BatchID != "b2" || !objs[0].Received.Equal(t0) {
		t.Errorf("reopened objects = %+v", objs)
	}
}

func TestPruneByAge(t *testing.T) {
	now := t0.Add(10 * time.Hour)
	dir := t.TempDir()
	a := open(t, archive.Options{Dir: dir, Retention: 5 * time.Hour, Now: func() time.Time { return now }})
	for h := range 10 {
		if _, err := a.Put(t0.Add(time.Duration(h)*time.Hour), "i", fmt.Sprint(h), strings.NewReader("{}\n")); err != nil {
			t.Fatal(err)
		}
	}
	// Objects received more than 5h before now went as they were put.
	st := a.Stats()
	if st.Objects != 5 || !st.Oldest.Equal(t0.Add(5*time.Hour)) {
		t.Errorf("after puts: %d objects from %v; want 5 from %v", st.Objects, st.Oldest, t0.Add(5*time.Hour))
	}
	now = now.Add(3 * time.Hour)
	if n := a.Prune(); n != 3 {
		t.Errorf("Prune() = %d; want 3", n)
	}
	// Their hour folders went too.
	if _, err := os.Stat(filepath.Join(dir, "20260105", "10")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hour folder of pruned objects still there: %v", err)
	}
	if names, _ := scanAll(t, a, time.Time{}); len(names) != 2 {
		t.Errorf("Scan after prune: %d objects; want 2", len(names))
	}
}

func TestPruneBySize(t *testing.T) {
	dir := t.TempDir()
	body := strings.Repeat("{\"x\":\"0123456789\"}\n", 100)
	a := open(t, archive.Options{Dir: dir})
	o, err := a.Put(t0, "i", "probe", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	limit := 3*o.Size + o.Size/2
	a = open(t, archive.Options{Dir: t.TempDir(), MaxBytes: limit})
	for i := range 6 {
		if _, err := a.Put(t0.Add(time.Duration(i)*time.Minute), "i", fmt.Sprint(i), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	st := a.Stats()
	if st.Objects != 3 || st.Bytes > limit || !st.Oldest.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("Stats() = %+v; want the 3 newest objects within %d bytes", st, limit)
	}
}

func TestOpenCleansInterruptedWrites(t *testing.T) {
	dir := t.TempDir()
	a := open(t, archive.Options{Dir: dir})
	o, err := a.Put(t0, "i", "b", strings.NewReader("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, filepath.Dir(filepath.FromSlash(o.Name)), ".tmp-123")
	if err := os.WriteFile(tmp, []byte("half a batch"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := open(t, archive.Options{Dir: dir})
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file of an interrupted write still there: %v", err)
	}
	if st := b.Stats(); st.Objects != 1 {
		t.Errorf("reopened archive holds %d objects; want 1", st.Objects)
	}
}

func TestScanTruncatedObject(t *testing.T) {
	dir := t.TempDir()
	a := open(t, archive.Options{Dir: dir})
	full := gz(t, strings.Repeat("{\"n\":1}\n", 1000))
	bad, err := a.Put(t0, "i", "bad", bytes.NewReader(full[:len(full)/2]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(t0.Add(time.Minute), "i", "good", bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	var failed []string
	var read int
	err = a.Scan(context.Background(), time.Time{}, func(obj archive.Object, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			failed = append(failed, obj.Name)
			return nil // go on
		}
		read += len(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0] != bad.Name || read != 8000 {
		t.Errorf("failed %v, read %d bytes; want %s failed and 8000 bytes read", failed, read, bad.Name)
	}
}

// TestPutAgain checks that a batch archived twice (after a crash between
// its archiving and its removal from the spool) is one object, counted
// once.
func TestPutAgain(t *testing.T) {
	a := open(t, archive.Options{Dir: t.TempDir()})
	o1, err := a.Put(t0, "i", "b", strings.NewReader("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	o2, err := a.Put(t0, "i", "b", strings.NewReader("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if o1.Name != o2.Name {
		t.Fatalf("names differ: %s, %s", o1.Name, o2.Name)
	}
	if st := a.Stats(); st.Objects != 1 || st.Bytes != o2.Size {
		t.Errorf("Stats() after the same batch twice = %+v; want 1 object of %d bytes", st, o2.Size)
	}
	if names, _ := scanAll(t, a, time.Time{}); len(names) != 1 {
		t.Errorf("Scan read %d objects; want 1", len(names))
	}
}
