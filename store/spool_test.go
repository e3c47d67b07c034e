package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func spoolBatch(t *testing.T, s *Spool, intake, id, body string) bool {
	t.Helper()
	w, err := s.Begin(intake)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, body); err != nil {
		t.Fatal(err)
	}
	dup, err := w.Commit(id, strings.Count(body, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return dup
}

func readAllBatch(t *testing.T, s *Spool, b *SpooledBatch) string {
	t.Helper()
	rc, err := s.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func TestSpoolReplaysInOrderAndForgetsPartials(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	spoolBatch(t, s, "zone-a", "id1", "one\n")
	spoolBatch(t, s, "zone-b", "id2", "two\n")
	if dup := spoolBatch(t, s, "zone-a", "id1", "one\n"); !dup {
		t.Error("same id spooled twice; want duplicate")
	}
	// A batch being received when the process dies.
	w, _ := s.Begin("zone-a")
	io.WriteString(w, "half")
	s.Close()

	s2, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s2.Stats(); n != 2 {
		t.Fatalf("replayed %d batches; want 2", n)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("partial file %s survived the restart", e.Name())
		}
	}
	ctx := context.Background()
	b1, _ := s2.Next(ctx)
	b2, _ := s2.Next(ctx)
	if b1.ID != "id1" || b1.Intake != "zone-a" || b2.ID != "id2" || readAllBatch(t, s2, b1) != "one\n" || b1.Lines != 1 {
		t.Errorf("replayed %+v then %+v; want id1 (zone-a, one) then id2", b1, b2)
	}
	if err := s2.Remove(b1); err != nil {
		t.Fatal(err)
	}
	s2.Drain()
	if _, err := s2.Next(ctx); !errors.Is(err, ErrSpoolClosed) {
		t.Errorf("Next on a drained, empty queue = %v; want ErrSpoolClosed", err)
	}
	if n, _ := s2.Stats(); n != 1 {
		t.Errorf("%d batches left; want 1 (id2 handed out, not removed)", n)
	}
}

func TestSpoolBudget(t *testing.T) {
	s, err := OpenSpool(SpoolOptions{Dir: t.TempDir(), MaxBytes: 4 * headerSize})
	if err != nil {
		t.Fatal(err)
	}
	spoolBatch(t, s, "z", "a", strings.Repeat("x", headerSize))
	w, err := s.Begin("z")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 2*headerSize)); !errors.Is(err, ErrSpoolFull) {
		t.Errorf("write over budget = %v; want ErrSpoolFull", err)
	}
	w.Abort()
	if _, b := s.Stats(); b != 2*headerSize {
		t.Errorf("bytes after abort = %d; want %d", b, 2*headerSize)
	}
}

