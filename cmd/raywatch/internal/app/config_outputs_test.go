package app

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// parseServe parses serve's flags args with the environment env, loads
// the secrets and validates, as serve does.
func parseServe(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	e := Env(func(k string) string { return env[k] })
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	c.ServeFlags(fs, e)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := c.LoadSecrets(e); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// TestOutputsConfig checks the output flags, their RAYWATCH_* variables
// (the flag wins), the webhook secret from the environment or a file,
// and the validation errors, which name the flag and never show a
// secret.
func TestOutputsConfig(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("defaults", func(t *testing.T) {
		c, err := parseServe(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		o := c.Outputs
		if got := o.Notify.Outputs(); len(got) != 0 {
			t.Errorf("outputs = %q; want none", got)
		}
		if o.OutboxMax != 1_000_000 || o.Notify.AlertmanagerResend != time.Minute || o.Notify.WebhookMinLevel != "low" || o.Notify.SyslogMinLevel != "low" || o.Notify.AlertmanagerMinLevel != "low" {
			t.Errorf("defaults = %+v", o)
		}
	})

	t.Run("environment and flags", func(t *testing.T) {
		env := map[string]string{
			"RAYWATCH_ALERTMANAGER_URL":       "http://am1:9093, http://am2:9093",
			"RAYWATCH_ALERTMANAGER_RESEND":    "30s",
			"RAYWATCH_ALERTMANAGER_MIN_LEVEL": "medium",
			"RAYWATCH_WEBHOOK_URL":            "https://hooks.example.com/a",
			"RAYWATCH_WEBHOOK_MIN_LEVEL":      "high",
			"RAYWATCH_SYSLOG_ADDR":            "tcp://siem:6514",
			"RAYWATCH_SYSLOG_MIN_LEVEL":       "critical",
			"RAYWATCH_EXTERNAL_URL":           "https://raywatch.example.com",
			"RAYWATCH_OUTBOX_MAX":             "5000",
			"RAYWATCH_WEBHOOK_SECRET":         "s3cret-from-env",
		}
		c, err := parseServe(t, env, "--webhook-url", "https://a.example.com/h,https://b.example.com/h", "--syslog-min-level", "high")
		if err != nil {
			t.Fatal(err)
		}
		n := c.Outputs.Notify
		want := []string{"alertmanager-1", "alertmanager-2", "webhook-1", "webhook-2", "syslog"}
		if d := cmp.Diff(want, n.Outputs()); d != "" {
			t.Errorf("outputs (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{"https://a.example.com/h", "https://b.example.com/h"}, n.WebhookURLs); d != "" {
			t.Errorf("--webhook-url over RAYWATCH_WEBHOOK_URL (-want +got):\n%s", d)
		}
		if n.AlertmanagerResend != 30*time.Second || n.AlertmanagerMinLevel != "medium" || n.WebhookMinLevel != "high" ||
			n.SyslogAddr != "tcp://siem:6514" || n.SyslogMinLevel != "high" || n.ExternalURL != "https://raywatch.example.com" ||
			c.Outputs.OutboxMax != 5000 || string(n.WebhookSecret) != "s3cret-from-env" {
			t.Errorf("config = %+v", c.Outputs)
		}
	})

	t.Run("secret file", func(t *testing.T) {
		c, err := parseServe(t, map[string]string{"RAYWATCH_WEBHOOK_URL": "https://h.example.com/", "RAYWATCH_WEBHOOK_SECRET_FILE": secretFile})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(c.Outputs.Notify.WebhookSecret); got != "s3cret-from-file" {
			t.Errorf("secret from file = %q; want it without the newline", got)
		}
	})

	bad := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"secret twice", map[string]string{"RAYWATCH_WEBHOOK_SECRET": "s3cret-from-env", "RAYWATCH_WEBHOOK_SECRET_FILE": secretFile}, nil, "not both"},
		{"empty secret file", map[string]string{"RAYWATCH_WEBHOOK_SECRET_FILE": emptyFile}, nil, "is empty"},
		{"missing secret file", map[string]string{"RAYWATCH_WEBHOOK_SECRET_FILE": filepath.Join(dir, "nope")}, nil, "RAYWATCH_WEBHOOK_SECRET_FILE"},
		{"bad level", nil, []string{"--webhook-min-level", "urgent"}, `--webhook-min-level "urgent"`},
		{"bad level from env", map[string]string{"RAYWATCH_SYSLOG_MIN_LEVEL": "loud"}, nil, `--syslog-min-level "loud"`},
		{"webhook not http", nil, []string{"--webhook-url", "ftp://user:hunter2@h.example.com/x"}, "--webhook-url ftp://h.example.com/…: want an http:// or https:// URL"},
		{"alertmanager without host", nil, []string{"--alertmanager-url", "http://"}, "--alertmanager-url"},
		{"syslog scheme", nil, []string{"--syslog-addr", "syslog.example.com:514"}, "--syslog-addr"},
		{"external url", nil, []string{"--external-url", "raywatch.example.com"}, "--external-url"},
		{"negative resend", nil, []string{"--alertmanager-resend", "-1s"}, "--alertmanager-resend"},
		{"outbox max", nil, []string{"--outbox-max", "0"}, "--outbox-max must be at least 1"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServe(t, tt.env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v; want one with %q", err, tt.want)
			}
			for _, secret := range []string{"hunter2", "s3cret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
}

// TestOutputsUsageHidesURLSecrets checks that serve -h shows URLs from the
// environment without their credentials or path.
func TestOutputsUsageHidesURLSecrets(t *testing.T) {
	env := Env(func(k string) string {
		if k == "RAYWATCH_WEBHOOK_URL" {
			return "https://user:hunter2@hooks.slack.com/services/T0/B0/XXXXSECRET"
		}
		return ""
	})
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var out strings.Builder
	fs.SetOutput(&out)
	c.ServeFlags(fs, env)
	fs.PrintDefaults()
	if s := out.String(); strings.Contains(s, "hunter2") || strings.Contains(s, "XXXXSECRET") || !strings.Contains(s, "https://hooks.slack.com") {
		t.Errorf("usage of --webhook-url:\n%s\nwant the host without credentials or path", grepLine(s, "webhook-url"))
	}
	if got := c.Outputs.Notify.WebhookURLs; len(got) != 1 || !strings.HasSuffix(got[0], "XXXXSECRET") {
		t.Errorf("WebhookURLs = %q; want the whole URL", got)
	}
}

func grepLine(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.Contains(l, sub) && i+1 < len(lines) {
			return l + "\n" + lines[i+1]
		}
	}
	return ""
}
