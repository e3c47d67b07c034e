package kafka

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/rules/alert"
)

// Deps are what the Kafka side of serve works with.
type Deps struct {
	Pipeline *pipeline.Pipeline
	Store    pipeline.Committer
	Hub      pipeline.Publisher
	Metrics  *pipeline.Metrics
	// MaxBytes bounds a message once gunzipped.
	MaxBytes int64
}

// Run is the Kafka side of serve: the alert producer and the record and
// alert consumers. A nil *Run (Kafka off) does nothing.
type Run struct {
	producer *alertProducer
	stopPoll context.CancelFunc
	stopWork context.CancelFunc
	wg       sync.WaitGroup
}

// Start starts what k asks for: a producer of alerts, a consumer of record
// topics and a consumer of the alerts topic, registering the metrics with
// reg. It returns nil, nil when Kafka is off. The caller calls Shutdown,
// then Close.
func Start(k Config, d Deps, reg prometheus.Registerer, log *slog.Logger) (*Run, error) {
	if !k.Enabled() {
		return nil, nil
	}
	log = log.With("component", "kafka")
	m := NewMetrics(reg)
	r := &Run{}
	pollCtx, stopPoll := context.WithCancel(context.Background())
	workCtx, stopWork := context.WithCancel(context.Background())
	r.stopPoll, r.stopWork = stopPoll, stopWork
	if k.AlertsTopic != "" {
		prod, err := newAlertProducer(k, m)
		if err != nil {
			return nil, err
		}
		r.producer = prod
	}
	if len(k.Topics) > 0 {
		cl, err := newConsumer(k, k.Group, k.Topics)
		if err != nil {
			r.Close()
			return nil, err
		}
		in := &Ingest{
			Pipeline: d.Pipeline, Store: d.Store, Hub: d.Hub, Publish: r.AlertsOut(),
			Log: log, PMetrics: d.Metrics, KMetrics: m, MaxBytes: d.MaxBytes, Datasets: k.TopicDatasets,
		}
		r.wg.Go(func() { consumeLoop(pollCtx, workCtx, cl, k.MaxPoll, log, m, in.process) })
		log.Info("consuming records from kafka", "brokers", strings.Join(k.Brokers, ","), "topics", strings.Join(k.Topics, ","), "group", k.Group)
	}
	if k.AlertsFromKafka {
		cl, err := newConsumer(k, k.AlertsGroup, []string{k.AlertsTopic})
		if err != nil {
			r.Shutdown(context.Background())
			r.Close()
			return nil, err
		}
		a := &alertIngest{store: d.Store, hub: d.Hub, log: log, metrics: m}
		r.wg.Go(func() { consumeLoop(pollCtx, workCtx, cl, 5000, log, m, a.process) })
		log.Info("consuming alerts from kafka", "topic", k.AlertsTopic, "group", k.AlertsGroup)
	}
	if r.producer != nil {
		log.Info("publishing alerts to kafka", "topic", k.AlertsTopic)
	}
	return r, nil
}

// AlertsOut returns the function that publishes alerts to the alerts
// topic, or nil when there is none; it is safe for concurrent use.
func (r *Run) AlertsOut() func(ctx context.Context, alerts []alert.Alert) error {
	if r == nil || r.producer == nil {
		return nil
	}
	return r.producer.Publish
}

// Shutdown stops polling and waits for the consumers to finish the
// messages in hand and commit their offsets, or for ctx to end (the
// messages are then read again after a restart or by another member).
func (r *Run) Shutdown(ctx context.Context) {
	if r == nil {
		return
	}
	r.stopPoll()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.stopWork()
		<-done
	}
	r.stopWork()
}

// Close closes the producer; call it after Shutdown, once nothing
// publishes any more.
func (r *Run) Close() {
	if r == nil {
		return
	}
	if r.producer != nil {
		r.producer.Close()
	}
}
