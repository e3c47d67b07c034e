package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/web"
)

// kafkaPartitions is the partition count of the test topics.
const kafkaPartitions = 4

// newKafkaCluster starts an in-process Kafka cluster with the topics
// "logs" and "alerts".
func newKafkaCluster(t *testing.T, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(kafkaPartitions, "logs", "alerts")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// kafkaMessages returns the test traffic as Kafka messages: batches of 40
// records, one batch in three as one gzip'd NDJSON message with a dataset
// header, the others as one message per record (the dataset then comes
// from the topic mapping). It also returns every record.
func kafkaMessages(t *testing.T, from, to int) ([]*kgo.Record, [][]byte) {
	t.Helper()
	var msgs []*kgo.Record
	var raws [][]byte
	for b := from; b < to; b++ {
		body := genBatch(b, 40, 0)
		key := []byte(fmt.Sprint(b))
		for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			raws = append(raws, []byte(line))
			if b%3 != 0 {
				msgs = append(msgs, &kgo.Record{Topic: "logs", Key: key, Value: []byte(line)})
			}
		}
		if b%3 == 0 {
			msgs = append(msgs, &kgo.Record{Topic: "logs", Key: key, Value: gzipBytes(t, body),
				Headers: []kgo.RecordHeader{{Key: "dataset", Value: []byte("http_requests")}}})
		}
	}
	return msgs, raws
}

// wantAlertKeys returns "rule|record key" of every alert the records
// should raise, computed by one detector outside Kafka.
func wantAlertKeys(t *testing.T, raws [][]byte) map[string]int {
	t.Helper()
	eng, _, err := newEngine(Config{MaxGroups: 1000})
	if err != nil {
		t.Fatal(err)
	}
	d := detector{norm: normalize.New(normalize.Options{}), eng: eng, dataset: "auto"}
	var ev normalize.Event
	want := map[string]int{}
	for _, raw := range raws {
		as, err := d.detectRecord(&ev, "", raw, "logs", time.Now())
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

func produce(t *testing.T, brokers []string, msgs []*kgo.Record, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), msgs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// caughtUp reports whether group has committed the end offset of every
// partition of topic: every message is processed and will not be read
// again.
func caughtUp(t *testing.T, brokers []string, group, topic string, opts ...kgo.Opt) bool {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		c, found := committed.Lookup(topic, o.Partition)
		if o.Offset > 0 && (!found || c.At < o.Offset) {
			ok = false
		}
	})
	return ok
}

