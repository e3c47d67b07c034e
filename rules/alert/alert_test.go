package alert

import (
	"encoding/json"
	"testing"
)

func TestField(t *testing.T) {
	doc := map[string]any{
		"source":     map[string]any{"ip": "198.51.100.7", "port": json.Number("443")},
		"url":        map[string]any{"domain": ""},
		"http":       map[string]any{"response": map[string]any{"bytes": float64(69045)}},
		"user_agent": "not a map",
	}
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"source.ip"}, "198.51.100.7"},
		{[]string{"url.domain", "source.ip"}, "198.51.100.7"}, // empty string skipped
		{[]string{"source.port"}, "443"},
		{[]string{"http.response.bytes"}, "69045"},
		{[]string{"user_agent.original"}, ""}, // a string where a map is expected
		{[]string{"missing", "also.missing"}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := Field(doc, tt.names...); got != tt.want {
			t.Errorf("Field(doc, %q) = %q; want %q", tt.names, got, tt.want)
		}
	}
}
