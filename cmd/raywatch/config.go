package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/raywatch/raywatch/engine/ioc"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
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
	// iocSet returns the current indicator set (set up from IOCDir by
	// serve and scan before the engine is built).
	iocSet func() *ioc.Set
	// ruleErrs keeps the rule files that failed to load (set up by serve
	// for the dashboard); nil elsewhere.
	ruleErrs *ruleProblems

	// Kafka configures the Kafka consumer group, the alerts topic and the
	// dashboard fed from it; see [KafkaConfig].
	Kafka KafkaConfig

	// IntakeKeys maps intake names to keys, from RAYWATCH_INTAKE_KEY
	// (intake "default"), RAYWATCH_INTAKE_KEYS (name=key,...) or
	// RAYWATCH_INTAKE_KEYS_FILE (one name=key a line).
	IntakeKeys map[string]string
}

// getenv is os.Getenv, replaceable in tests.
var getenv = os.Getenv

func envOr(name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// serveFlags registers the serve flags on fs, with defaults taken from the
// environment.
func (c *Config) serveFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", envOr("RAYWATCH_LISTEN", "127.0.0.1:8080"), "address to listen on (RAYWATCH_LISTEN)")
	c.commonFlags(fs)
	fs.StringVar(&c.TLSCert, "tls-cert", envOr("RAYWATCH_TLS_CERT", ""), "TLS certificate file; Logpush requires HTTPS (RAYWATCH_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", envOr("RAYWATCH_TLS_KEY", ""), "TLS private key file (RAYWATCH_TLS_KEY)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", envInt("RAYWATCH_MAX_BODY_BYTES", 64<<20), "largest request body accepted, as sent (RAYWATCH_MAX_BODY_BYTES)")
	fs.Int64Var(&c.MaxDecompressedBytes, "max-decompressed-bytes", envInt("RAYWATCH_MAX_DECOMPRESSED_BYTES", 256<<20), "largest batch accepted once gunzipped; keep Logpush's max_upload_bytes below it (RAYWATCH_MAX_DECOMPRESSED_BYTES)")
	fs.IntVar(&c.MaxLineBytes, "max-line-bytes", int(envInt("RAYWATCH_MAX_LINE_BYTES", 4<<20)), "largest record; a longer one is counted as malformed (RAYWATCH_MAX_LINE_BYTES)")
	fs.IntVar(&c.MaxRecords, "max-records", int(envInt("RAYWATCH_MAX_RECORDS", 1_000_000)), "most records (lines) in one batch; more is answered 413 (RAYWATCH_MAX_RECORDS)")
	fs.Int64Var(&c.SpoolMaxBytes, "spool-max-bytes", envInt("RAYWATCH_SPOOL_MAX_BYTES", 1<<30), "disk budget of the spool of received batches; beyond it the intake answers 429 (RAYWATCH_SPOOL_MAX_BYTES)")
	fs.IntVar(&c.Workers, "workers", int(envInt("RAYWATCH_WORKERS", int64(runtime.GOMAXPROCS(0)))), "batches processed at once (RAYWATCH_WORKERS)")
	fs.DurationVar(&c.GroupWindow, "group-window", envDuration("RAYWATCH_GROUP_WINDOW", time.Hour), "alerts of one rule on one source IP and host within a window of this width are one alert; 0 disables grouping (RAYWATCH_GROUP_WINDOW)")
	fs.DurationVar(&c.RetentionAge, "retention-age", envDuration("RAYWATCH_RETENTION_AGE", 90*24*time.Hour), "delete alerts whose last event is older; 0 keeps them (RAYWATCH_RETENTION_AGE)")
	fs.IntVar(&c.RetentionCount, "retention-count", int(envInt("RAYWATCH_RETENTION_COUNT", 1_000_000)), "keep at most this many alerts, deleting the oldest; 0 means no limit (RAYWATCH_RETENTION_COUNT)")
	fs.BoolVar(&c.Demo, "demo", envBool("RAYWATCH_DEMO"), "feed generated Cloudflare http_requests traffic, with each built-in attack mixed in, through the intake: the dashboard comes alive at once (RAYWATCH_DEMO)")
	fs.BoolVar(&c.Insecure, "insecure", envBool("RAYWATCH_INSECURE"), "allow listening beyond loopback without RAYWATCH_DASHBOARD_TOKEN (RAYWATCH_INSECURE)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", envDuration("RAYWATCH_SHUTDOWN_TIMEOUT", 30*time.Second), "how long SIGTERM waits for acknowledged batches to be processed (RAYWATCH_SHUTDOWN_TIMEOUT)")
	c.Kafka.kafkaFlags(fs)
	fs.StringVar(&c.LogLevel, "log-level", envOr("RAYWATCH_LOG_LEVEL", "info"), "debug, info, warn or error (RAYWATCH_LOG_LEVEL)")
}

