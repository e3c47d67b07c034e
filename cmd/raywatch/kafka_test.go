package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/kafka/kafkatest"
)

// TestKafkaServeRoundTrip runs the binary twice against a cluster that
// requires SASL SCRAM: a worker that consumes "logs" and also takes a batch
// on its HTTP intake, publishing every alert to "alerts", and a dashboard
// that consumes "alerts". The dashboard ends up with the worker's alerts,
// the same ids and counts.
func TestKafkaServeRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	brokers := kafkatest.NewCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "raywatch", "kafka-secret-0123"))
	env := []string{
		"RAYWATCH_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"RAYWATCH_KAFKA_SASL=scram-sha-256", "RAYWATCH_KAFKA_USERNAME=raywatch", "RAYWATCH_KAFKA_PASSWORD=kafka-secret-0123",
		"RAYWATCH_ALERTS_TOPIC=alerts",
	}
	const key = "kafka-intake-key-0123456789"
	worker := startServe(t, t.TempDir(), append(env, "RAYWATCH_KAFKA_TOPIC=logs", "RAYWATCH_KAFKA_TOPIC_DATASETS=logs=http_requests", "RAYWATCH_INTAKE_KEY="+key)...)
	dash := startServe(t, t.TempDir(), append(env, "RAYWATCH_ALERTS_FROM_KAFKA=1")...)

	msgs, _ := kafkatest.Messages(t, 0, 6)
	auth := kgo.SASL(scram.Auth{User: "raywatch", Pass: "kafka-secret-0123"}.AsSha256Mechanism())
	kafkatest.Produce(t, brokers, msgs, auth)
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
		done = intakes["logs"] && intakes["default"] && cmp.Equal(want, counts(dash.base)) && kafkatest.CaughtUp(t, brokers, "raywatch", "logs", auth)
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
