package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/rules"
)

// retroReport is GET /api/v1/retro.
type retroReport struct {
	Archive struct {
		Enabled bool      `json:"enabled"`
		Bytes   int64     `json:"bytes"`
		Objects int       `json:"objects"`
		Oldest  time.Time `json:"oldest"`
	} `json:"archive"`
	Hunts []struct {
		Kind       string   `json:"kind"`
		Rule       string   `json:"rule"`
		State      string   `json:"state"`
		Indicators int      `json:"indicators"`
		Shown      []string `json:"shown"`
		Records    int64    `json:"records"`
		Matches    int      `json:"matches"`
	} `json:"hunts"`
}

// retroAlert is what the test reads of an alert.
type retroAlert struct {
	ID        string    `json:"id"`
	Retro     bool      `json:"retro"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	Rule      struct {
		ID string `json:"id"`
	} `json:"rule"`
	Matches []struct {
		Field     string `json:"field"`
		Indicator struct {
			File string `json:"file"`
			Line int    `json:"line"`
		} `json:"indicator"`
	} `json:"matches"`
}

func retroAlerts(t *testing.T, base string) []retroAlert {
	t.Helper()
	var page struct {
		Alerts []retroAlert `json:"alerts"`
	}
	apiGet(t, base, "/api/v1/alerts?limit=100", &page)
	return page.Alerts
}

// TestRetroHuntEndToEnd serves with an archive; a batch from an address
// raises nothing; once the address is added to an IOC file, the
// retro-hunt raises an intelligence-feed alert marked retro with the
// event's own time; the same indicator added again (with another, new
// one) does not raise it again. A drop-in rule retro-run from the API
// finds its record in the archive too.
func TestRetroHuntEndToEnd(t *testing.T) {
	dir := t.TempDir()
	iocDir, rulesDir, archiveDir := filepath.Join(dir, "iocs"), filepath.Join(dir, "rules"), filepath.Join(dir, "archive")
	for _, d := range []string{iocDir, rulesDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const key = "retro-e2e-intake-key-0123456789"
	in := startServe(t, filepath.Join(dir, "data"), "RAYWATCH_INTAKE_KEY="+key, "RAYWATCH_IOC_DIR="+iocDir,
		"RAYWATCH_RULES_DIR="+rulesDir, "RAYWATCH_ARCHIVE_DIR="+archiveDir, "RAYWATCH_ARCHIVE_RETENTION=24h")

	const evil = "192.0.2.77"
	at := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Millisecond)
	var batch bytes.Buffer
	for i := range 20 {
		req := traffic.Request{
			IP: fmt.Sprintf("198.51.100.%d", i+1), Method: "GET", Host: "shop.example.com", URI: fmt.Sprintf("/p/%d", i),
			UA: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", Status: 200, Time: at.Add(time.Duration(i) * time.Second),
			RayID: fmt.Sprintf("9a%014x", i),
		}
		if i == 7 {
			req.IP, req.URI = evil, "/wp-admin/retro-probe.php"
		}
		batch.Write(traffic.Render(nil, req))
		batch.WriteByte('\n')
	}
	rep := postArchived(t, in, key, batch.Bytes())
	if !rep.Archive.Enabled || rep.Archive.Bytes == 0 || rep.Archive.Oldest.IsZero() {
		t.Errorf("archive = %+v; want enabled, with a size and a span", rep.Archive)
	}
	if as := retroAlerts(t, in.base); len(as) != 0 {
		t.Fatalf("%d alerts before the address was published; want none", len(as))
	}

	// The address is published.
	if err := os.WriteFile(filepath.Join(iocDir, "new.txt"), []byte("# published today\n"+evil+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var as []retroAlert
	waitFor(t, 30*time.Second, func() bool {
		as = retroAlerts(t, in.base)
		return len(as) > 0
	}, "the retro alert")
	a := as[0]
	wantTime := at.Add(7 * time.Second)
	if len(as) != 1 || !a.Retro || a.Rule.ID != rules.IntelligenceFeedID || !a.FirstSeen.Equal(wantTime) || a.Count != 1 {
		t.Errorf("alerts = %+v; want one retro intelligence-feed alert first seen at %v", as, wantTime)
	}
	if len(a.Matches) != 1 || a.Matches[0].Field != "source.ip" || a.Matches[0].Indicator.File != "new.txt" || a.Matches[0].Indicator.Line != 2 {
		t.Errorf("matches = %+v; want source.ip and the indicator of new.txt:2", a.Matches)
	}

	var ov struct {
		TopRules []struct {
			Key    string `json:"key"`
			Alerts int    `json:"alerts"`
		} `json:"top_rules"`
	}
	apiGet(t, in.base, "/api/v1/overview?range=24h", &ov)
	if len(ov.TopRules) != 1 || ov.TopRules[0].Key != rules.IntelligenceFeedID {
		t.Errorf("overview top rules = %+v; want the retro alert's rule", ov.TopRules)
	}

	// The same address again, in another file, with a new one: only the
	// new one is hunted, and the alert is not repeated.
	if err := os.WriteFile(filepath.Join(iocDir, "again.txt"), []byte(evil+"\n203.0.113.99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		apiGet(t, in.base, "/api/v1/retro", &rep)
		return len(rep.Hunts) == 2 && rep.Hunts[0].State == "done"
	}, "the second hunt")
	h := rep.Hunts[0]
	if h.Kind != "indicators" || h.Indicators != 1 || len(h.Shown) != 1 || !strings.Contains(h.Shown[0], "203.0.113.99") || h.Matches != 0 || h.Records != 20 {
		t.Errorf("second hunt = %+v; want the one new indicator over the 20 archived records, no match", h)
	}
	if first := rep.Hunts[1]; first.State != "done" || first.Matches != 1 || first.Indicators != 1 {
		t.Errorf("first hunt = %+v; want done with 1 match", first)
	}
	if as := retroAlerts(t, in.base); len(as) != 1 || as[0].ID != a.ID || as[0].Count != 1 {
		t.Errorf("after the indicator was added again: %+v; want the same alert, count 1", as)
	}

	// A drop-in rule written after the traffic, retro-run from its row.
	rule := `title: WordPress admin probe (added later)
id: 3c1d6f0e-8a52-4b7e-9f3d-5e2a7c9b1d40
status: experimental
logsource:
  category: webserver
  product: cloudflare
detection:
  selection:
    url.path|startswith: '/wp-admin/'
  condition: selection
level: medium
`
	if err := os.WriteFile(filepath.Join(rulesDir, "wp.yml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	ruleID := "3c1d6f0e-8a52-4b7e-9f3d-5e2a7c9b1d40"
	var code int
	waitFor(t, 30*time.Second, func() bool {
		code, _ = postEmpty(t, in.base+"/api/v1/rules/"+ruleID+"/retro")
		return code != http.StatusNotFound // until the rules folder is reloaded
	}, "the drop-in rule loaded")
	if code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/rules/%s/retro = %d; want 202", ruleID, code)
	}
	if code, body := postEmpty(t, in.base+"/api/v1/rules/"+rules.IntelligenceFeedID+"/retro"); code != http.StatusBadRequest || !strings.Contains(body, "indicator") {
		t.Errorf("retro-run of the intelligence-feed rule = %d %s; want 400 pointing to indicators", code, body)
	}
	waitFor(t, 30*time.Second, func() bool {
		for _, a := range retroAlerts(t, in.base) {
			if a.Rule.ID == ruleID && a.Retro && a.FirstSeen.Equal(wantTime) {
				return true
			}
		}
		return false
	}, "the retro alert of the drop-in rule")
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d\n%s", code, in.log())
	}
}

// postEmpty posts an empty body and returns the status and the body.
func postEmpty(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postArchived posts batch to the intake and waits until it is the
// archive's one object; it returns /api/v1/retro's report then.
func postArchived(t *testing.T, in *instance, key string, batch []byte) retroReport {
	t.Helper()
	if code, body := postBatch(t, in.base, key, batch); code != 200 {
		t.Fatalf("POST batch = %d %s", code, body)
	}
	var rep retroReport
	waitFor(t, 30*time.Second, func() bool {
		apiGet(t, in.base, "/api/v1/retro", &rep)
		return rep.Archive.Objects == 1
	}, "the batch in the archive")
	return rep
}