// commonFlags are shared by serve and scan.
func (c *Config) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", envOr("RAYWATCH_DATA_DIR", "./raywatch-data"), "folder for the alert store and the generated intake key (RAYWATCH_DATA_DIR)")
	fs.StringVar(&c.RulesDir, "rules-dir", envOr("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	fs.StringVar(&c.Dataset, "dataset", envOr("RAYWATCH_DATASET", "auto"), "Logpush dataset of the records, or auto to recognise it (RAYWATCH_DATASET)")
	fs.StringVar(&c.IOCDir, "ioc-dir", envOr("RAYWATCH_IOC_DIR", ""), "folder of IOC files (text, CSV, STIX 2.1) for the intelligence-feed rule, reloaded on change (RAYWATCH_IOC_DIR)")
	c.ruleFlags(fs)
}

// ruleFlags are the rule-engine flags shared by serve, scan and rules.
func (c *Config) ruleFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.FieldMapping, "field-mapping", envOr("RAYWATCH_FIELD_MAPPING", ""), "YAML file merged over the built-in mapping of Sigma field names to ECS fields (RAYWATCH_FIELD_MAPPING)")
	fs.StringVar(&c.DisableRules, "disable-rules", envOr("RAYWATCH_DISABLE_RULES", ""), "comma-separated ids of rules not to evaluate (RAYWATCH_DISABLE_RULES)")
	fs.IntVar(&c.MaxGroups, "max-groups", int(envInt("RAYWATCH_MAX_GROUPS", 10000)), "groups kept by each aggregation or correlation rule (RAYWATCH_MAX_GROUPS)")
}

func envInt(name string, def int64) int64 {
	v := getenv(name)
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

func envBool(name string) bool {
	switch strings.ToLower(getenv(name)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func envDuration(name string, def time.Duration) time.Duration {
	v := getenv(name)
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

// Validate checks the configuration before anything starts.
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
	if err := validDataset(c.Dataset); err != nil {
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
	errs = append(errs, c.Kafka.validate()...)
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

// loadSecrets reads the intake keys and the dashboard token from the
// environment.
func (c *Config) loadSecrets() error {
	keys, err := parseIntakeKeys()
	if err != nil {
		return err
	}
	c.IntakeKeys = keys
	if err := c.Kafka.load(); err != nil {
		return err
	}
	c.DashboardToken = getenv("RAYWATCH_DASHBOARD_TOKEN")
	if f := getenv("RAYWATCH_DASHBOARD_TOKEN_FILE"); f != "" {
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

// parseIntakeKeys reads the intake keys from the environment. It returns an
// empty map when none is configured.
func parseIntakeKeys() (map[string]string, error) {
	keys := map[string]string{}
	if k := getenv("RAYWATCH_INTAKE_KEY"); k != "" {
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
	if v := getenv("RAYWATCH_INTAKE_KEYS"); v != "" {
		if err := add("RAYWATCH_INTAKE_KEYS", v, ","); err != nil {
			return nil, err
		}
	}
	if f := getenv("RAYWATCH_INTAKE_KEYS_FILE"); f != "" {
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

// keyFile is where a generated intake key is kept.
func keyFile(dataDir string) string { return filepath.Join(dataDir, "intake-key") }
