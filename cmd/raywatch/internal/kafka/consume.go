package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// newConsumer returns a group consumer of topics for k's brokers.
func newConsumer(k Config, group string, topics []string, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := k.clientOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	return cl, nil
}

// errStopped is returned by the consumers' process step when it stopped
// before committing on purpose.
var errStopped = errors.New("stopped before the offset commit")

// consumeLoop polls cl until pollCtx ends, calling process on each
// non-empty poll and committing the offsets after it succeeds. work is the
// context of processing: a poll already taken is finished unless work ends
// too. A failed process is retried every second (holding the partitions:
// if the group moves them meanwhile the commit fails and their new owner
// reads the records again). cl is closed when consumeLoop returns.
func consumeLoop(pollCtx, work context.Context, cl *kgo.Client, maxPoll int, log *slog.Logger, m *Metrics, process func(context.Context, []*kgo.Record) error) {
	defer cl.Close()
	for {
		fetches := cl.PollRecords(pollCtx, maxPoll)
		if fetches.IsClientClosed() || pollCtx.Err() != nil {
			cl.AllowRebalance()
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			log.Warn("kafka fetch", "topic", topic, "partition", p, "err", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			continue
		}
		for {
			err := process(work, recs)
			if err == nil {
				break
			}
			if errors.Is(err, errStopped) || work.Err() != nil {
				cl.AllowRebalance()
				return
			}
			log.Error("kafka records not processed; will retry", "records", len(recs), "err", err)
			select {
			case <-work.Done():
				cl.AllowRebalance()
				return
			case <-time.After(time.Second):
			}
		}
		if err := cl.CommitRecords(work, recs...); err != nil {
			m.commits.WithLabelValues("error").Inc()
			log.Warn("kafka offset commit failed: the records will be read again", "err", err)
		} else {
			m.commits.WithLabelValues("ok").Inc()
		}
		cl.AllowRebalance()
	}
}

// alertIngest consumes the alerts topic into the local store and dashboard
// hub: the one dashboard of N detection workers. Alerts are the workers'
// per-record alerts; the store groups them and counts each record once, so
// an alert delivered twice (a worker that died before its offset commit, a
// rebalance) changes nothing the second time.
type alertIngest struct {
	store   pipeline.Committer
	hub     pipeline.Publisher
	log     *slog.Logger
	metrics *Metrics
}

func (a *alertIngest) process(ctx context.Context, recs []*kgo.Record) error {
	alerts := make([]alert.Alert, 0, len(recs))
	for _, m := range recs {
		var al alert.Alert
		d := json.NewDecoder(bytes.NewReader(m.Value))
		d.UseNumber()
		if err := d.Decode(&al); err != nil || al.ID == "" || al.Rule.ID == "" {
			// Not ours: skip it rather than block the topic.
			a.log.Warn("skipping a message of the alerts topic that is not an alert", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
			continue
		}
		alerts = append(alerts, al)
	}
	changed, err := a.store.Commit(ctx, store.Batch{Alerts: alerts})
	if err != nil {
		return err
	}
	a.hub.Publish(changed)
	a.metrics.messages.WithLabelValues("alerts").Add(float64(len(recs)))
	return nil
}
