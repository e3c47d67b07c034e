package notify

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// recorder is an extra Output that takes high alerts, fails its first
// sends as told, and records what it delivered.
type recorder struct {
	mu    sync.Mutex
	fails []error
	got   []string // alert id and kind of each delivery
	calls int
}

func (r *recorder) Name() string                { return "block" }
func (r *recorder) Type() string                { return "block" }
func (r *recorder) Target() string              { return "list rw_block" }
func (r *recorder) MinLevel() string            { return "high" }
func (r *recorder) Accepts(a *alert.Alert) bool { return a.Rule.Level == "high" }

func (r *recorder) Send(ctx context.Context, ds []Delivery) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if len(r.fails) > 0 {
		err := r.fails[0]
		r.fails = r.fails[1:]
		return 0, err
	}
	for _, d := range ds {
		r.got = append(r.got, d.Alert.ID+" "+d.Job.Kind)
	}
	return len(ds), nil
}

func (r *recorder) delivered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func TestExtraOutput(t *testing.T) {
	rec := &recorder{fails: []error{RetryLater(errors.New("rate-limited"), 20*time.Millisecond), errors.New("list busy"), Permanent(errors.New("refused"))}}
	o := testOptions(Options{Extra: []Output{rec}}, nil)
	st := openStoreWith(t, []string{"block"})
	base := slotStart()
	high := hit(base.Add(time.Second), "r-high", keyN(1), "203.0.113.7")
	low := hit(base.Add(time.Second), "r-low", keyN(2), "203.0.113.8")
	low.Rule.Level = "low"
	refused := hit(base.Add(time.Second), "r-high2", keyN(3), "203.0.113.9")
	commit(t, st, refused)
	d := start(t, o, st)
	waitFor(t, "the refused delivery to fail", func() bool { return outputStatus(t, d, "block").Failed == 1 })
	stored := commit(t, st, high, low)
	d.Wake()
	want := []string{stored[0].ID}
	waitFor(t, "the high alert's delivery", func() bool { return len(rec.delivered()) == 1 })
	waitFor(t, "an empty queue and the delivery counted", func() bool {
		s := outputStatus(t, d, "block")
		return s.Queue == 0 && s.Delivered == 1
	})
	if got := rec.delivered(); !cmp.Equal([]string{want[0] + " alert.new"}, got) {
		t.Errorf("delivered %v; want the high alert once, new", got)
	}
	s := outputStatus(t, d, "block")
	if s.Type != "block" || s.Target != "list rw_block" || s.MinLevel != "high" || s.Delivered != 1 || s.Retried != 2 || s.State != "ok" {
		t.Errorf("status = %+v; want type block, target, min level high, 1 delivered, 2 retried, ok", s)
	}
}

func TestExtraOutputNameClash(t *testing.T) {
	rec := &recorder{}
	st := openStoreWith(t, nil)
	if _, err := New(Options{SyslogAddr: "udp://127.0.0.1:514", Extra: []Output{&clash{rec}}}, st.Outbox(), st); err == nil {
		t.Errorf("New accepted an extra output named like a native one")
	}
}

type clash struct{ *recorder }

func (clash) Name() string { return TypeSyslog }

// openStoreWith opens a temporary store whose outbox has outputs.
func openStoreWith(t *testing.T, outputs []string) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "alerts.db"), store.Options{Timeout: time.Second, GroupWindow: window, Outputs: outputs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
