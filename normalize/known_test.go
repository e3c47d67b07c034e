package normalize

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHasField(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"url.path", true},
		{"source.ip", true},
		{"user_agent.original", true},
		{"http.response.status_code", true},
		{"cloudflare.RayID", true},
		{"cloudflare.OriginIP", true},
		{"cloudflare.RequestHeaders.cookie", true}, // below an object field
		{"cloudflare.RequestHeaders", true},
		{"cloudflare.metadata.any.key", true},
		{"dns.question.name", true},
		{"user.name", false}, // no Cloudflare dataset carries it
		{"Image", false},
		{"TargetFilename", false},
		{"cloudflare.RayID.sub", false}, // RayID is text, not an object
		{"url", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := HasField(tc.name); got != tc.want {
			t.Errorf("HasField(%q) = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// TestHasFieldCoversEvents checks that every field of every SEKOIA fixture
// of every dataset, once normalized, is known.
func TestHasFieldCoversEvents(t *testing.T) {
	if _, err := os.Stat(sekoiaRoot); err != nil {
		t.Skipf("SEKOIA fixtures not available at %s (the shared test data is not checked out): %v", sekoiaRoot, err)
	}
	n := New(Options{})
	checked := 0
	for _, f := range sekoiaFormats {
		files, _ := filepath.Glob(filepath.Join(sekoiaRoot, f.dir, "*.json"))
		for _, file := range files {
			message, _ := readSEKOIACase(t, file)
			ev, err := n.Normalize(f.dataset, []byte(message))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			for _, field := range ev.Fields() {
				checked++
				if !HasField(field) {
					t.Errorf("%s: HasField(%q) = false for a field of the normalized record", filepath.Base(file), field)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no field checked")
	}
}
