package rules

import (
	"os"
	"testing"
)

// sigmaHQDir is the SigmaHQ web/proxy/webserver rule snapshot shared by
// the project (never copied into the repository).
const sigmaHQDir = "../../shared/testdata/sigmahq/rules"

func TestLoadSigmaHQ(t *testing.T) {
	if _, err := os.Stat(sigmaHQDir); err != nil {
		t.Skipf("SigmaHQ rules not present at %s: %v", sigmaHQDir, err)
	}
	rs, problems, err := LoadDir(sigmaHQDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("LoadDir: %v", p)
	}
	if len(rs) != 145 {
		t.Errorf("LoadDir(%s) = %d rules; want 145", sigmaHQDir, len(rs))
	}
}