// testMember is one raywatch engine in a consumer group, in process.
type testMember struct {
	name     string
	st       *store.Store
	in       *kafkaIngest
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
	kc := KafkaConfig{Brokers: brokers, AlertsTopic: "alerts"}
	st, err := store.Open(filepath.Join(t.TempDir(), "alerts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, _, err := newEngine(Config{MaxGroups: 1000})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	km := newKafkaMetrics(reg)
	hub := runHub(t)
	m := &testMember{name: name, st: st, done: make(chan struct{})}
	m.in = &kafkaIngest{
		det: detector{norm: normalize.New(normalize.Options{}), eng: eng, dataset: "auto"}, store: st, hub: hub,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), pmetrics: newPipelineMetrics(reg), kmetrics: km,
		workers: 2, maxPoll: 50, maxLine: 1 << 20, maxRecords: 1 << 20, maxBytes: 64 << 20,
		datasets: map[string]string{"logs": "http_requests"}, beforeCommit: beforeCommit,
	}
	if publish {
		if m.prod, err = newAlertProducer(kc, km); err != nil {
			t.Fatal(err)
		}
		m.in.publish = m.prod.Publish
	}
	cl, err := newKafkaConsumer(kc, group, []string{"logs"},
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { m.assigned.Add(int32(len(a["logs"]))) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { m.assigned.Add(-int32(len(r["logs"]))) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() {
		consumeLoop(ctx, context.Background(), cl, m.in.maxPoll, m.in.log, km, m.in.process)
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

func (m *testMember) records() int { return int(testutil.ToFloat64(m.in.pmetrics.records)) }

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
	brokers := newKafkaCluster(t)
	first, raws1 := kafkaMessages(t, 0, 30)
	second, raws2 := kafkaMessages(t, 30, 60)
	want := wantAlertKeys(t, append(raws1, raws2...))

	a := startMember(t, "a", brokers, "workers", false, nil)
	waitFor(t, 30*time.Second, func() bool { return a.assigned.Load() == kafkaPartitions }, "a owns every partition")
	produce(t, brokers, first)
	waitFor(t, 30*time.Second, func() bool { return a.records() > 0 }, "a processes records")
	b := startMember(t, "b", brokers, "workers", false, nil)
	waitFor(t, 30*time.Second, func() bool { return a.assigned.Load() > 0 && b.assigned.Load() > 0 }, "the partitions split between a and b")
	if got := a.assigned.Load() + b.assigned.Load(); got != kafkaPartitions {
		t.Errorf("a and b own %d partitions; want %d", got, kafkaPartitions)
	}
	produce(t, brokers, second)
	total := len(raws1) + len(raws2)
	waitFor(t, 60*time.Second, func() bool { return caughtUp(t, brokers, "workers", "logs") }, "every record processed and committed")

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
	brokers := newKafkaCluster(t)
	msgs, raws := kafkaMessages(t, 0, 60)
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
		return a.assigned.Load() > 0 && b.assigned.Load() > 0 && a.assigned.Load()+b.assigned.Load() == kafkaPartitions
	}, "the partitions split between a and b")

	dash, dashMetrics := startDashboard(t, brokers)
	produce(t, brokers, msgs)
	waitFor(t, 30*time.Second, func() bool {
		select {
		case <-a.done:
			return true
		default:
			return false
		}
	}, "a stops before its third offset commit")
	waitFor(t, 60*time.Second, func() bool {
		return b.assigned.Load() == kafkaPartitions && caughtUp(t, brokers, "workers", "logs")
	}, "b takes over and processes the rest")
	if a.records()+b.records() == len(raws) {
		t.Errorf("no record was delivered twice (a %d, b %d): the crash did not happen between the alert and offset commits", a.records(), b.records())
	}
	published := func() float64 {
		return testutil.ToFloat64(a.in.kmetrics.published) + testutil.ToFloat64(b.in.kmetrics.published)
	}
	waitFor(t, 60*time.Second, func() bool { return caughtUp(t, brokers, "dashboard", "alerts") }, "the dashboard reads every published alert")
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
func startDashboard(t *testing.T, brokers []string) (*store.Store, *kafkaMetrics) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "dash.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	km := newKafkaMetrics(prometheus.NewRegistry())
	a := &alertIngest{store: st, hub: runHub(t), log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: km}
	cl, err := newKafkaConsumer(KafkaConfig{Brokers: brokers}, "dashboard", []string{"alerts"})
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
	eng, _, err := newEngine(Config{MaxGroups: 1000})
	if err != nil {
		t.Fatal(err)
	}
	in := &kafkaIngest{
		det:     detector{norm: normalize.New(normalize.Options{}), eng: eng, dataset: "auto"},
		maxLine: 1 << 20, maxRecords: 1 << 20, maxBytes: 1 << 20,
	}
	rec := genRecord(1, 3) // Lemon Duck
	batch := genBatch(2, 14, 0)
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
		{"gzip batch", gzipBytes(t, batch), nil, 14, 0, 3, ""},
		{"json array", []byte("[" + rec + "," + genRecord(1, 4) + "]"), nil, 2, 0, 1, ""},
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
			var ev normalize.Event
			res := in.message(context.Background(), &ev, m)
			if res.records != tt.records || res.malformed != tt.bad || len(res.alerts) != tt.alerts {
				t.Errorf("message = %d records, %d malformed, %d alerts; want %d, %d, %d (rejects %+v)",
					res.records, res.malformed, len(res.alerts), tt.records, tt.bad, tt.alerts, res.rejects)
			}
			if tt.wantRejectsub != "" && (len(res.rejects) == 0 || !strings.Contains(res.rejects[0].Reason, tt.wantRejectsub)) {
				t.Errorf("rejects = %+v; want a reason with %q", res.rejects, tt.wantRejectsub)
			}
		})
	}
}

