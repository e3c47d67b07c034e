package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare/cftest"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/command"
)

const (
	testZone   = cftest.Zone
	testToken  = cftest.Token
	testEmail  = cftest.Email
	testAPIKey = cftest.APIKey
	// testIntakeKey has characters that URL-encoding changes, to check
	// that destination_conf encodes it and that no form of it leaks.
	testIntakeKey = "k3y+with/special=chars&more"
)

// fakeCloudflare is the fake of Cloudflare's API (package cftest).
type fakeCloudflare = cftest.Server

func newFakeCloudflare(t *testing.T) *fakeCloudflare { return cftest.New(t) }

// cfEnv points raywatch at the fake f with an API token and an intake key.
func cfEnv(t *testing.T, f *fakeCloudflare) {
	t.Helper()
	for k, v := range map[string]string{
		"RAYWATCH_CLOUDFLARE_API_URL": f.URL(),
		"CLOUDFLARE_API_TOKEN":        testToken,
		"CLOUDFLARE_EMAIL":            "",
		"CLOUDFLARE_API_KEY":          "",
		"CLOUDFLARE_BASE_URL":         "",
		"CLOUDFLARE_ACCOUNT_ID":       "",
		"RAYWATCH_INTAKE_KEY":         testIntakeKey,
		"RAYWATCH_INTAKE_KEYS":        "",
		"RAYWATCH_INTAKE_KEYS_FILE":   "",
		"RAYWATCH_RULES_DIR":          "",
		"RAYWATCH_DATA_DIR":           t.TempDir(),
	} {
		t.Setenv(k, v)
	}
}

const (
	pCreate   = cftest.PCreateJob
	pUpdate   = cftest.PUpdateJob
	pValidate = cftest.PValidate
	pFields   = cftest.PFields
)

// runCF runs raywatch with args and returns the exit code and outputs,
// failing the test if any output holds a secret.
func runCF(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = command.Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	noSecrets(t, out.String()+errb.String())
	return code, out.String(), errb.String()
}

func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, sec := range []string{testToken, testAPIKey, testEmail, testIntakeKey, url.QueryEscape(testIntakeKey), url.PathEscape(testIntakeKey)} {
		if strings.Contains(s, sec) {
			t.Errorf("output holds the secret %q:\n%s", sec, s)
		}
	}
}

// wantDest is the destination_conf connect must build for the test key.
var wantDest = "https://raywatch.example.com:8443/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=" + url.QueryEscape(testIntakeKey)

// wantFields are the fields connect asks for on the fake zone: the rules'
// and the IOC matcher's, the recommended context, minus JA3Hash.
var wantFields = []string{
	"ClientASN", "ClientCountry", "ClientIP", "ClientRequestHost", "ClientRequestMethod", "ClientRequestPath",
	"ClientRequestProtocol", "ClientRequestReferer", "ClientRequestScheme", "ClientRequestURI",
	"ClientRequestUserAgent", "ClientSrcPort", "EdgeEndTimestamp", "EdgeResponseBytes", "EdgeResponseStatus",
	"EdgeStartTimestamp", "RayID", "ZoneName",
}

func TestCloudflareFields(t *testing.T) {
	f := newFakeCloudflare(t)
	cfEnv(t, f)
	code, out, errOut := runCF(t, "cloudflare", "fields", "--zone", testZone)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"Dataset http_requests on zone " + testZone + " offers 26 fields.",
		"Not offered on this zone: JA3Hash (needs Bot Management).",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		fs := strings.Fields(l)
		switch {
		case len(fs) >= 2 && (fs[0] == "*" || fs[0] == "+"):
			lines[fs[1]] = l
		case len(fs) == 1:
			lines[fs[0]] = l
		}
	}
	for field, want := range map[string][]string{
		"ClientRequestUserAgent": {"* ", "Covenant Default HTTP Beaconing", "Lemon Duck User-Agent", "LokiBot User-Agent", "TrevorC2 HTTP Communication", "IOC matcher"},
		"ClientRequestMethod":    {"* ", "Bazar Loader Backdoor C2 Polling", "LokiBot User-Agent"},
		"ClientIP":               {"* ", "IOC matcher"},
		"ClientRequestScheme":    {"+ ", "context"},
		"BotScore":               {"BotScore"},
	} {
		l, ok := lines[field]
		if !ok {
			t.Errorf("no line for %s:\n%s", field, out)
			continue
		}
		for _, w := range want {
			if !strings.Contains(l, w) {
				t.Errorf("line of %s = %q; want it to contain %q", field, l, w)
			}
		}
	}
	if l := lines["BotScore"]; strings.ContainsAny(l, "*+") {
		t.Errorf("BotScore is marked: %q", l)
	}
}

