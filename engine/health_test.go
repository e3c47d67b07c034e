package engine_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/rules"
)

// TestUnableToFire covers every "unable to fire" case of issue 15: such a
// rule is reported with file, line and field, and is not evaluated.
func TestUnableToFire(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		// A Windows process_creation rule on Image.
		"windows.yml": "title: Whoami\nid: win\nlevel: high\nlogsource:\n  category: process_creation\n  product: windows\ndetection:\n  sel:\n    Image|endswith: '\\whoami.exe'\n    c-uri|contains: /index\n  condition: sel\n",
		// A proxy rule on a field that no Cloudflare field maps to.
		"unmapped.yml": "title: Dropped file\nid: unmapped\nlevel: high\nlogsource: {category: proxy}\ndetection:\n  sel:\n    c-uri|contains: /index\n    TargetFilename|endswith: '.exe'\n  condition: sel\n",
		// count(field) of a field that never exists.
		"count.yml": "title: Distinct images\nid: count\nlevel: high\nlogsource: {category: proxy}\ndetection:\n  sel:\n    c-uri|contains: /index\n  timeframe: 1m\n  condition: sel | count(Image) by c-ip > 0\n",
		// A correlation whose only rule cannot fire.
		"corr.yml": "title: Many drops\nid: corr\ncorrelation:\n  type: event_count\n  rules: [unmapped]\n  group-by: [c-ip]\n  timespan: 1m\n  condition: {gte: 1}\n",
		// Rules that can fire.
		"ok.yml":       "title: Index\nid: ok\nlevel: high\nlogsource: {category: proxy}\ndetection:\n  sel:\n    c-uri|contains: /index\n  condition: sel\n",
		"optional.yml": "title: Index or image\nid: optional\nlevel: high\nlogsource: {category: webserver}\ndetection:\n  a:\n    c-uri|contains: /index\n  b:\n    Image: x\n  condition: a or b\n",
	}
	for name, src := range files {
		write(t, dir, name, src)
	}
	f, err := rules.LoadFolder(dir)
	if err != nil || len(f.Problems) > 0 {
		t.Fatalf("LoadFolder: %v %v", err, f.Problems)
	}
	statuses, problems := engine.Diagnose(f.Rules, engine.Options{})
	if len(problems) > 0 {
		t.Fatalf("Diagnose problems: %v", problems)
	}
	want := map[string]engine.Health{
		"win":      {State: engine.HealthUnable, File: filepath.Join(dir, "windows.yml"), Line: 4, Reason: "logsource category process_creation, product windows is not web traffic"},
		"unmapped": {State: engine.HealthUnable, File: filepath.Join(dir, "unmapped.yml"), Line: 8, Field: "TargetFilename", Reason: `field "TargetFilename" has no mapping`},
		"count":    {State: engine.HealthUnable, File: filepath.Join(dir, "count.yml"), Line: 9, Field: "Image", Reason: `aggregation field "Image" has no mapping`},
		"corr":     {State: engine.HealthUnable, File: filepath.Join(dir, "corr.yml"), Line: 4, Reason: `correlates rule "unmapped", which is unable to fire`},
		"ok":       {State: engine.HealthOK},
		"optional": {State: engine.HealthOK},
	}
	if len(statuses) != len(want) {
		t.Errorf("Diagnose listed %d rules; want %d", len(statuses), len(want))
	}
	for _, st := range statuses {
		w := want[st.ID]
		h := st.Health
		if h.State != w.State || h.File != w.File || h.Line != w.Line || h.Field != w.Field || !strings.HasPrefix(h.Reason, w.Reason) {
			t.Errorf("rule %s: Health = %+v; want %+v", st.ID, h, w)
		}
	}

	// Rules unable to fire are listed by the engine and never evaluated:
	// the event below matches the c-uri selection of every rule.
	e, err := engine.New(f.Rules)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.Rules()); n != len(want) {
		t.Errorf("Rules() lists %d rules; want %d", n, len(want))
	}
	ev := httpEvent(t, nil)
	var got []string
	for _, a := range e.Match(ev, "t", time.Now()) {
		got = append(got, a.Rule.ID)
	}
	if strings.Join(got, ",") != "ok,optional" {
		t.Errorf("Match alerts from %v; want only ok,optional", got)
	}
}

// TestSigmaHQHealth checks that SigmaHQ's web rules can fire, but for the
// one that needs a user name, which Cloudflare's http_requests records do
// not carry.
func TestSigmaHQHealth(t *testing.T) {
	rs := loadSigmaHQ(t)
	statuses, problems := engine.Diagnose(rs, engine.Options{})
	if len(problems) > 0 {
		t.Fatalf("Diagnose problems: %v", problems)
	}
	var unable []string
	for _, st := range statuses {
		if st.Health.State != engine.HealthOK {
			unable = append(unable, filepath.Base(st.File)+" "+st.Health.Field)
		}
	}
	if want := "web_cve_2021_26084_confluence_rce_exploit.yml cs-username"; strings.Join(unable, ";") != want {
		t.Errorf("unable to fire: %q; want only %q", unable, want)
	}
	// With cs-username mapped (as the firing test does), every rule can fire.
	statuses, _ = engine.Diagnose(rs, engine.Options{Mapping: testMapping(t)})
	for _, st := range statuses {
		if st.Health.State != engine.HealthOK {
			t.Errorf("with cs-username mapped, %s: %v", st.File, st.Health)
		}
	}
}

func TestBuiltinRulesCanFire(t *testing.T) {
	rs, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	statuses, problems := engine.Diagnose(rs, engine.Options{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	for _, st := range statuses {
		if st.Health.State != engine.HealthOK {
			t.Errorf("built-in rule %s: %v", st.File, st.Health)
		}
	}
}

func write(t testing.TB, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
