package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// withoutUserAgent drops ClientRequestUserAgent from every record of the
// sample batch, as a Logpush job built from the seed document's field list
// would send them.
func withoutUserAgent(t *testing.T) []byte {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(sampleBatch(t))), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		delete(rec, "ClientRequestUserAgent")
		rec["RayID"] = fmt.Sprint(rec["RayID"], "-noua")
		b, _ := json.Marshal(rec)
		out = append(out, string(b))
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

func TestFieldCoverageAndIOCReports(t *testing.T) {
	const key = "reports-intake-key-0123456789"
	dataDir, iocDir := t.TempDir(), t.TempDir()
	feed := filepath.Join(iocDir, "feed.txt")
	if err := os.WriteFile(feed, []byte("203.0.113.66\nnot a valid indicator!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := startServe(t, dataDir, "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_IOC_DIR="+iocDir)

	// IOC files: counts by type and the bad line with its number.
	var iocs struct {
		Enabled bool
		Total   int
		Files   []struct {
			File       string
			LineErrors []struct{ Line int } `json:"line_errors"`
		}
	}
	apiGet(t, in.base, "/api/v1/iocs", &iocs)
	if !iocs.Enabled || iocs.Total != 1 || len(iocs.Files) != 1 || len(iocs.Files[0].LineErrors) != 1 || iocs.Files[0].LineErrors[0].Line != 2 {
		t.Errorf("/api/v1/iocs = %+v; want 1 indicator and the bad line 2 of feed.txt", iocs)
	}

	// Records without ClientRequestUserAgent blind the user-agent rules.
	if status, body := postBatch(t, in.base, key, withoutUserAgent(t)); status != 200 {
		t.Fatalf("POST = %d %s", status, body)
	}
	type report struct {
		Intake  string
		Sampled uint64   `json:"sampled_records"`
		Missing []string `json:"missing_fields"`
		Blind   []struct {
			Title string
		} `json:"blind_rules"`
		Message, Fix string
	}
	var reps []report
	waitFor(t, 30*time.Second, func() bool {
		apiGet(t, in.base, "/api/v1/coverage", &reps)
		return len(reps) == 1 && reps[0].Sampled > 0
	}, "the coverage of intake default")
	r := reps[0]
	if len(r.Blind) != 4 || len(r.Missing) != 1 || r.Missing[0] != "ClientRequestUserAgent" {
		t.Errorf("coverage = %+v; want 4 blind rules missing ClientRequestUserAgent", r)
	}
	if want := `4 rules cannot fire on intake "default": ClientRequestUserAgent is not in the records`; !strings.Contains(r.Message, want) || !strings.Contains(r.Fix, "raywatch cloudflare connect") {
		t.Errorf("message %q, fix %q; want %q and the connect line", r.Message, r.Fix, want)
	}
	var rulesResp struct {
		Rules []struct {
			ID       string
			Title    string
			Coverage []struct{ Intake, State string }
		}
	}
	apiGet(t, in.base, "/api/v1/rules", &rulesResp)
	states := map[string]string{}
	for _, rule := range rulesResp.Rules {
		if len(rule.Coverage) == 1 {
			states[rule.Title] = rule.Coverage[0].State
		}
	}
	if states["Lemon Duck User-Agent"] != "blind" || states["Bazar Loader Backdoor C2 Polling"] != "ok" {
		t.Errorf("/api/v1/rules coverage = %v; want Lemon Duck blind and Bazar ok", states)
	}
	// The intelligence rule fired on 203.0.113.66 even without user-agents.
	alerts := waitAlerts(t, in.base, 2)
	intel := 0
	for _, a := range alerts {
		if a.Rule.Title == "Intelligence feed match" {
			intel++
		}
	}
	if intel != 1 {
		t.Errorf("intelligence alerts = %d; want 1 (the record from 203.0.113.66)", intel)
	}

	// A live edit of the IOC folder is picked up.
	if err := os.WriteFile(feed, []byte("203.0.113.66\n203.0.113.12\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		apiGet(t, in.base, "/api/v1/iocs", &iocs)
		return iocs.Total == 2
	}, "the edited IOC file to be reloaded")

	// Records with the user-agent again clear the warning.
	if status, body := postBatch(t, in.base, key, sampleBatch(t)); status != 200 {
		t.Fatalf("POST = %d %s", status, body)
	}
	waitFor(t, 30*time.Second, func() bool {
		reps = nil // decode afresh: omitted members must not keep old values
		apiGet(t, in.base, "/api/v1/coverage", &reps)
		return len(reps) == 1 && len(reps[0].Blind) == 0 && reps[0].Message == ""
	}, "the coverage warning to clear")
	if code := in.stop(); code != 0 {
		t.Fatalf("exit = %d", code)
	}

	// rules list reads the coverage serve saved.
	out, err := exec.Command(binPath, "rules", "list", "--data-dir", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("rules list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "FIELDS") || !strings.Contains(string(out), " ok ") {
		t.Errorf("rules list does not show the field coverage:\n%s", out)
	}
}

func TestJobHealthReport(t *testing.T) {
	f := newFakeCloudflare(t)
	const key = "jobs-intake-key-0123456789"
	f.AddJob(map[string]any{"name": "raywatch-default-http-requests", "dataset": "http_requests", "enabled": true,
		"destination_conf": "https://raywatch.example.com/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=" + key,
		"last_complete":    time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "max_upload_interval_seconds": 30})
	f.AddJob(map[string]any{"name": "old", "dataset": "http_requests", "enabled": false,
		"destination_conf": "https://raywatch.example.com/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=" + key})
	in := startServe(t, t.TempDir(), "RAYWATCH_INTAKE_KEY="+key,
		"RAYWATCH_CLOUDFLARE_API_URL="+f.URL(), "CLOUDFLARE_API_TOKEN="+testToken, "CLOUDFLARE_EMAIL=", "CLOUDFLARE_API_KEY=")
	var rep struct {
		Enabled bool
		Error   string
		Jobs    []struct {
			ID      int64
			Name    string
			Intake  string
			Warning string
		}
	}
	waitFor(t, 30*time.Second, func() bool {
		apiGet(t, in.base, "/api/v1/jobs", &rep)
		return rep.Enabled && len(rep.Jobs) == 2
	}, "the Logpush jobs to be polled")
	warnings := map[string]string{}
	for _, j := range rep.Jobs {
		if j.Intake != "default" {
			t.Errorf("job %q intake = %q; want default", j.Name, j.Intake)
		}
		warnings[j.Name] = j.Warning
	}
	if !strings.Contains(warnings["old"], "disabled") || !strings.Contains(warnings["raywatch-default-http-requests"], "pushed nothing since") {
		t.Errorf("warnings = %q; want the disabled job and the silent job named", warnings)
	}
	if code := in.stop(); code != 0 {
		t.Fatalf("exit = %d", code)
	}
	if strings.Contains(in.log(), testToken) || strings.Contains(in.log(), key) {
		t.Error("the log shows the API token or the intake key")
	}
}