func TestCloudflareConnectCreatesThenChangesNothing(t *testing.T) {
	f := newFakeCloudflare(t)
	cfEnv(t, f)
	args := []string{"cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443"}
	code, out, errOut := runCF(t, args...)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if f.Count(pCreate) != 1 || f.Count(pUpdate) != 0 {
		t.Fatalf("creates = %d, updates = %d; want 1, 0", f.Count(pCreate), f.Count(pUpdate))
	}
	if v := f.LastBody(pValidate); v["destination_conf"] != wantDest {
		t.Errorf("validated destination_conf = %v; want %s", v["destination_conf"], wantDest)
	}
	body := f.LastBody(pCreate)
	opts, _ := body["output_options"].(map[string]any)
	var gotFields []string
	for _, v := range opts["field_names"].([]any) {
		gotFields = append(gotFields, v.(string))
	}
	got := map[string]any{
		"name": body["name"], "dataset": body["dataset"], "destination_conf": body["destination_conf"],
		"enabled": body["enabled"], "max_upload_bytes": body["max_upload_bytes"],
		"max_upload_records": body["max_upload_records"], "max_upload_interval_seconds": body["max_upload_interval_seconds"],
		"timestamp_format": opts["timestamp_format"], "output_type": opts["output_type"], "field_names": gotFields,
	}
	want := map[string]any{
		"name": "raywatch-default-http-requests", "dataset": "http_requests", "destination_conf": wantDest,
		"enabled": true, "max_upload_bytes": 5e6, "max_upload_records": 1000.0, "max_upload_interval_seconds": 30.0,
		"timestamp_format": "unixnano", "output_type": "ndjson", "field_names": wantFields,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("created job (-want +got):\n%s", d)
	}
	for _, w := range []string{
		"destination: https://raywatch.example.com:8443/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=****",
		"not offered on this zone, left out: JA3Hash",
		"Cloudflare validated the destination.",
		`created Logpush job 101 "raywatch-default-http-requests".`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	code, out, errOut = runCF(t, args...)
	if code != 0 {
		t.Fatalf("second run: exit %d; stderr:\n%s", code, errOut)
	}
	if f.Count(pCreate) != 1 || f.Count(pUpdate) != 0 {
		t.Errorf("after the second run: creates = %d, updates = %d; want 1, 0", f.Count(pCreate), f.Count(pUpdate))
	}
	if w := `Logpush job 101 "raywatch-default-http-requests" is up to date; nothing changed.`; !strings.Contains(out, w) {
		t.Errorf("second run output lacks %q:\n%s", w, out)
	}
}

func TestCloudflareConnectUpdatesJob(t *testing.T) {
	f := newFakeCloudflare(t)
	cfEnv(t, f)
	// The seed document's job: no user-agent, rfc3339 timestamps, default
	// limits, disabled after failures, and a sample rate the user chose.
	id := f.AddJob(map[string]any{
		"name": "raywatch-default-http-requests", "dataset": "http_requests", "enabled": false,
		"destination_conf": wantDest, "kind": "", "frequency": "high",
		"max_upload_bytes": 0, "max_upload_records": 0, "max_upload_interval_seconds": 0,
		"last_complete": "2026-11-20T10:00:00Z", "last_error": "2026-11-21T10:00:00Z", "error_message": "timeout",
		"output_options": cftest.WithDefaults(map[string]any{
			"field_names":      []any{"ClientIP", "ClientRequestHost", "ClientRequestMethod", "ClientRequestURI", "EdgeEndTimestamp", "EdgeResponseBytes", "EdgeResponseStatus", "EdgeStartTimestamp", "RayID"},
			"timestamp_format": "rfc3339",
			"sample_rate":      0.5,
		}),
	})
	code, out, errOut := runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443/")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if f.Count(pCreate) != 0 || f.Count(pUpdate) != 1 {
		t.Fatalf("creates = %d, updates = %d; want 0, 1", f.Count(pCreate), f.Count(pUpdate))
	}
	want := fmt.Sprintf(`updated Logpush job %d "raywatch-default-http-requests": enabled (was disabled); `+
		`field_names +ClientASN +ClientCountry +ClientRequestPath +ClientRequestProtocol +ClientRequestReferer +ClientRequestScheme +ClientRequestUserAgent +ClientSrcPort +ZoneName; `+
		`timestamp_format rfc3339 → unixnano; max_upload_bytes 0 → 5000000; max_upload_records 0 → 1000; max_upload_interval_seconds 0 → 30.`, id)
	if !strings.Contains(out, want) {
		t.Errorf("output lacks\n%s\n:\n%s", want, out)
	}
	body := f.LastBody(pUpdate)
	opts := body["output_options"].(map[string]any)
	if opts["sample_rate"] != 0.5 || opts["timestamp_format"] != "unixnano" || body["enabled"] != true {
		t.Errorf("update body = %v; want sample_rate kept at 0.5, unixnano, enabled", body)
	}
	// And now the job is what connect makes.
	code, out, _ = runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443")
	if code != 0 || f.Count(pUpdate) != 1 || !strings.Contains(out, "is up to date") {
		t.Errorf("second run: exit %d, updates %d, output:\n%s", code, f.Count(pUpdate), out)
	}
}

