package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/exception"
	"github.com/raywatch/raywatch/store"
)

func TestRulesCheckSigmaHQ(t *testing.T) {
	dir := "../../../shared/testdata/sigmahq/rules"
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SigmaHQ rules not present at %s (shared test data): %v", dir, err)
	}
	builtin, berr := rules.Builtin()
	if berr != nil {
		t.Fatal(berr)
	}
	// One SigmaHQ rule reads cs-username, which no Cloudflare record
	// carries: it is reported unable to fire, and rules check fails
	// unless --allow-unable.
	out, err := exec.Command(binPath, "rules", "check", "--rules-dir", dir).CombinedOutput()
	want := fmt.Sprintf("%d rules loaded, 0 errors, 0 skipped, 1 unable to fire", 145+len(builtin))
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), want) ||
		!strings.Contains(string(out), `web_cve_2021_26084_confluence_rce_exploit.yml:25: unable to fire: "Potential CVE-2021-26084 Exploitation Attempt": field "cs-username" has no mapping to a Cloudflare field`) {
		t.Errorf("rules check --rules-dir %s = exit %d\n%s; want exit 1, %s and the cs-username rule with its file and line", dir, code, out, want)
	}
	out, err = exec.Command(binPath, "rules", "check", "--allow-unable", "--rules-dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), want) {
		t.Errorf("rules check --allow-unable --rules-dir %s = %v\n%s; want exit 0 and %s (the 145 SigmaHQ rules and the built-ins)", dir, err, out, want)
	}
	out, err = exec.Command(binPath, "rules", "list", "--json", "--disable-rules", "c0ba0fe2-2266-4916-b42e-54dff94d5ff4").Output()
	if err != nil || !strings.Contains(string(out), `"enabled": false`) {
		t.Errorf("rules list --disable-rules = %v\n%s; want the TrevorC2 rule disabled", err, out)
	}
}

// problemRules are rule files with one of each problem issue 15 names,
// beside a good rule and a Sigma filter of it.
var problemRules = map[string]string{
	"good.yml": `title: WordPress admin probe
id: 5b0b7c10-0000-4000-8000-000000000001
status: experimental
logsource: {category: webserver}
detection:
  selection:
    url.path|startswith: /wp-admin/
  condition: selection
level: medium
`,
	"filter_scanner.yml": `title: Our vulnerability scanner
id: 5b0b7c10-0000-4000-8000-000000000009
logsource: {category: webserver}
filter:
  rules: [5b0b7c10-0000-4000-8000-000000000001]
  selection:
    source.ip|cidr: 198.51.100.0/24
  condition: selection
`,
	"windows_process.yml": `title: Windows process creation of cmd
id: 5b0b7c10-0000-4000-8000-000000000002
status: experimental
logsource:
  category: process_creation
  product: windows
detection:
  selection:
    Image|endswith: '\cmd.exe'
  condition: selection
level: high
`,
	"proxy_unmapped.yml": `title: Proxy download of a script file
id: 5b0b7c10-0000-4000-8000-000000000003
status: experimental
logsource:
  category: proxy
detection:
  selection:
    TargetFilename|endswith: '.ps1'
  condition: selection
level: medium
`,
	"level_typo.yml": `title: Level typo
id: 5b0b7c10-0000-4000-8000-000000000004
logsource: {category: webserver}
detection:
  selection:
    url.path: /admin
  condition: selection
level: hgh
`,
	"status_typo.yml": `title: Status typo
id: 5b0b7c10-0000-4000-8000-000000000005
status: stabel
logsource: {category: webserver}
detection:
  selection:
    url.path: /admin2
  condition: selection
level: low
`,
	"deprecated.yml": `title: Old detection
id: 5b0b7c10-0000-4000-8000-000000000006
status: deprecated
logsource: {category: webserver}
detection:
  selection:
    url.path: /old
  condition: selection
level: low
`,
	"unsupported.yml": `title: Needs a backend feature
id: 5b0b7c10-0000-4000-8000-000000000007
status: unsupported
logsource: {category: webserver}
detection:
  selection:
    url.path: /new
  condition: selection
level: low
`,
	"filter_orphan.yml": `title: Filter naming no loaded rule
id: 5b0b7c10-0000-4000-8000-000000000008
logsource: {category: webserver}
filter:
  rules: [5b0b7c10-0000-4000-8000-00000000dead]
  selection:
    source.ip: 192.0.2.10
  condition: selection
`,
}

