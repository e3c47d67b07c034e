package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// fakeRetro knows one rule, "r1"; "intel" cannot be hunted.
type fakeRetro struct {
	mu     sync.Mutex
	hunted []string
}

func (f *fakeRetro) Retro(context.Context) (RetroReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rep := RetroReport{Archive: ArchiveStats{Enabled: true, Bytes: 1234, Objects: 2}, Hunts: []RetroHunt{}}
	for i, id := range f.hunted {
		rep.Hunts = append(rep.Hunts, RetroHunt{ID: fmt.Sprint(i), Kind: "rule", Rule: id, State: "queued"})
	}
	return rep, nil
}

func (f *fakeRetro) HuntRule(_ context.Context, id string) (string, error) {
	switch id {
	case "r1":
		f.mu.Lock()
		defer f.mu.Unlock()
		f.hunted = append(f.hunted, id)
		return fmt.Sprint(len(f.hunted) - 1), nil
	case "intel":
		return "", fmt.Errorf("%w: the intelligence-feed rule is hunted by indicator", ErrBadRequest)
	}
	return "", fmt.Errorf("%w: rule %s", ErrNotFound, id)
}

func TestRetroEndpoints(t *testing.T) {
	fr := &fakeRetro{}
	ts, _, _ := newTestServerOpts(t, func(o *Options) {
		o.DashboardToken = "retro-test-token-0123456789"
		o.Retro = fr
	})
	do := func(method, path, origin string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer retro-test-token-0123456789")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	tests := []struct {
		method, path, origin string
		want                 int
		wantBody             string
	}{
		{"POST", "/api/v1/rules/r1/retro", "", http.StatusAccepted, `"hunt":"0"`},
		{"POST", "/api/v1/rules/intel/retro", "", http.StatusBadRequest, `"error":"the intelligence-feed rule is hunted by indicator"`},
		{"POST", "/api/v1/rules/nope/retro", "", http.StatusNotFound, `"error":"no such rule"`},
		{"POST", "/api/v1/rules/r1/retro", "https://evil.example", http.StatusForbidden, "cross-origin"},
		{"GET", "/api/v1/rules/r1/retro", "", http.StatusNotFound, "no such API endpoint"},
	}
	for _, tt := range tests {
		code, body := do(tt.method, tt.path, tt.origin)
		b, _ := json.Marshal(body)
		if code != tt.want || !strings.Contains(string(b), tt.wantBody) {
			t.Errorf("%s %s (Origin %q) = %d %s; want %d with %s", tt.method, tt.path, tt.origin, code, b, tt.want, tt.wantBody)
		}
	}
	code, body := do("GET", "/api/v1/retro", "")
	b, _ := json.Marshal(body)
	if code != 200 || !strings.Contains(string(b), `"archive":{"bytes":1234,"enabled":true`) || strings.Count(string(b), `"rule":"r1"`) != 1 {
		t.Errorf("GET /api/v1/retro = %d %s; want the archive and the one hunt queued", code, b)
	}
	// Without the token, nothing.
	resp, err := http.Post(ts.URL+"/api/v1/rules/r1/retro", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without the token = %d; want 401", resp.StatusCode)
	}
}
