// Package app is raywatch serve: its configuration ([Config], with flags
// and RAYWATCH_* variables) and [App], which wires the intake, the
// pipeline, the store, Kafka, the API and the dashboard together, so that
// main, `raywatch bench` and tests can run it in-process.
package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/kafka"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
)

// Config is raywatch's whole configuration. Every field has a flag and a
// RAYWATCH_* environment variable (the flag wins); secrets come only from
// the environment or a file, never from a flag that ps would show.
type Config struct {
	Listen   string
	DataDir  string
	RulesDir string
	Dataset  string
	TLSCert  string
	TLSKey   string
	LogLevel string
	// MaxBodyBytes and MaxDecompressedBytes bound one intake request.
	MaxBodyBytes         int64
	MaxDecompressedBytes int64
	// MaxLineBytes bounds one record; a longer one is a malformed record.
	MaxLineBytes int
	// MaxRecords bounds the records (lines) of one batch.
	MaxRecords      int
	ShutdownTimeout time.Duration
	// SpoolMaxBytes is the disk budget of the spool of received batches.
	SpoolMaxBytes int64
	// Workers is the number of batches processed at once.
	Workers int
	// GroupWindow groups the alerts of one rule on one entity; 0 disables.
	GroupWindow time.Duration
	// RetentionAge and RetentionCount bound the stored alerts; 0 means no
	// bound.
	RetentionAge   time.Duration
	RetentionCount int
	// Insecure allows listening beyond loopback without a dashboard token.
	Insecure bool
	// Demo feeds generated Cloudflare traffic, attacks included, through
	// the intake.
	Demo bool

	// DashboardToken protects the API, /ws and /metrics, from
	// RAYWATCH_DASHBOARD_TOKEN or the file RAYWATCH_DASHBOARD_TOKEN_FILE.
	DashboardToken string
	// FieldMapping is a YAML file merged over the embedded Sigma field
	// mapping; DisableRules are ids of rules not evaluated; MaxGroups
	// bounds the groups of each aggregation or correlation rule.
	FieldMapping string
	DisableRules string
	MaxGroups    int
	// IOCDir is the folder of indicator files for the intelligence-feed
	// rule; empty means no IOC matching.
	IOCDir string
	// Kafka configures the Kafka consumer group, the alerts topic and the
	// dashboard fed from it.
	Kafka kafka.Config
	// Cloudflare holds the API credentials and the zone of the Logpush
	// job health poller, from CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL
	// and CLOUDFLARE_API_KEY), RAYWATCH_CLOUDFLARE_API_URL,
	// RAYWATCH_CLOUDFLARE_ZONE and RAYWATCH_CLOUDFLARE_POLL; without
	// credentials the poller is off.
	Cloudflare cloudflare.PollerOptions
	// Web holds the protections of the API, the dashboard and the
	// connections (--allowed-hosts, --max-websocket-clients,
	// --max-connections).
	Web WebLimits
	// Outputs configures the notification outputs and their outbox.
	Outputs OutputsConfig
	// Block is the edge response (--block-*): alerts' source addresses
	// listed in a Cloudflare IP list.
	Block BlockConfig
	// Tuning configures the runaway-rule guard.
	Tuning TuningConfig
	// Archive is the batch archive of retro-hunts (--archive-dir).
	Archive ArchiveConfig

	// kafkaLists are the list flags of Kafka as given, split into Kafka
	// by LoadSecrets.
	kafkaLists struct{ brokers, topics, datasets string }

	// IntakeKeys maps intake names to keys, from RAYWATCH_INTAKE_KEY
	// (intake "default"), RAYWATCH_INTAKE_KEYS (name=key,...) or
	// RAYWATCH_INTAKE_KEYS_FILE (one name=key a line).
	IntakeKeys map[string]string
}

// Env looks up an environment variable; os.Getenv is one.
type Env func(name string) string

// Or returns the variable, or def when it is empty.
func (e Env) Or(name, def string) string {
	if v := e(name); v != "" {
		return v
	}
	return def
}