func writeRules(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestRulesCheckReportsEveryProblem runs rules check on a folder with one
// of each problem: each is reported with its file and line, and the exit
// status is 0 only when every file loads and every loaded rule can fire,
// or the flags accept what is left.
func TestRulesCheckReportsEveryProblem(t *testing.T) {
	dir := writeRules(t, problemRules)
	code, out, _ := runBin(t, nil, "rules", "check", "--rules-dir", dir)
	for _, want := range []string{
		dir + `/level_typo.yml:8: level "hgh" is not one of informational, low, medium, high, critical`,
		dir + `/status_typo.yml:3: status "stabel" is not one of`,
		dir + `/deprecated.yml:3: skipped: "Old detection" (status deprecated)`,
		dir + `/unsupported.yml:3: skipped: "Needs a backend feature" (status unsupported)`,
		dir + `/windows_process.yml:4: unable to fire: "Windows process creation of cmd": logsource category process_creation, product windows is not web traffic`,
		dir + `/proxy_unmapped.yml:8: unable to fire: "Proxy download of a script file": field "TargetFilename" has no mapping to a Cloudflare field`,
		dir + `/filter_orphan.yml:5: unable to fire: "Filter naming no loaded rule": names no loaded rule`,
		"11 rules loaded, 2 errors, 2 skipped, 3 unable to fire",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rules check output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("rules check with load errors: exit %d; want 1", code)
	}
	// Without the load errors, each flag accepts its own kind of problem
	// only.
	fixed := map[string]string{}
	for name, text := range problemRules {
		if name != "level_typo.yml" && name != "status_typo.yml" {
			fixed[name] = text
		}
	}
	dir = writeRules(t, fixed)
	for _, tc := range []struct {
		flags []string
		code  int
		hint  string
	}{
		{nil, 1, "(--allow-skipped and --allow-unable to accept these)"},
		{[]string{"--allow-skipped"}, 1, "(--allow-unable to accept these)"},
		{[]string{"--allow-unable"}, 1, "(--allow-skipped to accept these)"},
		{[]string{"--allow-skipped", "--allow-unable"}, 0, ""},
	} {
		code, out, _ := runBin(t, nil, append([]string{"rules", "check", "--rules-dir", dir}, tc.flags...)...)
		if code != tc.code || !strings.Contains(out, "11 rules loaded, 0 errors, 2 skipped, 3 unable to fire") || tc.hint != "" && !strings.Contains(out, tc.hint) {
			t.Errorf("rules check %v = exit %d\n%s; want exit %d and %q", tc.flags, code, out, tc.code, tc.hint)
		}
	}
	// The good rule and its filter alone: exit 0.
	dir = writeRules(t, map[string]string{"good.yml": problemRules["good.yml"], "filter_scanner.yml": problemRules["filter_scanner.yml"]})
	if code, out, _ := runBin(t, nil, "rules", "check", "--rules-dir", dir); code != 0 || !strings.Contains(out, "8 rules loaded, 0 errors, 0 skipped, 0 unable to fire") {
		t.Errorf("rules check of good rules = exit %d\n%s; want exit 0", code, out)
	}
}

// TestRulesListTellsHealth checks that rules list marks the rules unable
// to fire (and says why) rather than showing their field coverage, and
// lists the skipped rules.
func TestRulesListTellsHealth(t *testing.T) {
	dir := writeRules(t, map[string]string{
		"good.yml": problemRules["good.yml"], "proxy_unmapped.yml": problemRules["proxy_unmapped.yml"],
		"deprecated.yml": problemRules["deprecated.yml"], "filter_scanner.yml": problemRules["filter_scanner.yml"],
	})
	code, out, errOut := runBin(t, nil, "rules", "list", "--rules-dir", dir, "--data-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("rules list = exit %d\n%s%s", code, out, errOut)
	}
	var unableRow, filterRow string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "5b0b7c10-0000-4000-8000-000000000003"):
			unableRow = l
		case strings.HasPrefix(l, "5b0b7c10-0000-4000-8000-000000000009"):
			filterRow = l
		}
	}
	if f := strings.Fields(unableRow); len(f) < 7 || f[1] != "detection" || f[5] != "unable" || f[6] != "-" {
		t.Errorf("row of the unmapped proxy rule = %q; want kind detection, health unable, no coverage", unableRow)
	}
	if f := strings.Fields(filterRow); len(f) < 2 || f[1] != "filter" {
		t.Errorf("row of the filter = %q; want kind filter", filterRow)
	}
	if !strings.Contains(out, `unable to fire (not evaluated): `+dir+`/proxy_unmapped.yml:8: "Proxy download of a script file": field "TargetFilename"`) {
		t.Errorf("rules list does not say why the proxy rule cannot fire:\n%s", out)
	}
	if !strings.Contains(errOut, dir+`/deprecated.yml:3: "Old detection" (status deprecated)`) {
		t.Errorf("rules list stderr = %q; want the deprecated rule as skipped", errOut)
	}
}

