package cloudflare

import (
	"strings"
	"testing"
)

func TestParseRaywatchURL(t *testing.T) {
	for _, tc := range []struct {
		in, dest, err string
	}{
		{in: "https://rw.example.com", dest: "https://rw.example.com/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=a%2Bb%2Fc%3D%26"},
		{in: "https://rw.example.com:8443/", dest: "https://rw.example.com:8443/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=a%2Bb%2Fc%3D%26"},
		{in: "https://example.com/raywatch/", dest: "https://example.com/raywatch/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=a%2Bb%2Fc%3D%26"},
		{in: "http://rw.example.com", err: "only over HTTPS"},
		{in: "https://", err: "no host"},
		{in: "https://rw.example.com/?x=1", err: "give only https://HOST"},
		{in: "https://rw.example.com/plain/batch", err: "raywatch adds /plain/batch itself"},
	} {
		u, err := ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) error = %v; want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if got := destinationConf(u, "a+b/c=&"); got != tc.dest {
			t.Errorf("destinationConf(%q) = %q; want %q", tc.in, got, tc.dest)
		}
		if got, ok := raywatchIntakeKey(destinationConf(u, "a+b/c=&")); !ok || got != "a+b/c=&" {
			t.Errorf("raywatchIntakeKey(destinationConf(%q)) = %q, %v", tc.in, got, ok)
		}
	}
}

func TestAPIHint(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   int64
		msg    string
		want   string
	}{
		{403, 10000, "Authentication error", hintAuth},
		{403, 9109, "Unauthorized to access requested resource", hintAuth},
		{400, 7003, "Could not route to /zones/x/logpush/jobs, perhaps your object identifier is invalid?", hintZone},
		{404, 7000, "No route for that URI", hintZone},
		{403, 1004, "Logpush is not entitled for this zone", hintEntitled},
		{400, 1000, "creating a job requires an Enterprise plan", hintEntitled},
		{429, 971, "Please wait and consider throttling your request speed", hintRate},
		{400, 1002, "error validating destination: error writing object", hintValidation},
		{403, 1, "something else", hintAuth},
		{500, 1, "internal", ""},
	} {
		if got := apiHint(tc.status, []int64{tc.code}, []string{tc.msg}); got != tc.want {
			t.Errorf("apiHint(%d, %d, %q) = %q; want %q", tc.status, tc.code, tc.msg, got, tc.want)
		}
	}
}

func TestSameDestination(t *testing.T) {
	base := "https://rw.example.com/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=a%2Bb"
	for _, tc := range []struct {
		other string
		want  bool
	}{
		{base, true},
		{"https://RW.example.com/plain/batch/?header_X-SEKOIAIO-INTAKE-KEY=a%2bb", true},
		{"https://rw.example.com/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=a+b", false}, // + is a space
		{"https://rw.example.com:8443/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=a%2Bb", false},
		{"https://rw.example.com/plain/batch?header_X-SEKOIAIO-INTAKE-KEY=other", false},
	} {
		if got := sameDestination(base, tc.other); got != tc.want {
			t.Errorf("sameDestination(%q, %q) = %v; want %v", base, tc.other, got, tc.want)
		}
	}
}
