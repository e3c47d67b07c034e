package kafka

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/kafka/kafkatest"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/web"
)

// testPipeline returns a pipeline of the built-in rules.
func testPipeline(t *testing.T, workers int) *pipeline.Pipeline {
	t.Helper()
	rs, _, err := engine.LoadRules("")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.NewWithOptions(rs, engine.Options{MaxGroups: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.New(pipeline.Options{
		Detector: &pipeline.Detector{Normalizer: normalize.New(normalize.Options{}), Engine: eng, Dataset: "auto"},
		Workers:  workers, MaxLineBytes: 1 << 20, MaxRecords: 1 << 20,
	})
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

// wantAlertKeys returns "rule|record key" of every alert the records
// should raise, computed by one detector outside Kafka.
func wantAlertKeys(t *testing.T, raws [][]byte) map[string]int {
	t.Helper()
	d := testPipeline(t, 1).Options().Detector
	var ev normalize.Event
	want := map[string]int{}
	for _, raw := range raws {
		as, err := d.Detect(&ev, "", raw, "logs", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			want[a.Rule.ID+"|"+a.RecordKey]++
		}
	}
	if len(want) == 0 {
		t.Fatal("the test traffic raises no alert")
	}
	return want
}

// testMember is one raywatch engine in a consumer group, in process.
type testMember struct {
	name     string
	st       *store.Store
	in       *Ingest
	assigned atomic.Int32
	stop     context.CancelFunc
	done     chan struct{}
	prod     *alertProducer
}

// startMember starts an engine consuming "logs" in group, with its own
// store; with publish it produces its alerts to "alerts". beforeCommit is
// the crash hook of kafkaIngest.
func startMember(t *testing.T, name string, brokers []string, group string, publish bool, beforeCommit func() error) *testMember {
	t.Helper()
	kc := Config{Brokers: brokers, AlertsTopic: "alerts"}
	st, err := store.Open(filepath.Join(t.TempDir(), "alerts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	km := NewMetrics(reg)
	hub := runHub(t)
	m := &testMember{name: name, st: st, done: make(chan struct{})}
	m.in = &Ingest{
		Pipeline: testPipeline(t, 2), Store: st, Hub: hub,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), PMetrics: pipeline.NewMetrics(reg), KMetrics: km,
		MaxBytes: 64 << 20, Datasets: map[string]string{"logs": "http_requests"}, beforeCommit: beforeCommit,
	}
	if publish {
		if m.prod, err = newAlertProducer(kc, km); err != nil {
			t.Fatal(err)
		}
		m.in.Publish = m.prod.Publish
	}
	cl, err := newConsumer(kc, group, []string{"logs"},
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { m.assigned.Add(int32(len(a["logs"]))) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.assigned.Add(-int32(len(r["logs"]))) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() {
		consumeLoop(ctx, context.Background(), cl, 50, m.in.Log, km, m.in.process)
		close(m.done)
	}()
	t.Cleanup(func() {
		m.stop()
		<-m.done
		if m.prod != nil {
			m.prod.Close()
		}
		st.Close()
	})
	return m
}

func runHub(t *testing.T) *web.Hub {
	hub := web.NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return hub
}

func (m *testMember) records() int { return int(testutil.ToFloat64(m.in.PMetrics.Records)) }

// storedKeys returns "rule|record key" of the alerts in st with their
// counts (the store does not group in these tests, so each is 1).
func storedKeys(t *testing.T, st *store.Store, into map[string]int) {
	t.Helper()
	cursor := ""
	for {
		as, next, err := st.List(context.Background(), store.Query{Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			into[a.Rule.ID+"|"+a.RecordKey] += a.Count
		}
		if next == "" {
			return
		}
		cursor = next
	}
}

// TestKafkaGroupSplitsAndRebalances runs two engines in one consumer
// group: the second joins mid-stream (a rebalance while the first is
// busy). Together they read every record once and raise every alert once.
func TestKafkaGroupSplitsAndRebalances(t *testing.T) {
	brokers := kafkatest.NewCluster(t)
	first, raws1 := kafkatest.Messages(t, 0, 30)
	second, raws2 := kafkatest.Messages(t, 30, 60)
	want := wantAlertKeys(t, append(raws1, raws2...))

	a := startMember(t, "a", brokers, "workers", false, nil)
	waitFor(t, 30*time.Second, func() bool { return a.assigned.Load() == kafkatest.Partitions }, "a owns every partition")
	kafkatest.Produce(t, brokers, first)
	waitFor(t, 30*time.Second, func() bool { return a.records() > 0 }, "a processes records")
	b := startMember(t, "b", brokers, "workers", false, nil)
	waitFor(t, 30*time.Second, func() bool { return a.assigned.Load() > 0 && b.assigned.Load() > 0 }, "the partitions split between a and b")
	if got := a.assigned.Load() + b.assigned.Load(); got != kafkatest.Partitions {
		t.Errorf("a and b own %d partitions; want %d", got, kafkatest.Partitions)
	}
	kafkatest.Produce(t, brokers, second)
	total := len(raws1) + len(raws2)
	waitFor(t, 60*time.Second, func() bool { return kafkatest.CaughtUp(t, brokers, "workers", "logs") }, "every record processed and committed")

	if a.records()+b.records() != total {
		t.Errorf("records processed: a %d + b %d; want %d in all (none twice)", a.records(), b.records(), total)
	}
	if b.records() == 0 {
		t.Error("b processed no record")
	}
	got := map[string]int{}
	storedKeys(t, a.st, got)
	storedKeys(t, b.st, got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts of a and b (-want +got):\n%s", diff)
	}
	t.Logf("records: a %d, b %d; alerts %d", a.records(), b.records(), len(got))
}

// TestKafkaMemberDiesMidStream stops one engine between its alert commit
// (and publication) and its offset commit, as a crash there would. Its
// records are delivered again to the other engine; the dashboard that
// consumes the alerts topic still holds every alert exactly once.
func TestKafkaMemberDiesMidStream(t *testing.T) {
	brokers := kafkatest.NewCluster(t)
	msgs, raws := kafkatest.Messages(t, 0, 60)
	want := wantAlertKeys(t, raws)

	var polls atomic.Int32
	crash := func() error {
		if polls.Add(1) == 3 {
			return errors.New("killed")
		}
		return nil
	}
	a := startMember(t, "a", brokers, "workers", true, crash)
	b := startMember(t, "b", brokers, "workers", true, nil)
	waitFor(t, 30*time.Second, func() bool {
		return a.assigned.Load() > 0 && b.assigned.Load() > 0 && a.assigned.Load()+b.assigned.Load() == kafkatest.Partitions
	}, "the partitions split between a and b")

	dash, dashMetrics := startDashboard(t, brokers)
	kafkatest.Produce(t, brokers, msgs)
	waitFor(t, 30*time.Second, func() bool {
		select {
		case <-a.done:
			return true
		default:
			return false
		}
	}, "a stops before its third offset commit")
	waitFor(t, 60*time.Second, func() bool {
		return b.assigned.Load() == kafkatest.Partitions && kafkatest.CaughtUp(t, brokers, "workers", "logs")
	}, "b takes over and processes the rest")
	if a.records()+b.records() == len(raws) {
		t.Errorf("no record was delivered twice (a %d, b %d): the crash did not happen between the alert and offset commits", a.records(), b.records())
	}
	published := func() float64 {
		return testutil.ToFloat64(a.in.KMetrics.published) + testutil.ToFloat64(b.in.KMetrics.published)
	}
	waitFor(t, 60*time.Second, func() bool { return kafkatest.CaughtUp(t, brokers, "dashboard", "alerts") }, "the dashboard reads every published alert")
	if got := testutil.ToFloat64(dashMetrics.messages.WithLabelValues("alerts")); got != published() {
		t.Errorf("the dashboard read %v alerts; %v were published", got, published())
	}
	got := map[string]int{}
	storedKeys(t, dash, got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts on the dashboard (-want +got):\n%s", diff)
	}
	t.Logf("records: a %d, b %d (%d distinct); alerts published %v, %d distinct", a.records(), b.records(), len(raws), published(), len(got))
}

// startDashboard consumes "alerts" into a store of its own, as
// --alerts-from-kafka does.
func startDashboard(t *testing.T, brokers []string) (*store.Store, *Metrics) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "dash.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	km := NewMetrics(prometheus.NewRegistry())
	a := &alertIngest{store: st, hub: runHub(t), log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: km}
	cl, err := newConsumer(Config{Brokers: brokers}, "dashboard", []string{"alerts"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { consumeLoop(ctx, context.Background(), cl, 1000, a.log, km, a.process); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return st, km
}

// TestKafkaMessageForms checks one message of each form: a single record,
// an NDJSON batch, a gzip'd batch, a JSON array, the validation probe, a
// bad dataset header and damaged gzip.
func TestKafkaMessageForms(t *testing.T) {
	in := &Ingest{Pipeline: testPipeline(t, 2), MaxBytes: 1 << 20}
	rec := string(traffic.Sequence(1, 3)) // Lemon Duck
	batch := traffic.SequenceBatch(2, 14, 0)
	tests := []struct {
		name          string
		value         []byte
		headers       map[string]string
		records, bad  int
		alerts        int
		wantRejectsub string
	}{
		{"one record", []byte(rec), nil, 1, 0, 1, ""},
		{"ndjson batch", batch, nil, 14, 0, 3, ""},
		{"gzip batch", kafkatest.Gzip(t, batch), nil, 14, 0, 3, ""},
		{"json array", []byte("[" + rec + "," + string(traffic.Sequence(1, 4)) + "]"), nil, 2, 0, 1, ""},
		{"probe", []byte(`{"content":"tests"}`), nil, 0, 0, 0, ""},
		{"dataset header", []byte(rec), map[string]string{"dataset": "http_requests", "intake": "zone-a"}, 1, 0, 1, ""},
		{"bad dataset header", []byte(rec), map[string]string{"dataset": "nope"}, 0, 1, 0, "header dataset"},
		{"damaged gzip", []byte{0x1f, 0x8b, 1, 2, 3}, nil, 0, 1, 0, "gzip"},
		{"not json", []byte("hello"), nil, 1, 1, 0, "not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &kgo.Record{Topic: "logs", Value: tt.value, Timestamp: time.Unix(1795500000, 0)}
			for k, v := range tt.headers {
				m.Headers = append(m.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
			res, err := in.detect(context.Background(), []*kgo.Record{m})
			if err != nil {
				t.Fatal(err)
			}
			if res.Records != tt.records || res.Malformed != tt.bad || len(res.Alerts) != tt.alerts {
				t.Errorf("message = %d records, %d malformed, %d alerts; want %d, %d, %d (rejects %+v)",
					res.Records, res.Malformed, len(res.Alerts), tt.records, tt.bad, tt.alerts, res.Rejects)
			}
			if tt.wantRejectsub != "" && (len(res.Rejects) == 0 || !strings.Contains(res.Rejects[0].Reason, tt.wantRejectsub)) {
				t.Errorf("rejects = %+v; want a reason with %q", res.Rejects, tt.wantRejectsub)
			}
		})
	}
}
