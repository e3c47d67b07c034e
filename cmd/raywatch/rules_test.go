package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/raywatch/raywatch/rules"
)

func TestRulesCheckSigmaHQ(t *testing.T) {
	dir := "../../../shared/testdata/sigmahq/rules"
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SigmaHQ rules not present at %s (shared test data): %v", dir, err)
	}
	out, err := exec.Command(binPath, "rules", "check", "--rules-dir", dir).CombinedOutput()
	builtin, berr := rules.Builtin()
	if berr != nil {
		t.Fatal(berr)
	}
	want := fmt.Sprintf("%d rules loaded, 0 errors", 145+len(builtin))
	if err != nil || !strings.Contains(string(out), want) {
		t.Errorf("rules check --rules-dir %s = %v\n%s; want %s (the 145 SigmaHQ rules and the built-ins)", dir, err, out, want)
	}
	out, err = exec.Command(binPath, "rules", "list", "--json", "--disable-rules", "c0ba0fe2-2266-4916-b42e-54dff94d5ff4").Output()
	if err != nil || !strings.Contains(string(out), `"enabled": false`) {
		t.Errorf("rules list --disable-rules = %v\n%s; want the TrevorC2 rule disabled", err, out)
	}
}
