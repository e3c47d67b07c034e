// Package kafkatest holds the helpers of raywatch's Kafka tests: an
// in-process cluster, the test traffic as messages, a producer and a check
// that a consumer group has caught up.
package kafkatest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
)

// Partitions is the partition count of the test topics.
const Partitions = 4

// NewCluster starts an in-process Kafka cluster with the topics "logs" and
// "alerts", closed when the test ends.
func NewCluster(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(Partitions, "logs", "alerts")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// Gzip compresses b.
func Gzip(t testing.TB, b []byte) []byte {
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

// Messages returns the test traffic (traffic.SequenceBatch from to to) as
// Kafka messages of topic "logs": batches of 40 records, one batch in
// three as one gzip'd NDJSON message with a dataset header, the others as
// one message per record (the dataset then comes from the topic mapping).
// It also returns every record.
func Messages(t testing.TB, from, to int) ([]*kgo.Record, [][]byte) {
	t.Helper()
	var msgs []*kgo.Record
	var raws [][]byte
	for b := from; b < to; b++ {
		body := traffic.SequenceBatch(b, 40, 0)
		key := []byte(fmt.Sprint(b))
		for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			raws = append(raws, []byte(line))
			if b%3 != 0 {
				msgs = append(msgs, &kgo.Record{Topic: "logs", Key: key, Value: []byte(line)})
			}
		}
		if b%3 == 0 {
			msgs = append(msgs, &kgo.Record{Topic: "logs", Key: key, Value: Gzip(t, body),
				Headers: []kgo.RecordHeader{{Key: "dataset", Value: []byte("http_requests")}}})
		}
	}
	return msgs, raws
}

// Produce writes msgs to the cluster.
func Produce(t testing.TB, brokers []string, msgs []*kgo.Record, opts ...kgo.Opt) {
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

// CaughtUp reports whether group has committed the end offset of every
// partition of topic: every message is processed and will not be read
// again.
func CaughtUp(t testing.TB, brokers []string, group, topic string, opts ...kgo.Opt) bool {
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
