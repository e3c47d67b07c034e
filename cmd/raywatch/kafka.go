package main

// Kafka: raywatch as a member of a consumer group reading Logpush records
// (--kafka-brokers, --kafka-topic, --kafka-group), as a producer of its
// alerts (--alerts-topic), and as the one dashboard that gathers the alerts
// of N workers (--alerts-from-kafka). Cloudflare has no Kafka destination
// (spec/logpush.md §7): a collector or bridge writes the records, one per
// message or a whole gzip'd NDJSON batch per message.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/store"
	"github.com/raywatch/raywatch/web"
)

// KafkaConfig is the Kafka part of [Config]. Kafka is off when Brokers is
// empty.
type KafkaConfig struct {
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
	TLS        bool
	TLSCA      string
	TLSCert    string
	TLSKey     string
	TLSServer  string
	rawTopics  string
	rawBrokers string
	rawMapping string
}

// enabled reports whether raywatch talks to Kafka at all.
func (k *KafkaConfig) enabled() bool { return len(k.Brokers) > 0 }

// kafkaFlags registers the Kafka flags of serve.
func (k *KafkaConfig) kafkaFlags(fs *flag.FlagSet) {
	fs.StringVar(&k.rawBrokers, "kafka-brokers", envOr("RAYWATCH_KAFKA_BROKERS", ""), "comma-separated Kafka seed brokers (host:port); enables Kafka (RAYWATCH_KAFKA_BROKERS)")
	fs.StringVar(&k.rawTopics, "kafka-topic", envOr("RAYWATCH_KAFKA_TOPIC", ""), "comma-separated topics of Logpush records to consume as a member of --kafka-group (RAYWATCH_KAFKA_TOPIC)")
	fs.StringVar(&k.Group, "kafka-group", envOr("RAYWATCH_KAFKA_GROUP", "raywatch"), "Kafka consumer group of the record topics (RAYWATCH_KAFKA_GROUP)")
	fs.StringVar(&k.rawMapping, "kafka-topic-datasets", envOr("RAYWATCH_KAFKA_TOPIC_DATASETS", ""), "topic=dataset,... for messages without a \"dataset\" header; else --dataset (RAYWATCH_KAFKA_TOPIC_DATASETS)")
	fs.IntVar(&k.MaxPoll, "kafka-max-poll", int(envInt("RAYWATCH_KAFKA_MAX_POLL", 500)), "messages processed between two offset commits (RAYWATCH_KAFKA_MAX_POLL)")
	fs.StringVar(&k.AlertsTopic, "alerts-topic", envOr("RAYWATCH_ALERTS_TOPIC", ""), "Kafka topic that receives every alert as JSON (RAYWATCH_ALERTS_TOPIC)")
	fs.BoolVar(&k.AlertsFromKafka, "alerts-from-kafka", envBool("RAYWATCH_ALERTS_FROM_KAFKA"), "consume --alerts-topic into this instance's store and dashboard (RAYWATCH_ALERTS_FROM_KAFKA)")
	fs.StringVar(&k.AlertsGroup, "alerts-group", envOr("RAYWATCH_ALERTS_GROUP", "raywatch-dashboard"), "consumer group of --alerts-from-kafka; each dashboard needs its own (RAYWATCH_ALERTS_GROUP)")
	fs.StringVar(&k.SASL, "kafka-sasl", envOr("RAYWATCH_KAFKA_SASL", ""), "SASL mechanism: plain, scram-sha-256 or scram-sha-512; credentials from RAYWATCH_KAFKA_USERNAME and RAYWATCH_KAFKA_PASSWORD[_FILE] (RAYWATCH_KAFKA_SASL)")
	fs.BoolVar(&k.TLS, "kafka-tls", envBool("RAYWATCH_KAFKA_TLS"), "connect to the brokers with TLS (RAYWATCH_KAFKA_TLS)")
	fs.StringVar(&k.TLSCA, "kafka-tls-ca", envOr("RAYWATCH_KAFKA_TLS_CA", ""), "PEM file of the CAs that sign the brokers' certificates; implies --kafka-tls (RAYWATCH_KAFKA_TLS_CA)")
	fs.StringVar(&k.TLSCert, "kafka-tls-cert", envOr("RAYWATCH_KAFKA_TLS_CERT", ""), "client certificate for the brokers; implies --kafka-tls (RAYWATCH_KAFKA_TLS_CERT)")
	fs.StringVar(&k.TLSKey, "kafka-tls-key", envOr("RAYWATCH_KAFKA_TLS_KEY", ""), "private key of --kafka-tls-cert (RAYWATCH_KAFKA_TLS_KEY)")
	fs.StringVar(&k.TLSServer, "kafka-tls-server-name", envOr("RAYWATCH_KAFKA_TLS_SERVER_NAME", ""), "name to verify the brokers' certificates against, when not their host (RAYWATCH_KAFKA_TLS_SERVER_NAME)")
}