// TestKafkaConfig checks the flags, the environment and validation.
func TestKafkaConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"off", nil, ""},
		{"records", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k1:9092, k2:9092", "RAYWATCH_KAFKA_TOPIC": "logs"}, ""},
		{"topic without brokers", map[string]string{"RAYWATCH_KAFKA_TOPIC": "logs"}, "need --kafka-brokers"},
		{"scram", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "logs", "RAYWATCH_KAFKA_SASL": "scram-sha-512", "RAYWATCH_KAFKA_USERNAME": "u", "RAYWATCH_KAFKA_PASSWORD": "p"}, ""},
		{"scram without password", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "logs", "RAYWATCH_KAFKA_SASL": "scram-sha-256"}, "RAYWATCH_KAFKA_PASSWORD"},
		{"bad sasl", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "logs", "RAYWATCH_KAFKA_SASL": "kerberos"}, "want plain"},
		{"bad mapping", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "logs", "RAYWATCH_KAFKA_TOPIC_DATASETS": "logs=nope"}, "--kafka-topic-datasets logs"},
		{"dashboard", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_ALERTS_TOPIC": "alerts", "RAYWATCH_ALERTS_FROM_KAFKA": "1"}, ""},
		{"alerts topic is a record topic", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "a,b", "RAYWATCH_ALERTS_TOPIC": "b"}, "also a record topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := getenv
			getenv = func(k string) string { return tt.env[k] }
			defer func() { getenv = old }()
			var c Config
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			c.serveFlags(fs)
			if err := fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			err := c.loadSecrets()
			if err == nil {
				err = c.Validate()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v; want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestKafkaServeRoundTrip runs the binary twice against a cluster that
// requires SASL SCRAM: a worker that consumes "logs" and also takes a batch
// on its HTTP intake, publishing every alert to "alerts", and a dashboard
// that consumes "alerts". The dashboard ends up with the worker's alerts,
// the same ids and counts.
func TestKafkaServeRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	brokers := newKafkaCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "raywatch", "kafka-secret-0123"))
	env := []string{
		"RAYWATCH_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"RAYWATCH_KAFKA_SASL=scram-sha-256", "RAYWATCH_KAFKA_USERNAME=raywatch", "RAYWATCH_KAFKA_PASSWORD=kafka-secret-0123",
		"RAYWATCH_ALERTS_TOPIC=alerts",
	}
	const key = "kafka-intake-key-0123456789"
	worker := startServe(t, t.TempDir(), append(env, "RAYWATCH_KAFKA_TOPIC=logs", "RAYWATCH_KAFKA_TOPIC_DATASETS=logs=http_requests", "RAYWATCH_INTAKE_KEY="+key)...)
	dash := startServe(t, t.TempDir(), append(env, "RAYWATCH_ALERTS_FROM_KAFKA=1")...)

	msgs, _ := kafkaMessages(t, 0, 6)
	auth := kgo.SASL(scram.Auth{User: "raywatch", Pass: "kafka-secret-0123"}.AsSha256Mechanism())
	produce(t, brokers, msgs, auth)
	if status, body, err := tryPost(worker.base, key, gzipBytes(t, genBatch(100, 50, 0))); err != nil || status != 200 {
		t.Fatalf("POST = %d %s %v", status, body, err)
	}
	counts := func(base string) map[string]int {
		out := map[string]int{}
		for _, a := range allAlerts(t, base, "") {
			out[a.ID+" "+a.Intake] = a.Count
		}
		return out
	}
	var want map[string]int
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond) // poll the condition
	defer tick.Stop()
	for done := false; !done; <-tick.C {
		want = counts(worker.base)
		intakes := map[string]bool{}
		for k := range want {
			intakes[k[strings.IndexByte(k, ' ')+1:]] = true
		}
		done = intakes["logs"] && intakes["default"] && cmp.Equal(want, counts(dash.base)) && caughtUp(t, brokers, "raywatch", "logs", auth)
		if !done && time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the dashboard to show the worker's alerts, from Kafka and from its intake\nworker: %d alerts\n%s\ndashboard: %d alerts\n%s",
				len(want), worker.log(), len(counts(dash.base)), dash.log())
		}
	}
	want = counts(worker.base)
	if diff := cmp.Diff(want, counts(dash.base)); diff != "" {
		t.Errorf("dashboard alerts (-worker +dashboard):\n%s", diff)
	}
	for _, in := range []*instance{worker, dash} {
		if code := in.stop(); code != 0 {
			t.Errorf("exit = %d\n%s", code, in.log())
		}
	}
	if strings.Contains(worker.log()+dash.log(), "kafka-secret-0123") {
		t.Error("the SASL password is in the log")
	}
}
