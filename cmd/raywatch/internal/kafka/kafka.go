// Package kafka is raywatch as a member of a consumer group reading Logpush records
// (--kafka-brokers, --kafka-topic, --kafka-group), as a producer of its
// alerts (--alerts-topic), and as the one dashboard that gathers the alerts
// of N workers (--alerts-from-kafka). Cloudflare has no Kafka destination
// (spec/logpush.md §7): a collector or bridge writes the records, one per
// message or a whole gzip'd NDJSON batch per message.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/rules/alert"
)

// Config configures the Kafka consumer group, the alerts topic and the
// dashboard fed from it. Kafka is off when Brokers is empty.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Topics are the topics of Logpush records; empty means raywatch
	// consumes no records from Kafka.
	Topics []string
	// Group is the consumer group of the record topics.
	Group string
	// TopicDatasets maps a topic to the Logpush dataset of its records,
	// used when a message has no "dataset" header.
	TopicDatasets map[string]string
	// MaxPoll bounds the messages processed between two offset commits.
	MaxPoll int
	// AlertsTopic receives every alert as JSON (key: the alert id).
	AlertsTopic string
	// AlertsFromKafka consumes AlertsTopic into the local store and
	// dashboard, in consumer group AlertsGroup.
	AlertsFromKafka bool
	AlertsGroup     string

	// SASL is "", "plain", "scram-sha-256" or "scram-sha-512"; the user
	// and password come from RAYWATCH_KAFKA_USERNAME and
	// RAYWATCH_KAFKA_PASSWORD (or RAYWATCH_KAFKA_PASSWORD_FILE), never
	// from a flag.
	SASL     string
	Username string
	Password string
	// TLS turns TLS on; TLSCA is a PEM bundle of the CAs to trust instead
	// of the system's; TLSCert and TLSKey a client certificate.
	TLS       bool
	TLSCA     string
	TLSCert   string
	TLSKey    string
	TLSServer string
}

// Enabled reports whether raywatch talks to Kafka at all.
func (k *Config) Enabled() bool { return len(k.Brokers) > 0 }

// Validate reports what is wrong with the Kafka configuration, each
// problem naming its flag.
func (k *Config) Validate() []error {
	var errs []error
	if !k.Enabled() {
		if len(k.Topics) > 0 || k.AlertsTopic != "" || k.AlertsFromKafka {
			errs = append(errs, errors.New("--kafka-topic, --alerts-topic and --alerts-from-kafka need --kafka-brokers"))
		}
		return errs
	}
	if len(k.Topics) == 0 && k.AlertsTopic == "" {
		errs = append(errs, errors.New("--kafka-brokers is set but neither --kafka-topic nor --alerts-topic is"))
	}
	if len(k.Topics) > 0 && k.Group == "" {
		errs = append(errs, errors.New("--kafka-topic needs --kafka-group"))
	}
	if k.AlertsFromKafka && (k.AlertsTopic == "" || k.AlertsGroup == "") {
		errs = append(errs, errors.New("--alerts-from-kafka needs --alerts-topic and --alerts-group"))
	}
	if k.AlertsFromKafka && k.AlertsGroup == k.Group && len(k.Topics) > 0 {
		errs = append(errs, errors.New("--alerts-group must differ from --kafka-group"))
	}
	if slices.Contains(k.Topics, k.AlertsTopic) {
		errs = append(errs, fmt.Errorf("--alerts-topic %q is also a record topic", k.AlertsTopic))
	}
	for topic, ds := range k.TopicDatasets {
		if err := pipeline.ValidDataset(ds); err != nil {
			errs = append(errs, fmt.Errorf("--kafka-topic-datasets %s: %w", topic, err))
		}
	}
	if k.MaxPoll < 1 {
		errs = append(errs, errors.New("--kafka-max-poll must be at least 1"))
	}
	switch strings.ToLower(k.SASL) {
	case "":
	case "plain", "scram-sha-256", "scram-sha-512":
		if k.Username == "" || k.Password == "" {
			errs = append(errs, fmt.Errorf("--kafka-sasl %s needs RAYWATCH_KAFKA_USERNAME and RAYWATCH_KAFKA_PASSWORD", k.SASL))
		}
	default:
		errs = append(errs, fmt.Errorf("--kafka-sasl %q: want plain, scram-sha-256 or scram-sha-512", k.SASL))
	}
	if (k.TLSCert == "") != (k.TLSKey == "") {
		errs = append(errs, errors.New("--kafka-tls-cert and --kafka-tls-key go together"))
	}
	return errs
}

// clientOpts returns the connection options shared by every Kafka client:
// brokers, SASL and TLS.
func (k *Config) clientOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	var mech sasl.Mechanism
	switch strings.ToLower(k.SASL) {
	case "plain":
		mech = plain.Auth{User: k.Username, Pass: k.Password}.AsMechanism()
	case "scram-sha-256":
		mech = scram.Auth{User: k.Username, Pass: k.Password}.AsSha256Mechanism()
	case "scram-sha-512":
		mech = scram.Auth{User: k.Username, Pass: k.Password}.AsSha512Mechanism()
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	if k.TLS || k.TLSCA != "" || k.TLSCert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: k.TLSServer}
		if k.TLSCA != "" {
			pem, err := os.ReadFile(k.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("--kafka-tls-ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--kafka-tls-ca %s: no PEM certificate in it", k.TLSCA)
			}
		}
		if k.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(k.TLSCert, k.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("--kafka-tls-cert: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

// Metrics count what the Kafka consumers and the producer did.
type Metrics struct {
	messages  *prometheus.CounterVec // by consumer (records, alerts)
	commits   *prometheus.CounterVec // by result
	published prometheus.Counter
}

// NewMetrics registers the Kafka metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_kafka_messages_total",
			Help: "Kafka messages processed, by consumer (records or alerts).",
		}, []string{"consumer"}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_kafka_offset_commits_total",
			Help: "Kafka offset commits, by result (ok, error).",
		}, []string{"result"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_kafka_alerts_published_total",
			Help: "Alerts produced to --alerts-topic.",
		}),
	}
	reg.MustRegister(m.messages, m.commits, m.published)
	return m
}

// alertProducer publishes alerts to the alerts topic.
type alertProducer struct {
	cl      *kgo.Client
	topic   string
	metrics *Metrics
}

// newAlertProducer connects a producer for k.AlertsTopic. The caller
// closes it.
func newAlertProducer(k Config, m *Metrics) (*alertProducer, error) {
	opts, err := k.clientOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.DefaultProduceTopic(k.AlertsTopic), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(8<<20), kgo.MaxBufferedRecords(1<<16))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &alertProducer{cl: cl, topic: k.AlertsTopic, metrics: m}, nil
}

// Publish produces alerts (per-record alerts, as the engine makes them)
// and returns once every one is acknowledged by the brokers. It is safe for
// concurrent use.
func (p *alertProducer) Publish(ctx context.Context, alerts []alert.Alert) error {
	recs := make([]*kgo.Record, 0, len(alerts))
	for i := range alerts {
		v, err := json.Marshal(&alerts[i])
		if err != nil {
			return fmt.Errorf("encode alert %s: %w", alerts[i].ID, err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(alerts[i].ID), Value: v})
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce to %s: %w", p.topic, err)
	}
	p.metrics.published.Add(float64(len(recs)))
	return nil
}

// Close flushes nothing (Publish waits) and closes the client.
func (p *alertProducer) Close() { p.cl.Close() }
