package app

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// kafkaFlags registers the Kafka flags of serve.
func (c *Config) kafkaFlags(fs *flag.FlagSet, env Env) {
	k, l := &c.Kafka, &c.kafkaLists
	fs.StringVar(&l.brokers, "kafka-brokers", env.Or("RAYWATCH_KAFKA_BROKERS", ""), "comma-separated Kafka seed brokers (host:port); enables Kafka (RAYWATCH_KAFKA_BROKERS)")
	fs.StringVar(&l.topics, "kafka-topic", env.Or("RAYWATCH_KAFKA_TOPIC", ""), "comma-separated topics of Logpush records to consume as a member of --kafka-group (RAYWATCH_KAFKA_TOPIC)")
	fs.StringVar(&k.Group, "kafka-group", env.Or("RAYWATCH_KAFKA_GROUP", "raywatch"), "Kafka consumer group of the record topics (RAYWATCH_KAFKA_GROUP)")
	fs.StringVar(&l.datasets, "kafka-topic-datasets", env.Or("RAYWATCH_KAFKA_TOPIC_DATASETS", ""), "topic=dataset,... for messages without a \"dataset\" header; else --dataset (RAYWATCH_KAFKA_TOPIC_DATASETS)")
	fs.IntVar(&k.MaxPoll, "kafka-max-poll", int(env.Int("RAYWATCH_KAFKA_MAX_POLL", 500)), "messages processed between two offset commits (RAYWATCH_KAFKA_MAX_POLL)")
	fs.StringVar(&k.AlertsTopic, "alerts-topic", env.Or("RAYWATCH_ALERTS_TOPIC", ""), "Kafka topic that receives every alert as JSON (RAYWATCH_ALERTS_TOPIC)")
	fs.BoolVar(&k.AlertsFromKafka, "alerts-from-kafka", env.Bool("RAYWATCH_ALERTS_FROM_KAFKA"), "consume --alerts-topic into this instance's store and dashboard (RAYWATCH_ALERTS_FROM_KAFKA)")
	fs.StringVar(&k.AlertsGroup, "alerts-group", env.Or("RAYWATCH_ALERTS_GROUP", "raywatch-dashboard"), "consumer group of --alerts-from-kafka; each dashboard needs its own (RAYWATCH_ALERTS_GROUP)")
	fs.StringVar(&k.SASL, "kafka-sasl", env.Or("RAYWATCH_KAFKA_SASL", ""), "SASL mechanism: plain, scram-sha-256 or scram-sha-512; credentials from RAYWATCH_KAFKA_USERNAME and RAYWATCH_KAFKA_PASSWORD[_FILE] (RAYWATCH_KAFKA_SASL)")
	fs.BoolVar(&k.TLS, "kafka-tls", env.Bool("RAYWATCH_KAFKA_TLS"), "connect to the brokers with TLS (RAYWATCH_KAFKA_TLS)")
	fs.StringVar(&k.TLSCA, "kafka-tls-ca", env.Or("RAYWATCH_KAFKA_TLS_CA", ""), "PEM file of the CAs that sign the brokers' certificates; implies --kafka-tls (RAYWATCH_KAFKA_TLS_CA)")
	fs.StringVar(&k.TLSCert, "kafka-tls-cert", env.Or("RAYWATCH_KAFKA_TLS_CERT", ""), "client certificate for the brokers; implies --kafka-tls (RAYWATCH_KAFKA_TLS_CERT)")
	fs.StringVar(&k.TLSKey, "kafka-tls-key", env.Or("RAYWATCH_KAFKA_TLS_KEY", ""), "private key of --kafka-tls-cert (RAYWATCH_KAFKA_TLS_KEY)")
	fs.StringVar(&k.TLSServer, "kafka-tls-server-name", env.Or("RAYWATCH_KAFKA_TLS_SERVER_NAME", ""), "name to verify the brokers' certificates against, when not their host (RAYWATCH_KAFKA_TLS_SERVER_NAME)")
}

// loadKafka completes the Kafka configuration after the flags are parsed:
// it splits the lists and reads the SASL credentials from the environment.
func (c *Config) loadKafka(env Env) error {
	k, l := &c.Kafka, &c.kafkaLists
	k.Brokers = SplitList(l.brokers)
	k.Topics = SplitList(l.topics)
	k.TopicDatasets = map[string]string{}
	for _, item := range SplitList(l.datasets) {
		topic, ds, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(topic) == "" {
			return fmt.Errorf("--kafka-topic-datasets: %q is not topic=dataset", item)
		}
		k.TopicDatasets[strings.TrimSpace(topic)] = strings.TrimSpace(ds)
	}
	k.Username = env("RAYWATCH_KAFKA_USERNAME")
	k.Password = env("RAYWATCH_KAFKA_PASSWORD")
	if f := env("RAYWATCH_KAFKA_PASSWORD_FILE"); f != "" {
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

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