// ServeFlags registers the serve flags on fs, with defaults taken from the
// environment.
func (c *Config) ServeFlags(fs *flag.FlagSet, env Env) {
	fs.StringVar(&c.Listen, "listen", env.Or("RAYWATCH_LISTEN", "127.0.0.1:8080"), "address to listen on (RAYWATCH_LISTEN)")
	c.CommonFlags(fs, env)
	fs.StringVar(&c.TLSCert, "tls-cert", env.Or("RAYWATCH_TLS_CERT", ""), "TLS certificate file; Logpush requires HTTPS (RAYWATCH_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env.Or("RAYWATCH_TLS_KEY", ""), "TLS private key file (RAYWATCH_TLS_KEY)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", env.Int("RAYWATCH_MAX_BODY_BYTES", 64<<20), "largest request body accepted, as sent (RAYWATCH_MAX_BODY_BYTES)")
	fs.Int64Var(&c.MaxDecompressedBytes, "max-decompressed-bytes", env.Int("RAYWATCH_MAX_DECOMPRESSED_BYTES", 256<<20), "largest batch accepted once gunzipped; keep Logpush's max_upload_bytes below it (RAYWATCH_MAX_DECOMPRESSED_BYTES)")
	fs.IntVar(&c.MaxLineBytes, "max-line-bytes", int(env.Int("RAYWATCH_MAX_LINE_BYTES", 4<<20)), "largest record; a longer one is counted as malformed (RAYWATCH_MAX_LINE_BYTES)")
	fs.IntVar(&c.MaxRecords, "max-records", int(env.Int("RAYWATCH_MAX_RECORDS", 1_000_000)), "most records (lines) in one batch; more is answered 413 (RAYWATCH_MAX_RECORDS)")
	fs.Int64Var(&c.SpoolMaxBytes, "spool-max-bytes", env.Int("RAYWATCH_SPOOL_MAX_BYTES", 1<<30), "disk budget of the spool of received batches; beyond it the intake answers 429 (RAYWATCH_SPOOL_MAX_BYTES)")
	fs.IntVar(&c.Workers, "workers", int(env.Int("RAYWATCH_WORKERS", int64(runtime.GOMAXPROCS(0)))), "batches processed at once (RAYWATCH_WORKERS)")
	fs.DurationVar(&c.GroupWindow, "group-window", env.Duration("RAYWATCH_GROUP_WINDOW", time.Hour), "alerts of one rule on one source IP and host within a window of this width are one alert; 0 disables grouping (RAYWATCH_GROUP_WINDOW)")
	fs.DurationVar(&c.RetentionAge, "retention-age", env.Duration("RAYWATCH_RETENTION_AGE", 90*24*time.Hour), "delete alerts whose last event is older; 0 keeps them (RAYWATCH_RETENTION_AGE)")
	fs.IntVar(&c.RetentionCount, "retention-count", int(env.Int("RAYWATCH_RETENTION_COUNT", 1_000_000)), "keep at most this many alerts, deleting the oldest; 0 means no limit (RAYWATCH_RETENTION_COUNT)")
	fs.BoolVar(&c.Demo, "demo", env.Bool("RAYWATCH_DEMO"), "feed generated Cloudflare http_requests traffic, with each built-in attack mixed in, through the intake: the dashboard comes alive at once (RAYWATCH_DEMO)")
	fs.BoolVar(&c.Insecure, "insecure", env.Bool("RAYWATCH_INSECURE"), "allow listening beyond loopback without RAYWATCH_DASHBOARD_TOKEN (RAYWATCH_INSECURE)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", env.Duration("RAYWATCH_SHUTDOWN_TIMEOUT", 30*time.Second), "how long SIGTERM waits for acknowledged batches to be processed (RAYWATCH_SHUTDOWN_TIMEOUT)")
	c.kafkaFlags(fs, env)
	c.Web.flags(fs, env)
	c.Outputs.flags(fs, env)
	c.Block.flags(fs, env)
	c.Tuning.flags(fs, env)
	c.Archive.flags(fs, env)
	fs.StringVar(&c.LogLevel, "log-level", env.Or("RAYWATCH_LOG_LEVEL", "info"), "debug, info, warn or error (RAYWATCH_LOG_LEVEL)")
}

// CommonFlags registers the flags serve shares with scan.
func (c *Config) CommonFlags(fs *flag.FlagSet, env Env) {
	fs.StringVar(&c.DataDir, "data-dir", env.Or("RAYWATCH_DATA_DIR", "./raywatch-data"), "folder for the alert store and the generated intake key (RAYWATCH_DATA_DIR)")
	fs.StringVar(&c.RulesDir, "rules-dir", env.Or("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	fs.StringVar(&c.Dataset, "dataset", env.Or("RAYWATCH_DATASET", "auto"), "Logpush dataset of the records, or auto to recognise it (RAYWATCH_DATASET)")
	fs.StringVar(&c.IOCDir, "ioc-dir", env.Or("RAYWATCH_IOC_DIR", ""), "folder of IOC files (text, CSV, STIX 2.1) for the intelligence-feed rule, reloaded on change (RAYWATCH_IOC_DIR)")
	c.RuleFlags(fs, env)
}

// RuleFlags registers the rule-engine flags shared by serve, scan and
// rules.
func (c *Config) RuleFlags(fs *flag.FlagSet, env Env) {
	fs.StringVar(&c.FieldMapping, "field-mapping", env.Or("RAYWATCH_FIELD_MAPPING", ""), "YAML file merged over the built-in mapping of Sigma field names to ECS fields (RAYWATCH_FIELD_MAPPING)")
	fs.StringVar(&c.DisableRules, "disable-rules", env.Or("RAYWATCH_DISABLE_RULES", ""), "comma-separated ids of rules not to evaluate (RAYWATCH_DISABLE_RULES)")
	fs.IntVar(&c.MaxGroups, "max-groups", int(env.Int("RAYWATCH_MAX_GROUPS", 10000)), "groups kept by each aggregation or correlation rule (RAYWATCH_MAX_GROUPS)")
}

// Int returns the variable as an integer, or def when it is empty or not
// an integer (which is said on stderr).
func (e Env) Int(name string, def int64) int64 {
	v := e(name)
	if v == "" {
		return def
	}
	var n int64
	if _, err := fmt.Sscan(v, &n); err != nil {
		fmt.Fprintf(os.Stderr, "raywatch: ignoring %s=%q: not an integer\n", name, v)
		return def
	}
	return n
}

// Bool reports whether the variable is 1, true, yes or on.
func (e Env) Bool(name string) bool {
	switch strings.ToLower(e(name)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Duration returns the variable as a duration, or def when it is empty or
// not a duration (which is said on stderr).
func (e Env) Duration(name string, def time.Duration) time.Duration {
	v := e(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "raywatch: ignoring %s=%q: %v\n", name, v, err)
		return def
	}
	return d
}

// Validate checks the configuration of serve before anything starts; the
// error lists every problem, each naming its flag or variable.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.Listen, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is empty"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.MaxBodyBytes <= 0 || c.MaxDecompressedBytes <= 0 || c.MaxLineBytes <= 0 || c.MaxRecords <= 0 || c.SpoolMaxBytes <= 0 {
		errs = append(errs, errors.New("--max-body-bytes, --max-decompressed-bytes, --max-line-bytes, --max-records and --spool-max-bytes must be positive"))
	}
	if c.Workers < 1 {
		errs = append(errs, errors.New("--workers must be at least 1"))
	}
	if c.GroupWindow < 0 || c.RetentionAge < 0 || c.RetentionCount < 0 {
		errs = append(errs, errors.New("--group-window, --retention-age and --retention-count cannot be negative"))
	}
	if c.DashboardToken != "" && len(c.DashboardToken) < 16 {
		// Never echo the token.
		errs = append(errs, errors.New("RAYWATCH_DASHBOARD_TOKEN is shorter than 16 characters; use a long random one (openssl rand -hex 24)"))
	}
	if c.DashboardToken == "" && !c.Insecure && !loopback(c.Listen) {
		errs = append(errs, fmt.Errorf("--listen %q reaches beyond this machine: set RAYWATCH_DASHBOARD_TOKEN to protect the API and dashboard, or pass --insecure", c.Listen))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if err := pipeline.ValidDataset(c.Dataset); err != nil {
		errs = append(errs, err)
	}
	if c.RulesDir != "" {
		if st, err := os.Stat(c.RulesDir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("--rules-dir %q is not a readable folder", c.RulesDir))
		}
	}
	if c.MaxGroups <= 0 {
		errs = append(errs, errors.New("--max-groups must be positive"))
	}
	errs = append(errs, c.Kafka.Validate()...)
	errs = append(errs, c.Web.validate()...)
	errs = append(errs, c.Outputs.validate()...)
	errs = append(errs, c.Block.validate(c)...)
	errs = append(errs, c.Tuning.validate()...)
	errs = append(errs, c.Archive.validate()...)
	return errors.Join(errs...)
}

// loopback reports whether a listen address is reachable only from this
// machine.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return true // reported elsewhere
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadSecrets reads from the environment what no flag carries: the intake
// keys, the dashboard token, Kafka's SASL credentials, the webhook secret
// and Cloudflare's API credentials.
func (c *Config) LoadSecrets(env Env) error {
	keys, err := IntakeKeysFromEnv(env)
	if err != nil {
		return err
	}
	c.IntakeKeys = keys
	if err := c.loadKafka(env); err != nil {
		return err
	}
	if err := c.Outputs.loadSecret(env); err != nil {
		return err
	}
	c.Cloudflare = cloudflare.PollerOptions{
		Credentials: CloudflareCredentials(env),
		Zone:        env("RAYWATCH_CLOUDFLARE_ZONE"),
		Interval:    env.Duration("RAYWATCH_CLOUDFLARE_POLL", 2*time.Minute),
	}
	c.DashboardToken = env("RAYWATCH_DASHBOARD_TOKEN")
	if f := env("RAYWATCH_DASHBOARD_TOKEN_FILE"); f != "" {
		if c.DashboardToken != "" {
			return errors.New("set RAYWATCH_DASHBOARD_TOKEN or RAYWATCH_DASHBOARD_TOKEN_FILE, not both")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("RAYWATCH_DASHBOARD_TOKEN_FILE: %w", err)
		}
		c.DashboardToken = strings.TrimSpace(string(b))
		if c.DashboardToken == "" {
			return fmt.Errorf("RAYWATCH_DASHBOARD_TOKEN_FILE %s is empty", f)
		}
	}
	return nil
}

// CloudflareCredentials reads Cloudflare's API credentials from the
// environment.
func CloudflareCredentials(env Env) cloudflare.Credentials {
	return cloudflare.Credentials{
		Token: env("CLOUDFLARE_API_TOKEN"), Email: env("CLOUDFLARE_EMAIL"), APIKey: env("CLOUDFLARE_API_KEY"),
		BaseURL: env("RAYWATCH_CLOUDFLARE_API_URL"),
	}
}

// IntakeKeysFromEnv reads the intake keys from RAYWATCH_INTAKE_KEY,
// RAYWATCH_INTAKE_KEYS and RAYWATCH_INTAKE_KEYS_FILE. It returns an empty
// map when none is configured. Its errors never hold a key.
func IntakeKeysFromEnv(env Env) (map[string]string, error) {
	keys := map[string]string{}
	if k := env("RAYWATCH_INTAKE_KEY"); k != "" {
		keys["default"] = k
	}
	add := func(src, list string, sep string) error {
		for _, item := range strings.Split(list, sep) {
			item = strings.TrimSpace(item)
			if item == "" || strings.HasPrefix(item, "#") {
				continue
			}
			name, key, ok := strings.Cut(item, "=")
			name, key = strings.TrimSpace(name), strings.TrimSpace(key)
			if !ok || name == "" || key == "" {
				// Never echo the item: it may hold a key.
				return fmt.Errorf("%s: an entry is not of the form name=key", src)
			}
			if len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				return fmt.Errorf("%s: intake name %q: want at most 64 printable characters", src, name)
			}
			if _, dup := keys[name]; dup {
				return fmt.Errorf("%s: intake %q is defined twice", src, name)
			}
			keys[name] = key
		}
		return nil
	}
	if v := env("RAYWATCH_INTAKE_KEYS"); v != "" {
		if err := add("RAYWATCH_INTAKE_KEYS", v, ","); err != nil {
			return nil, err
		}
	}
	if f := env("RAYWATCH_INTAKE_KEYS_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("RAYWATCH_INTAKE_KEYS_FILE: %w", err)
		}
		if err := add(f, string(b), "\n"); err != nil {
			return nil, err
		}
	}
	seen := map[string]string{}
	for name, key := range keys {
		if other, dup := seen[key]; dup {
			return nil, fmt.Errorf("intakes %q and %q share a key; each intake needs its own", other, name)
		}
		seen[key] = name
	}
	return keys, nil
}

// KeyFile is where serve keeps the intake key it generated.
func KeyFile(dataDir string) string { return filepath.Join(dataDir, "intake-key") }
