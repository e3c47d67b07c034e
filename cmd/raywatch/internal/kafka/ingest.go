package kafka

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// Ingest consumes Logpush records from Kafka as a member of a consumer
// group: poll, detect (through the pipeline), commit the alerts to the
// store (and publish them), then commit the offsets. With
// BlockRebalanceOnPoll no rebalance happens between a poll and its offset
// commit, so a member that loses partitions has committed everything it
// processed; a member that dies before its commit leaves its records to be
// delivered again, which the deterministic alert IDs and the store's
// record marks make harmless. Its fields are set before use.
type Ingest struct {
	Pipeline *pipeline.Pipeline
	Store    pipeline.Committer
	Hub      pipeline.Publisher
	// Publish, if set, produces the alerts to the alerts topic before the
	// store commit.
	Publish  func(ctx context.Context, alerts []alert.Alert) error
	Log      *slog.Logger
	PMetrics *pipeline.Metrics
	KMetrics *Metrics
	// MaxBytes bounds a message once gunzipped.
	MaxBytes int64
	// Datasets maps a topic to the dataset of its records, for messages
	// without a "dataset" header.
	Datasets map[string]string
	// beforeCommit, when set (tests), runs between the alert commit and
	// the offset commit; an error stops the consumer there, as a crash
	// would.
	beforeCommit func() error
}

// process detects on a poll's messages and commits their alerts and
// rejects to the store in one transaction.
func (k *Ingest) process(ctx context.Context, recs []*kgo.Record) error {
	res, err := k.detect(ctx, recs)
	if err != nil {
		return err
	}
	if k.Publish != nil && len(res.Alerts) > 0 {
		if err := k.Publish(ctx, res.Alerts); err != nil {
			return err
		}
	}
	changed, err := k.Store.Commit(ctx, store.Batch{Alerts: res.Alerts, Rejects: res.Rejects})
	if err != nil {
		return err
	}
	k.Hub.Publish(changed)
	k.KMetrics.messages.WithLabelValues("records").Add(float64(len(recs)))
	k.PMetrics.Records.Add(float64(res.Records))
	k.PMetrics.Malformed.Add(float64(res.Malformed))
	k.PMetrics.CountFields(&res)
	if res.Malformed > 0 {
		k.Log.Warn("malformed records in kafka messages", "messages", len(recs), "records", res.Records, "malformed", res.Malformed, "first_errors", res.Errors)
	}
	if res.FieldRecords > 0 {
		k.Log.Warn("fields left out of records in kafka messages; the records were processed without them", "messages", len(recs),
			"records", res.FieldRecords, "first_errors", res.FieldMessages)
	}
	if k.beforeCommit != nil {
		if err := k.beforeCommit(); err != nil {
			return fmt.Errorf("%w: %v", errStopped, err)
		}
	}
	return nil
}

// detect runs a poll's messages through the pipeline, each message a
// batch: one record, or an NDJSON (or JSON array) batch, gzip'd or not.
func (k *Ingest) detect(ctx context.Context, recs []*kgo.Record) (pipeline.Tally, error) {
	var t pipeline.Tally
	err := k.Pipeline.Run(ctx, &messages{k: k, recs: recs}, func(_ context.Context, c *pipeline.Chunk) error {
		t.Add(c)
		return nil
	})
	return t, err
}

// messages is a pipeline source of Kafka messages.
type messages struct {
	k    *Ingest
	recs []*kgo.Record
	next int
}

func (s *messages) Next(context.Context) (*pipeline.Batch, error) {
	if s.next >= len(s.recs) {
		return nil, io.EOF
	}
	m := s.recs[s.next]
	s.next++
	// The message's timestamp stands in for a missing event time, so that
	// a redelivery computes the same alerts.
	b := &pipeline.Batch{
		ID: fmt.Sprintf("kafka:%s/%d/%d", m.Topic, m.Partition, m.Offset), Intake: m.Topic,
		Dataset: s.k.Datasets[m.Topic], Received: m.Timestamp.UTC(), MaxBytes: s.k.MaxBytes, Value: m,
	}
	for _, h := range m.Headers {
		switch strings.ToLower(h.Key) {
		case "dataset":
			b.Dataset = string(h.Value)
		case "intake", "zone":
			b.Intake = string(h.Value)
		case "content-encoding":
			b.Gzip = b.Gzip || strings.EqualFold(string(h.Value), "gzip")
		}
	}
	if err := pipeline.ValidDataset(b.Dataset); err != nil {
		err = fmt.Errorf("header dataset: %w", err)
		b.Open = func() (io.ReadCloser, error) { return nil, err }
		return b, nil
	}
	b.Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(m.Value)), nil }
	return b, nil
}