// load completes the configuration after the flags are parsed: it splits
// the lists and reads the SASL credentials from the environment.
func (k *KafkaConfig) load() error {
	k.Brokers = splitList(k.rawBrokers)
	k.Topics = splitList(k.rawTopics)
	k.TopicDatasets = map[string]string{}
	for _, item := range splitList(k.rawMapping) {
		topic, ds, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(topic) == "" {
			return fmt.Errorf("--kafka-topic-datasets: %q is not topic=dataset", item)
		}
		k.TopicDatasets[strings.TrimSpace(topic)] = strings.TrimSpace(ds)
	}
	k.Username = getenv("RAYWATCH_KAFKA_USERNAME")
	k.Password = getenv("RAYWATCH_KAFKA_PASSWORD")
	if f := getenv("RAYWATCH_KAFKA_PASSWORD_FILE"); f != "" {
		if k.Password != "" {
			return errors.New("set RAYWATCH_KAFKA_PASSWORD or RAYWATCH_KAFKA_PASSWORD_FILE, not both")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("RAYWATCH_KAFKA_PASSWORD_FILE: %w", err)
		}
		k.Password = strings.TrimRight(string(b), "\r\n")
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// validate reports what is wrong with the Kafka configuration.
func (k *KafkaConfig) validate() []error {
	var errs []error
	if !k.enabled() {
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
		if err := validDataset(ds); err != nil {
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
func (k *KafkaConfig) clientOpts() ([]kgo.Opt, error) {
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

// kafkaMetrics count what the Kafka consumers did.
type kafkaMetrics struct {
	messages  *prometheus.CounterVec // by consumer (records, alerts)
	commits   *prometheus.CounterVec // by result
	published prometheus.Counter
}

func newKafkaMetrics(reg prometheus.Registerer) *kafkaMetrics {
	m := &kafkaMetrics{
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
	metrics *kafkaMetrics
}

// newAlertProducer connects a producer for k.AlertsTopic. The caller
// closes it.
func newAlertProducer(k KafkaConfig, m *kafkaMetrics) (*alertProducer, error) {
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

// kafkaIngest consumes Logpush records from Kafka as a member of a consumer
// group: poll, detect, commit the alerts to the store (and publish them),
// then commit the offsets. With BlockRebalanceOnPoll no rebalance happens
// between a poll and its offset commit, so a member that loses partitions
// has committed everything it processed; a member that dies before its
// commit leaves its records to be delivered again, which the deterministic
// alert IDs and the store's record marks make harmless.
type kafkaIngest struct {
	det      detector
	store    *store.Store
	hub      *web.Hub
	publish  func(ctx context.Context, alerts []alert.Alert) error // nil: no alerts topic
	log      *slog.Logger
	pmetrics *pipelineMetrics
	kmetrics *kafkaMetrics
	workers  int
	maxPoll  int
	// maxLine, maxRecords and maxBytes bound one message: a record's
	// length, the records of one message, its size once gunzipped.
	maxLine    int
	maxRecords int
	maxBytes   int64
	datasets   map[string]string // topic -> dataset
	coverage   *FieldCoverage
	// beforeCommit, when set (tests), runs between the alert commit and the
	// offset commit; an error stops the consumer there, as a crash would.
	beforeCommit func() error
}

// newKafkaConsumer returns a group consumer of topics for k's brokers.
func newKafkaConsumer(k KafkaConfig, group string, topics []string, extra ...kgo.Opt) (*kgo.Client, error) {
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
func consumeLoop(pollCtx, work context.Context, cl *kgo.Client, maxPoll int, log *slog.Logger, m *kafkaMetrics, process func(context.Context, []*kgo.Record) error) {
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

// messageResult is what one Kafka message yielded.
type messageResult struct {
	alerts    []alert.Alert
	rejects   []store.Reject
	records   int
	malformed int
}

// process detects on a poll's messages, with up to workers goroutines, and
// commits their alerts and rejects to the store in one transaction.
func (k *kafkaIngest) process(ctx context.Context, recs []*kgo.Record) error {
	results := make([]messageResult, len(recs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(k.workers, len(recs)) {
		wg.Go(func() {
			var ev normalize.Event
			for {
				i := int(next.Add(1) - 1)
				if i >= len(recs) || ctx.Err() != nil {
					return
				}
				results[i] = k.message(ctx, &ev, recs[i])
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var alerts []alert.Alert
	var rejects []store.Reject
	records, malformed := 0, 0
	for i := range results {
		alerts = append(alerts, results[i].alerts...)
		if room := maxRejectsPerBatch - len(rejects); room > 0 {
			rejects = append(rejects, results[i].rejects[:min(room, len(results[i].rejects))]...)
		}
		records += results[i].records
		malformed += results[i].malformed
	}
	if k.publish != nil && len(alerts) > 0 {
		if err := k.publish(ctx, alerts); err != nil {
			return err
		}
	}
	changed, err := k.store.Commit(ctx, store.Batch{Alerts: alerts, Rejects: rejects})
	if err != nil {
		return err
	}
	k.hub.Publish(changed)
	k.kmetrics.messages.WithLabelValues("records").Add(float64(len(recs)))
	k.pmetrics.records.Add(float64(records))
	k.pmetrics.malformed.Add(float64(malformed))
	if malformed > 0 {
		k.log.Warn("malformed records in kafka messages", "messages", len(recs), "records", records, "malformed", malformed)
	}
	if k.beforeCommit != nil {
		if err := k.beforeCommit(); err != nil {
			return fmt.Errorf("%w: %v", errStopped, err)
		}
	}
	return nil
}

// message detects on the records of one Kafka message: one record, or an
// NDJSON (or JSON array) batch, gzip'd or not.
func (k *kafkaIngest) message(ctx context.Context, ev *normalize.Event, m *kgo.Record) messageResult {
	var res messageResult
	where := fmt.Sprintf("kafka:%s/%d/%d", m.Topic, m.Partition, m.Offset)
	intake, dataset := m.Topic, k.datasets[m.Topic]
	gz := len(m.Value) >= 2 && m.Value[0] == 0x1f && m.Value[1] == 0x8b
	for _, h := range m.Headers {
		switch strings.ToLower(h.Key) {
		case "dataset":
			dataset = string(h.Value)
		case "intake", "zone":
			intake = string(h.Value)
		case "content-encoding":
			gz = gz || strings.EqualFold(string(h.Value), "gzip")
		}
	}
	// The message's timestamp stands in for a missing event time, so that
	// a redelivery computes the same alerts.
	received := m.Timestamp.UTC()
	reject := func(n int, raw []byte, err error) {
		res.malformed++
		if len(res.rejects) < maxRejectsPerBatch {
			line := raw
			if len(line) > maxRejectLine {
				line = line[:maxRejectLine]
			}
			res.rejects = append(res.rejects, store.Reject{
				Time: received, Intake: intake, Batch: where, Record: n,
				Reason: err.Error(), Line: strings.ToValidUTF8(string(line), "\uFFFD"),
			})
		}
	}
	if err := validDataset(dataset); err != nil {
		reject(0, nil, fmt.Errorf("header dataset: %w", err))
		return res
	}
	var body io.Reader = bytes.NewReader(m.Value)
	if gz {
		zr, err := gzip.NewReader(body)
		if err != nil {
			reject(0, nil, fmt.Errorf("gzip: %w", err))
			return res
		}
		defer zr.Close()
		body = bufio.NewReaderSize(&limitedReader{r: zr, n: k.maxBytes}, 64<<10)
	}
	err := normalize.Split(body, normalize.SplitOptions{
		MaxLineBytes: k.maxLine,
		OnError: func(n int, err error) {
			res.records++
			reject(n, nil, fmt.Errorf("%w: over %d bytes", normalize.ErrRecordTooLong, k.maxLine))
		},
	}, func(n int, raw []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if isLogpushProbe(raw) {
			return nil
		}
		res.records++
		if res.records > k.maxRecords {
			reject(n, nil, fmt.Errorf("over the limit of %d records per message", k.maxRecords))
			return nil
		}
		if k.coverage != nil {
			k.coverage.ObserveJSON(intake, raw)
		}
		as, err := k.det.detectRecord(ev, dataset, raw, intake, received)
		if err != nil {
			reject(n, raw, err)
			return nil
		}
		res.alerts = append(res.alerts, as...)
		return nil
	})
	if err != nil && ctx.Err() == nil {
		reject(res.records+1, nil, fmt.Errorf("message unreadable after record %d: %w", res.records, err))
	}
	return res
}

// isLogpushProbe reports whether raw is Logpush's validation upload,
// {"content":"tests"} (sometimes with "filename"), which a bridge may pass
// on.
func isLogpushProbe(raw []byte) bool {
	if len(raw) > 256 || !bytes.Contains(raw, []byte(`"tests"`)) {
		return false
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m["content"] != "tests" {
		return false
	}
	for k := range m {
		if k != "content" && k != "filename" {
			return false
		}
	}
	return true
}

// errTooBig is returned when a gzip'd message inflates beyond the limit.
var errTooBig = errors.New("message over the decompressed size limit")

// limitedReader fails with errTooBig past n bytes.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooBig
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// alertIngest consumes the alerts topic into the local store and dashboard
// hub: the one dashboard of N detection workers. Alerts are the workers'
// per-record alerts; the store groups them and counts each record once, so
// an alert delivered twice (a worker that died before its offset commit, a
// rebalance) changes nothing the second time.
type alertIngest struct {
	store   *store.Store
	hub     *web.Hub
	log     *slog.Logger
	metrics *kafkaMetrics
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

// kafkaRun is the Kafka side of serve: the alert producer and the record
// and alert consumers.
type kafkaRun struct {
	producer *alertProducer
	stopPoll context.CancelFunc
	stopWork context.CancelFunc
	wg       sync.WaitGroup
}

// startKafka starts what cfg.Kafka asks for: a producer of alerts (wired
// into p, so that alerts of the HTTP intake are published too), a consumer
// of record topics and a consumer of the alerts topic. It returns a nil
// *kafkaRun, whose methods do nothing, when Kafka is off.
func startKafka(cfg Config, p *pipeline, reg prometheus.Registerer, log *slog.Logger) (*kafkaRun, error) {
	k := cfg.Kafka
	if !k.enabled() {
		return nil, nil
	}
	log = log.With("component", "kafka")
	m := newKafkaMetrics(reg)
	r := &kafkaRun{}
	pollCtx, stopPoll := context.WithCancel(context.Background())
	workCtx, stopWork := context.WithCancel(context.Background())
	r.stopPoll, r.stopWork = stopPoll, stopWork
	if k.AlertsTopic != "" {
		prod, err := newAlertProducer(k, m)
		if err != nil {
			return nil, err
		}
		r.producer = prod
		p.alertsOut = prod.Publish
	}
	if len(k.Topics) > 0 {
		cl, err := newKafkaConsumer(k, k.Group, k.Topics)
		if err != nil {
			r.close()
			return nil, err
		}
		in := &kafkaIngest{
			det: p.detector, store: p.store, hub: p.hub, publish: p.alertsOut,
			log: log, pmetrics: p.metrics, kmetrics: m, workers: cfg.Workers, maxPoll: k.MaxPoll,
			maxLine: cfg.MaxLineBytes, maxRecords: cfg.MaxRecords, maxBytes: cfg.MaxDecompressedBytes,
			datasets: k.TopicDatasets, coverage: p.coverage,
		}
		r.wg.Go(func() { consumeLoop(pollCtx, workCtx, cl, k.MaxPoll, log, m, in.process) })
		log.Info("consuming records from kafka", "brokers", strings.Join(k.Brokers, ","), "topics", strings.Join(k.Topics, ","), "group", k.Group)
	}
	if k.AlertsFromKafka {
		cl, err := newKafkaConsumer(k, k.AlertsGroup, []string{k.AlertsTopic})
		if err != nil {
			r.shutdown(context.Background())
			r.close()
			return nil, err
		}
		a := &alertIngest{store: p.store, hub: p.hub, log: log, metrics: m}
		r.wg.Go(func() { consumeLoop(pollCtx, workCtx, cl, 5000, log, m, a.process) })
		log.Info("consuming alerts from kafka", "topic", k.AlertsTopic, "group", k.AlertsGroup)
	}
	if r.producer != nil {
		log.Info("publishing alerts to kafka", "topic", k.AlertsTopic)
	}
	return r, nil
}

// shutdown stops polling and waits for the consumers to finish the
// messages in hand and commit their offsets, or for ctx to end (the
// messages are then read again after a restart or by another member).
func (r *kafkaRun) shutdown(ctx context.Context) {
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

// close closes the producer; call it after shutdown, once nothing
// publishes any more.
func (r *kafkaRun) close() {
	if r == nil {
		return
	}
	if r.producer != nil {
		r.producer.Close()
	}
}