// TestRulesExceptionsExport exports the exceptions of a data folder as
// Sigma filters that a rules folder loads (rules check: 0 problems), and,
// while serve holds the folder, reads them from its API with --url.
func TestRulesExceptionsExport(t *testing.T) {
	dataDir := t.TempDir()
	st, err := store.Open(filepath.Join(dataDir, "alerts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []exception.Exception{
		{Rule: "7c5c2e06-91d3-4bed-a5e3-06e7c83af1db", Match: map[string]exception.Values{"source.ip": {"198.51.100.7"}}, Comment: "pentest laptop", CreatedBy: "ana"},
		{Rule: "*", Match: map[string]exception.Values{"user_agent.original|contains": {"Nessus"}, "source.ip": {"192.0.2.0/24", "203.0.113.9"}}, Comment: "our scanner", Expires: time.Now().Add(24 * time.Hour)},
	} {
		if _, err := st.PutException(context.Background(), x, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBin(t, nil, "rules", "exceptions", "--sigma", "--data-dir", dataDir)
	if code != 0 || strings.Count(out, "\nfilter:\n") != 2 || !strings.Contains(out, "user_agent.original|contains: Nessus") || !strings.Contains(out, "# expires ") {
		t.Fatalf("rules exceptions --sigma = exit %d\n%s%s; want two filters, the expiry as a comment", code, out, errOut)
	}
	rulesDir := writeRules(t, map[string]string{"exceptions.yml": out})
	if code, out, _ := runBin(t, nil, "rules", "check", "--rules-dir", rulesDir); code != 0 || !strings.Contains(out, "8 rules loaded, 0 errors, 0 skipped, 0 unable to fire") {
		t.Errorf("rules check of the exported filters = exit %d\n%s; want them loaded, able to fire", code, out)
	}
	if code, out, _ := runBin(t, nil, "rules", "exceptions", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "pentest laptop") || !strings.Contains(out, "source.ip=192.0.2.0/24,203.0.113.9") {
		t.Errorf("rules exceptions (table) = exit %d\n%s", code, out)
	}

	// While serve holds the folder: a clear error, and --url reads them.
	in := startServe(t, dataDir, "RAYWATCH_INTAKE_KEY=export-test-key")
	if code, _, errOut := runBin(t, nil, "rules", "exceptions", "--sigma", "--data-dir", dataDir); code != 1 || !strings.Contains(errOut, "--url http://HOST:PORT") {
		t.Errorf("rules exceptions on a held folder = exit %d, %q; want 1 and the --url hint", code, errOut)
	}
	code, viaAPI, errOut := runBin(t, nil, "rules", "exceptions", "--sigma", "--url", in.base)
	if code != 0 || viaAPI != out {
		t.Errorf("rules exceptions --url = exit %d %s\n%s; want the same filters as from the folder:\n%s", code, errOut, viaAPI, out)
	}
	if code := in.stop(); code != 0 {
		t.Errorf("exit = %d", code)
	}
}
