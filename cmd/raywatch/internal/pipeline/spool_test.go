package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

type nopHub struct{}

func (nopHub) Publish([]alert.Alert) {}

// archived is what a SpoolWorker's Archive received.
type archived struct {
	mu     sync.Mutex
	bodies map[string][]byte
	// spooled says whether the batch's spool file was still there when
	// it was archived.
	spooled map[string]bool
}

// spoolFixture is a store and a spool in a temporary folder, and a
// SpoolWorker over them that archives into a.
func spoolFixture(t *testing.T, a *archived) (*store.Store, *store.Spool, *SpoolWorker) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "alerts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sp, err := store.OpenSpool(store.SpoolOptions{Dir: filepath.Join(dir, "spool"), Done: st.BatchDone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	a.bodies, a.spooled = map[string][]byte{}, map[string]bool{}
	spoolDir := filepath.Join(dir, "spool")
	w := &SpoolWorker{
		Pipeline: testPipeline(Options{Workers: 2}), Spool: sp, Store: st, Hub: nopHub{},
		Log: slog.New(slog.DiscardHandler), Metrics: NewMetrics(prometheus.NewRegistry()),
		Archive: func(b *store.SpooledBatch, body io.Reader) error {
			data, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			files, _ := filepath.Glob(filepath.Join(spoolDir, "*"))
			a.mu.Lock()
			a.bodies[b.ID] = data
			a.spooled[b.ID] = len(files) > 0
			a.mu.Unlock()
			return nil
		},
	}
	return st, sp, w
}

// spoolBatch spools body (as received) under id.
func spoolBatch(t *testing.T, sp *store.Spool, id string, body []byte) {
	t.Helper()
	sw, err := sp.Begin("default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Write(body); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Commit(id, bytes.Count(body, []byte("\n"))); err != nil {
		t.Fatal(err)
	}
}

// spoolEmpty reports whether no batch file is left in the spool folder.
func spoolEmpty(t *testing.T, sp *store.Spool) bool {
	t.Helper()
	n, _ := sp.Stats()
	return n == 0
}

// TestSpoolWorkerArchives checks that each processed batch is archived
// with its body as received, after its alerts are committed and before it
// leaves the spool; and that a batch committed before a crash but still
// in the spool is archived at the next start, not lost to the archive.
func TestSpoolWorkerArchives(t *testing.T) {
	var a archived
	st, sp, w := spoolFixture(t, &a)
	body := gz(t, traffic.SequenceBatch(0, 20, 0))
	spoolBatch(t, sp, "b1", body)
	// b2 was committed to the store, then raywatch died before removing
	// it from the spool.
	crashed := gz(t, traffic.SequenceBatch(1, 5, 0))
	spoolBatch(t, sp, "b2", crashed)
	if _, err := st.Commit(context.Background(), store.Batch{ID: "b2"}); err != nil {
		t.Fatal(err)
	}
	sp.Drain()
	w.Run(context.Background())

	a.mu.Lock()
	defer a.mu.Unlock()
	if !bytes.Equal(a.bodies["b1"], body) || !bytes.Equal(a.bodies["b2"], crashed) {
		t.Errorf("archived bodies differ from the batches as received (b1 %d bytes, b2 %d bytes)", len(a.bodies["b1"]), len(a.bodies["b2"]))
	}
	if !a.spooled["b1"] || !a.spooled["b2"] {
		t.Errorf("a batch left the spool before it was archived: %v", a.spooled)
	}
	if done, err := st.BatchDone("b1"); err != nil || !done {
		t.Errorf("BatchDone(b1) = %v, %v; want the batch committed", done, err)
	}
	if !spoolEmpty(t, sp) {
		t.Error("archived batches are still in the spool")
	}
}

// TestSpoolWorkerArchiveFails checks that a batch whose archiving fails
// is processed and leaves the spool all the same.
func TestSpoolWorkerArchiveFails(t *testing.T) {
	var a archived
	st, sp, w := spoolFixture(t, &a)
	w.Archive = func(*store.SpooledBatch, io.Reader) error { return errors.New("disk full") }
	spoolBatch(t, sp, "b1", traffic.SequenceBatch(0, 14, 0))
	sp.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w.Run(ctx)
	if done, err := st.BatchDone("b1"); err != nil || !done {
		t.Errorf("BatchDone(b1) = %v, %v; want the batch committed despite the archive", done, err)
	}
	if !spoolEmpty(t, sp) {
		t.Error("a batch whose archiving failed stayed in the spool")
	}
}
