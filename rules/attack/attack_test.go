package attack

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		id   string
		want TechniqueInfo
		ok   bool
	}{
		// The case of issue 15: T1041 belongs to exfiltration alone, even on
		// a rule also tagged command-and-control and initial-access.
		{"T1041", TechniqueInfo{ID: "T1041", Name: "Exfiltration Over C2 Channel", Tactics: []string{"exfiltration"}}, true},
		{"attack.t1071", TechniqueInfo{ID: "T1071", Name: "Application Layer Protocol", Tactics: []string{"command-and-control"}}, true},
		{" t1190 ", TechniqueInfo{ID: "T1190", Name: "Exploit Public-Facing Application", Tactics: []string{"initial-access"}}, true},
		{"T1505.003", TechniqueInfo{ID: "T1505.003", Name: "Web Shell", Tactics: []string{"persistence"}}, true},
		// Several tactics, in the order of the matrix.
		{"T1078", TechniqueInfo{ID: "T1078", Name: "Valid Accounts", Tactics: []string{"initial-access", "persistence", "privilege-escalation", "defense-evasion"}}, true},
		{"T9999", TechniqueInfo{}, false},
		{"", TechniqueInfo{}, false},
		{"TA0010", TechniqueInfo{}, false},
	}
	for _, tc := range tests {
		got, ok := Lookup(tc.id)
		if ok != tc.ok {
			t.Errorf("Lookup(%q) ok = %v; want %v", tc.id, ok, tc.ok)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Lookup(%q) mismatch (-want +got):\n%s", tc.id, diff)
		}
	}
	name, tactics, ok := Technique("T1041")
	if !ok || name != "Exfiltration Over C2 Channel" || !slices.Equal(tactics, []string{"exfiltration"}) {
		t.Errorf("Technique(T1041) = %q, %v, %v", name, tactics, ok)
	}
}

func TestTactic(t *testing.T) {
	tests := []struct {
		in     string
		wantID string
		ok     bool
	}{
		{"command-and-control", "TA0011", true},
		{"Command_And_Control", "TA0011", true},
		{"exfiltration", "TA0010", true},
		{"t1041", "", false},
	}
	for _, tc := range tests {
		got, ok := Tactic(tc.in)
		if ok != tc.ok || got.ID != tc.wantID {
			t.Errorf("Tactic(%q) = %+v, %v; want %s, %v", tc.in, got, ok, tc.wantID, tc.ok)
		}
	}
	if n := len(Tactics()); n != 14 {
		t.Errorf("Tactics() has %d tactics; want the 14 of the enterprise matrix", n)
	}
}

// TestTable checks the generated table's invariants: sorted unique ids, a
// name and at least one known tactic for every technique that is not
// deprecated.
func TestTable(t *testing.T) {
	if len(techniques) < 600 {
		t.Fatalf("table holds %d techniques; the enterprise matrix has about 700", len(techniques))
	}
	for i, tc := range techniques {
		if i > 0 && techniques[i-1].id >= tc.id {
			t.Errorf("technique %s is out of order (after %s)", tc.id, techniques[i-1].id)
		}
		if !strings.HasPrefix(tc.id, "T") || tc.name == "" {
			t.Errorf("technique %+v: bad id or empty name", tc)
		}
		if !tc.deprecated && tc.mask == 0 {
			t.Errorf("technique %s has no tactic", tc.id)
		}
		if tc.mask>>len(tactics) != 0 {
			t.Errorf("technique %s names a tactic beyond the matrix", tc.id)
		}
	}
}