func TestCloudflareConnectDryRun(t *testing.T) {
	f := newFakeCloudflare(t)
	cfEnv(t, f)
	code, out, errOut := runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if f.Count(pCreate)+f.Count(pUpdate) != 0 {
		t.Errorf("dry run wrote: creates = %d, updates = %d", f.Count(pCreate), f.Count(pUpdate))
	}
	if w := `dry run: would create Logpush job "raywatch-default-http-requests".`; !strings.Contains(out, w) {
		t.Errorf("output lacks %q:\n%s", w, out)
	}
}

func TestCloudflareConnectValidationFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fakeCloudflare)
		want  []string
	}{
		{
			name: "valid false",
			setup: func(f *fakeCloudflare) {
				// Cloudflare quotes the destination, intake key included.
				f.Mu.Lock()
				defer f.Mu.Unlock()
				f.Validate = map[string]any{"valid": false, "message": "error validating destination: error writing object: error uploading: Post \"" + wantDest + "\": 401 Unauthorized"}
			},
			want: []string{"not valid: error validating destination", "header_X-SEKOIAIO-INTAKE-KEY=****", "hint: Cloudflare could not deliver a test batch"},
		},
		{
			name: "API error",
			setup: func(f *fakeCloudflare) {
				f.Fail(pValidate, -1, http.StatusBadRequest, 1002, "error validating destination: error writing object: error uploading", "")
			},
			want: []string{"validate the destination: Cloudflare API answered HTTP 400", "error 1002: error validating destination", "hint: Cloudflare could not deliver a test batch"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCloudflare(t)
			cfEnv(t, f)
			tc.setup(f)
			code, _, errOut := runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443")
			if code != 1 {
				t.Errorf("exit %d; want 1", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if f.Count(pCreate)+f.Count(pUpdate) != 0 {
				t.Errorf("a job was written after a failed validation")
			}
		})
	}
}

func TestCloudflareAPIErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		fail func(f *fakeCloudflare)
		want []string
	}{
		{
			name: "token without Logs permission",
			args: []string{"cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com"},
			fail: func(f *fakeCloudflare) {
				f.Fail("", -1, http.StatusForbidden, 10000, "Authentication error", "")
			},
			want: []string{"Cloudflare API answered HTTP 403", "error 10000: Authentication error", "hint: check the credentials: the API token needs the Logs Edit permission"},
		},
		{
			name: "unknown global key",
			args: []string{"cloudflare", "fields", "--zone", testZone},
			env:  map[string]string{"CLOUDFLARE_API_TOKEN": "", "CLOUDFLARE_EMAIL": testEmail, "CLOUDFLARE_API_KEY": testAPIKey + "0"},
			want: []string{"error 9106: Missing X-Auth-Key", "Logs Edit"},
		},
		{
			name: "wrong zone",
			args: []string{"cloudflare", "status", "--zone", "example.com"},
			want: []string{"error 7003: Could not route to /zones/example.com/logpush/jobs", "hint: check --zone: it takes the 32-character zone ID"},
		},
		{
			name: "no credentials",
			args: []string{"cloudflare", "status", "--zone", testZone},
			env:  map[string]string{"CLOUDFLARE_API_TOKEN": ""},
			want: []string{"no Cloudflare credentials: export CLOUDFLARE_API_TOKEN"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCloudflare(t)
			cfEnv(t, f)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.fail != nil {
				tc.fail(f)
			}
			code, out, errOut := runCF(t, tc.args...)
			if code != 1 {
				t.Errorf("exit %d; want 1; stdout:\n%s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func TestCloudflareConnectGlobalKey(t *testing.T) {
	f := newFakeCloudflare(t)
	cfEnv(t, f)
	t.Setenv("CLOUDFLARE_API_TOKEN", "")
	t.Setenv("CLOUDFLARE_EMAIL", testEmail)
	t.Setenv("CLOUDFLARE_API_KEY", testAPIKey)
	code, _, errOut := runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443")
	if code != 0 || f.Count(pCreate) != 1 {
		t.Errorf("exit %d, creates %d; stderr:\n%s", code, f.Count(pCreate), errOut)
	}
}

func TestCloudflareConnectIntakeKey(t *testing.T) {
	f := newFakeCloudflare(t)
	cfEnv(t, f)
	dataDir := t.TempDir()
	t.Setenv("RAYWATCH_INTAKE_KEY", "")

	// No key anywhere: a clear message and no API call.
	code, _, errOut := runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com", "--data-dir", dataDir)
	if code != 1 || !strings.Contains(errOut, "start raywatch serve once") || !strings.Contains(errOut, "RAYWATCH_INTAKE_KEY") {
		t.Errorf("exit %d; stderr:\n%s", code, errOut)
	}
	if _, err := os.Stat(app.KeyFile(dataDir)); err == nil {
		t.Errorf("connect created an intake key")
	}
	if n := f.Count(pFields) + f.Count(pValidate); n != 0 {
		t.Errorf("%d API calls without an intake key", n)
	}

	// The key raywatch serve generated.
	if err := os.WriteFile(filepath.Join(dataDir, "intake-key"), []byte(testIntakeKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443", "--data-dir", dataDir)
	if code != 0 || f.LastBody(pCreate)["destination_conf"] != wantDest {
		t.Errorf("exit %d; stderr:\n%s", code, errOut)
	}

	// A named intake of RAYWATCH_INTAKE_KEYS.
	t.Setenv("RAYWATCH_INTAKE_KEYS", "shop="+testIntakeKey+",blog=another-key-1234")
	code, out, errOut := runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443", "--intake", "shop")
	if code != 0 || !strings.Contains(out, `created Logpush job 102 "raywatch-shop-http-requests"`) {
		t.Errorf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, _, errOut = runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443", "--intake", "nope")
	if code != 1 || !strings.Contains(errOut, `no intake named "nope"`) || !strings.Contains(errOut, "blog, shop") {
		t.Errorf("exit %d; stderr:\n%s", code, errOut)
	}
}

func TestCloudflareStatus(t *testing.T) {
	f := newFakeCloudflare(t)
	cfEnv(t, f)
	f.AddJob(map[string]any{
		"name": "raywatch-default-http-requests", "dataset": "http_requests", "enabled": true,
		"destination_conf": wantDest, "max_upload_interval_seconds": 30,
		"last_complete": "2026-11-26T10:00:00Z", "last_error": nil, "error_message": nil,
	})
	f.AddJob(map[string]any{
		"name": "old", "dataset": "http_requests", "enabled": false,
		"destination_conf": "https://10.0.0.1/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=other-key-5678",
		"last_complete":    "2026-11-01T10:00:00Z", "last_error": "2026-11-02T10:00:00Z", "error_message": "error uploading: 401",
	})
	f.AddJob(map[string]any{"name": "s3", "dataset": "http_requests", "enabled": true, "destination_conf": "s3://bucket/logs?region=us-east-1"})
	f.AddJob(map[string]any{"name": "sekoia", "dataset": "http_requests", "enabled": true, "destination_conf": "https://intake.sekoia.io/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=abcd"})

	for _, args := range [][]string{
		{"cloudflare", "status", "--zone", testZone},
		{"cloudflare", "status"}, // every zone the token reads
	} {
		code, out, errOut := runCF(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d; stderr:\n%s", args, code, errOut)
		}
		zone := testZone
		if len(args) == 2 {
			zone = "example.com"
		}
		var rows [][]string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			rows = append(rows, strings.Fields(l))
		}
		want := [][]string{
			{"ZONE", "JOB", "NAME", "DATASET", "HOST", "INTAKE", "ENABLED", "LAST", "COMPLETE", "LAST", "ERROR", "ERROR", "MESSAGE"},
			{zone, "101", "raywatch-default-http-requests", "http_requests", "raywatch.example.com:8443", "default", "true", "2026-11-26T10:00:00Z", "-", "-"},
			{zone, "102", "old", "http_requests", "10.0.0.1", "(other", "key)", "false", "2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z", "error", "uploading:", "401"},
			{"job", "102", `"old"`, "is", "disabled;", "raywatch", "cloudflare", "connect", "re-enables", "it."},
		}
		if d := cmp.Diff(want, rows); d != "" {
			t.Errorf("%v: output (-want +got):\n%s\n%s", args, d, out)
		}
	}
}

func TestCloudflareConnectBlockList(t *testing.T) {
	f := newFakeCloudflare(t)
	cfEnv(t, f)
	args := []string{"cloudflare", "connect", "--zone", testZone, "--block-list", "rw_block", "--block-action", "block"}
	code, out, errOut := runCF(t, args...)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, w := range []string{`created IP list "rw_block"`, "in account " + cftest.Account, "created WAF custom rule", "on zone " + testZone + ": block when ip.src in $rw_block"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if f.Count(pCreate)+f.Count(pValidate) != 0 {
		t.Errorf("connect --block-list without --url touched Logpush")
	}
	rules := f.CustomRules()
	if len(rules) != 1 || rules[0]["expression"] != "ip.src in $rw_block" || rules[0]["action"] != "block" {
		t.Fatalf("custom rules = %v", rules)
	}

	// Once: a second run changes nothing.
	code, out, errOut = runCF(t, args...)
	if code != 0 {
		t.Fatalf("second run: exit %d; stderr:\n%s", code, errOut)
	}
	if n := f.Count(cftest.PCreateList) + f.Count(cftest.PCreateRuleset) + f.Count(cftest.PCreateRule) + f.Count(cftest.PEditRule); n != 2 || len(f.CustomRules()) != 1 {
		t.Errorf("after the second run: %d writes in all, %d rules; want 2 (the first run's), 1", n, len(f.CustomRules()))
	}
	if !strings.Contains(out, `IP list "rw_block" exists`) || !strings.Contains(out, "is up to date; nothing changed") {
		t.Errorf("second run output:\n%s", out)
	}

	// With --url: the Logpush job too; the default action is a managed challenge.
	code, out, errOut = runCF(t, "cloudflare", "connect", "--zone", testZone, "--url", "https://raywatch.example.com:8443", "--block-list", "rw_block")
	if code != 0 || f.Count(pCreate) != 1 || f.Count(cftest.PEditRule) != 1 || !strings.Contains(out, "action block → managed_challenge") {
		t.Errorf("exit %d, job creates %d, rule edits %d; stdout:\n%s\nstderr:\n%s", code, f.Count(pCreate), f.Count(cftest.PEditRule), out, errOut)
	}

	// Bad names fail before any call.
	code, _, errOut = runCF(t, "cloudflare", "connect", "--zone", testZone, "--block-list", "rw-block")
	if code != 1 || !strings.Contains(errOut, "letters, digits and underscores") {
		t.Errorf("a bad list name: exit %d; stderr:\n%s", code, errOut)
	}
	code, _, errOut = runCF(t, "cloudflare", "connect", "--zone", testZone, "--block-list", "rw_block", "--block-action", "drop")
	if code != 1 || !strings.Contains(errOut, "want block or managed_challenge") {
		t.Errorf("a bad action: exit %d; stderr:\n%s", code, errOut)
	}
}

func TestCloudflareStatusBlockList(t *testing.T) {
	f := newFakeCloudflare(t)
	cfEnv(t, f)
	t.Setenv("CLOUDFLARE_ACCOUNT_ID", cftest.Account)
	f.AddList("rw_block", "ip", "203.0.113.7", "2001:db8:1:2::/64")
	code, out, errOut := runCF(t, "cloudflare", "status", "--zone", testZone, "--block-list", "rw_block")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, w := range []string{
		"Block list rw_block (account " + cftest.Account + "): 2 addresses.",
		"No WAF custom rule on zone " + testZone + " applies the list",
		"raywatch cloudflare connect --zone " + testZone + " --block-list rw_block --block-action block",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	f.AddCustomRule(map[string]any{"action": "managed_challenge", "expression": "ip.src in $rw_block", "ref": "raywatch_block_rw_block", "enabled": true})
	t.Setenv("RAYWATCH_BLOCK_LIST", "rw_block")
	code, out, _ = runCF(t, "cloudflare", "status")
	if w := "on zone example.com: managed_challenge when ip.src in $rw_block (enabled)."; code != 0 || !strings.Contains(out, w) {
		t.Errorf("exit %d; output lacks %q:\n%s", code, w, out)
	}
}
