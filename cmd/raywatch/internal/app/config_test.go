package app

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestKafkaConfig checks the flags, the environment and validation.
func TestKafkaConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"off", nil, ""},
		{"records", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k1:9092, k2:9092", "RAYWATCH_KAFKA_TOPIC": "logs"}, ""},
		{"topic without brokers", map[string]string{"RAYWATCH_KAFKA_TOPIC": "logs"}, "need --kafka-brokers"},
		{"scram", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "logs", "RAYWATCH_KAFKA_SASL": "scram-sha-512", "RAYWATCH_KAFKA_USERNAME": "u", "RAYWATCH_KAFKA_PASSWORD": "p"}, ""},
		{"scram without password", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "logs", "RAYWATCH_KAFKA_SASL": "scram-sha-256"}, "RAYWATCH_KAFKA_PASSWORD"},
		{"bad sasl", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "logs", "RAYWATCH_KAFKA_SASL": "kerberos"}, "want plain"},
		{"bad mapping", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "logs", "RAYWATCH_KAFKA_TOPIC_DATASETS": "logs=nope"}, "--kafka-topic-datasets logs"},
		{"dashboard", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_ALERTS_TOPIC": "alerts", "RAYWATCH_ALERTS_FROM_KAFKA": "1"}, ""},
		{"alerts topic is a record topic", map[string]string{"RAYWATCH_KAFKA_BROKERS": "k:9092", "RAYWATCH_KAFKA_TOPIC": "a,b", "RAYWATCH_ALERTS_TOPIC": "b"}, "also a record topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Env(func(k string) string { return tt.env[k] })
			var c Config
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			c.ServeFlags(fs, env)
			if err := fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			err := c.LoadSecrets(env)
			if err == nil {
				err = c.Validate()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v; want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestWebLimitsConfig checks --allowed-hosts, --max-websocket-clients and
// --max-connections: flags over the environment, and validation.
func TestWebLimitsConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    WebLimits
		wantErr string
	}{
		{name: "defaults", want: WebLimits{MaxWebsocketClients: 100, MaxConnections: 1024}},
		{name: "environment", env: map[string]string{"RAYWATCH_ALLOWED_HOSTS": " dash.example.internal, 10.0.0.5:8080,,", "RAYWATCH_MAX_WEBSOCKET_CLIENTS": "5", "RAYWATCH_MAX_CONNECTIONS": "50"},
			want: WebLimits{AllowedHosts: HostList{"dash.example.internal", "10.0.0.5:8080"}, MaxWebsocketClients: 5, MaxConnections: 50}},
		{name: "flags win", env: map[string]string{"RAYWATCH_ALLOWED_HOSTS": "a.example", "RAYWATCH_MAX_CONNECTIONS": "50"},
			args: []string{"--allowed-hosts", "b.example", "--max-connections", "0"},
			want: WebLimits{AllowedHosts: HostList{"b.example"}, MaxWebsocketClients: 100, MaxConnections: 0}},
		{name: "a URL", args: []string{"--allowed-hosts", "https://dash.example"}, wantErr: `--allowed-hosts "https://dash.example": want a host name or host:port`},
		{name: "no websocket", args: []string{"--max-websocket-clients", "0"}, wantErr: "--max-websocket-clients must be at least 1"},
		{name: "websockets take every connection", args: []string{"--max-websocket-clients", "2000"}, wantErr: "must be under --max-connections (1024)"},
		{name: "no connection limit", args: []string{"--max-websocket-clients", "2000", "--max-connections", "0"},
			want: WebLimits{MaxWebsocketClients: 2000}},
		{name: "negative", args: []string{"--max-connections", "-1"}, wantErr: "--max-connections cannot be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Env(func(k string) string { return tt.env[k] })
			var c Config
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			c.ServeFlags(fs, env)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Validate() = %v; want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v; want nil", err)
			}
			if diff := cmp.Diff(tt.want, c.Web); diff != "" {
				t.Errorf("Web (-want +got):\n%s", diff)
			}
		})
	}
}

// TestArchiveConfig checks the archive flags, their variables and
// validation.
func TestArchiveConfig(t *testing.T) {
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    ArchiveConfig
		wantErr string
	}{
		{"off", nil, nil, ArchiveConfig{Retention: 168 * time.Hour, MaxBytes: DefaultArchiveMaxBytes}, ""},
		{"flags", []string{"--archive-dir", "/a", "--archive-retention", "24h", "--archive-max-bytes", "1000"}, nil, ArchiveConfig{Dir: "/a", Retention: 24 * time.Hour, MaxBytes: 1000}, ""},
		{"variables", nil, map[string]string{"RAYWATCH_ARCHIVE_DIR": "/b", "RAYWATCH_ARCHIVE_RETENTION": "1h", "RAYWATCH_ARCHIVE_MAX_BYTES": "0"}, ArchiveConfig{Dir: "/b", Retention: time.Hour}, ""},
		{"unbounded", []string{"--archive-dir", "/a", "--archive-retention", "0", "--archive-max-bytes", "0"}, nil, ArchiveConfig{Dir: "/a"}, "grow without bound"},
		{"negative", []string{"--archive-retention", "-1h"}, nil, ArchiveConfig{Retention: -time.Hour, MaxBytes: DefaultArchiveMaxBytes}, "cannot be negative"},
		{"a file", []string{"--archive-dir", file}, nil, ArchiveConfig{Dir: file, Retention: 168 * time.Hour, MaxBytes: DefaultArchiveMaxBytes}, "is not a folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Env(func(k string) string { return tt.env[k] })
			var c Config
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			c.ServeFlags(fs, env)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if c.Archive != tt.want {
				t.Errorf("Archive = %+v; want %+v", c.Archive, tt.want)
			}
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v; want an error with %q", err, tt.wantErr)
			}
		})
	}
}