func TestSpoolSkipsProcessedBatch(t *testing.T) {
	s, err := OpenSpool(SpoolOptions{Dir: t.TempDir(), Done: func(id string) (bool, error) { return id == "old", nil }})
	if err != nil {
		t.Fatal(err)
	}
	if dup := spoolBatch(t, s, "z", "old", "x\n"); !dup {
		t.Error("a processed batch was spooled again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if b, err := s.Next(ctx); err == nil {
		t.Errorf("Next = %+v; want nothing queued", b)
	}
	if entries, _ := os.ReadDir(filepath.Dir(filepath.Join(s.opts.Dir, "x"))); len(entries) != 0 {
		t.Errorf("spool folder holds %d files; want none", len(entries))
	}
}

// TestSpoolKeepsDecodedWithinBudget checks the in-memory copies of
// decompressed bodies: kept while the budget allows, dropped (the file is
// then read) past it, and given back by Remove and Abort.
func TestSpoolKeepsDecodedWithinBudget(t *testing.T) {
	s, err := OpenSpool(SpoolOptions{Dir: t.TempDir(), MaxMemoryBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(id, raw, decoded string) {
		t.Helper()
		w, err := s.Begin("zone")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, raw)
		io.WriteString(w.Decoded(), decoded)
		if _, err := w.Commit(id, 1); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "gz-a", "decoded-a\n") // 10 bytes: the whole budget
	put("b", "gz-b", "decoded-b\n") // over it: read from the file
	ctx := context.Background()
	a, _ := s.Next(ctx)
	b, _ := s.Next(ctx)
	if body, ok := s.Decoded(a); !ok || string(body) != "decoded-a\n" {
		t.Errorf("Decoded(a) = %q, %v; want the copy", body, ok)
	}
	if body, ok := s.Decoded(b); ok {
		t.Errorf("Decoded(b) = %q; want none (over the budget)", body)
	}
	if got := readAllBatch(t, s, b); got != "gz-b" {
		t.Errorf("file of b = %q; want the body as received", got)
	}
	if err := s.Remove(a); err != nil {
		t.Fatal(err)
	}
	// The budget is free again; an aborted batch gives its share back.
	w, _ := s.Begin("zone")
	io.WriteString(w.Decoded(), "0123456789")
	w.Abort()
	put("c", "gz-c", "decoded-c\n")
	c, _ := s.Next(ctx)
	if body, ok := s.Decoded(c); !ok || string(body) != "decoded-c\n" {
		t.Errorf("Decoded(c) = %q, %v; want the copy once the budget is free", body, ok)
	}
	s.Remove(b)
	s.Remove(c)
	s.mu.Lock()
	mem := s.memory
	s.mu.Unlock()
	if mem != 0 {
		t.Errorf("%d bytes of memory still accounted after every batch was removed", mem)
	}
}

// TestSpoolRecyclesDecodedBuffers checks that the buffers of decoded
// copies are reused from batch to batch, and that those kept for reuse
// and those in use stay within MaxMemoryBytes together.
func TestSpoolRecyclesDecodedBuffers(t *testing.T) {
	const budget = 64 << 10
	s, err := OpenSpool(SpoolOptions{Dir: t.TempDir(), MaxMemoryBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	body := strings.Repeat("x", 10<<10) + "\n"
	var seen []*bytes.Buffer
	for round := range 3 {
		// Four batches at once (about 40 KiB of copies), then all removed.
		var bs []*SpooledBatch
		for i := range 4 {
			w, err := s.Begin("zone")
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "gz")
			io.WriteString(w.Decoded(), body)
			if _, err := w.Commit(fmt.Sprintf("r%d-%d", round, i), 1); err != nil {
				t.Fatal(err)
			}
			b, _ := s.Next(ctx)
			if got, ok := s.Decoded(b); !ok || string(got) != body {
				t.Fatalf("round %d batch %d: decoded copy %d bytes, %v; want %d", round, i, len(got), ok, len(body))
			}
			if round == 0 {
				seen = append(seen, b.decoded)
			} else if !slices.Contains(seen, b.decoded) {
				t.Errorf("round %d batch %d: a new buffer; want one of the first round's", round, i)
			}
			bs = append(bs, b)
		}
		for _, b := range bs {
			if err := s.Remove(b); err != nil {
				t.Fatal(err)
			}
		}
		s.mu.Lock()
		kept, mem := s.freeCap, s.memory
		s.mu.Unlock()
		if mem != 0 || kept == 0 || kept > budget {
			t.Errorf("round %d: %d bytes in use, %d kept for reuse; want 0 in use and the kept within %d", round, mem, kept, budget)
		}
	}
}

// TestSpoolStorageErrors plays a full disk at each operation that receives
// a batch: the error matches ErrStorage and the operating system's error,
// names the file for the log, and leaves no partial file and no budget
// taken; once the disk has room again the same batch is accepted.
func TestSpoolStorageErrors(t *testing.T) {
	for _, tc := range []struct {
		op  string
		nth int // the call of op that fails
	}{{"create", 1}, {"write", 1}, {"write", 2}, {"write", 3}, {"sync", 1}, {"close", 1}, {"rename", 1}, {"syncdir", 1}} {
		op := tc.op
		t.Run(fmt.Sprintf("%s-%d", op, tc.nth), func(t *testing.T) {
			dir := t.TempDir()
			var full atomic.Bool
			full.Store(true)
			calls := 0
			s, err := OpenSpool(SpoolOptions{Dir: dir, Fault: func(o, path string) error {
				if o != op || !full.Load() {
					return nil
				}
				if calls++; calls == tc.nth {
					return &os.PathError{Op: o, Path: path, Err: syscall.ENOSPC}
				}
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.Begin("zone")
			if err == nil {
				_, err = io.WriteString(w, "one\n")
				if err == nil {
					_, err = w.Commit("id1", 1)
				}
				w.Abort()
			}
			var se *StorageError
			if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &se) || se.Op != op {
				t.Fatalf("spooling on a full disk: %v; want a StorageError of %s matching ErrStorage and ENOSPC", err, op)
			}
			if !strings.Contains(err.Error(), dir) || strings.Count(err.Error(), dir) != 1 {
				t.Errorf("error %q; want the spool path named once", err)
			}
			if op == "syncdir" {
				// The file is whole and renamed: it stays queued, not
				// acknowledged; a retry is a duplicate.
				if n, _ := s.Stats(); n != 1 {
					t.Errorf("%d batches spooled after a failed folder fsync; want 1", n)
				}
				return
			}
			if n, b := s.Stats(); n != 0 || b != 0 {
				t.Errorf("Stats = %d batches, %d bytes after a failed batch; want 0, 0", n, b)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("spool folder holds %d files after a failed batch; want none", len(entries))
			}
			full.Store(false)
			if dup := spoolBatch(t, s, "zone", "id1", "one\n"); dup {
				t.Error("batch accepted after the disk failure is a duplicate; want it new")
			}
		})
	}
}
