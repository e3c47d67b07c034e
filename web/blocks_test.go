package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeBlocks records the calls of the block endpoints.
type fakeBlocks struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeBlocks) record(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return f.err
}

func (f *fakeBlocks) Report(ctx context.Context, ip string, limit int) (BlocksReport, error) {
	err := f.record(fmt.Sprintf("report %q %d", ip, limit))
	return BlocksReport{List: "rw_block", Entries: []BlockEntry{{Address: "203.0.113.7"}}, Holds: []BlockHold{}, Audit: []BlockAudit{}}, err
}

func (f *fakeBlocks) Block(ctx context.Context, r BlockRequest, who string) (BlockEntry, error) {
	err := f.record(fmt.Sprintf("block %s %q %s by %q", r.IP, r.Reason, r.Alert, who))
	return BlockEntry{Address: r.IP, Who: who, Reason: r.Reason}, err
}

func (f *fakeBlocks) Unblock(ctx context.Context, ip, reason, who string) (BlockEntry, error) {
	err := f.record(fmt.Sprintf("unblock %s %q by %q", ip, reason, who))
	return BlockEntry{Address: ip}, err
}

func TestBlocksAPI(t *testing.T) {
	const token = "blocks-test-token-0123456789"
	fb := &fakeBlocks{}
	ts, _, _ := newTestServerOpts(t, func(o *Options) {
		o.DashboardToken = token
		o.Blocks = fb
	})
	do := func(method, path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		call, answer       string
	}{
		{method: "GET", path: "/api/v1/blocks", status: 200, call: `report "" 200`, answer: `"list":"rw_block"`},
		{method: "GET", path: "/api/v1/blocks?ip=2001:db8::1&limit=5", status: 200, call: `report "2001:db8::1" 5`},
		{method: "GET", path: "/api/v1/blocks?limit=0", status: 400, answer: "limit must be"},
		{method: "POST", path: "/api/v1/blocks", body: `{"ip":"203.0.113.9","reason":"scanner","alert":"0194ab"}`, status: 200,
			call: `block 203.0.113.9 "scanner" 0194ab by "api"`, answer: `"who":"api"`},
		{method: "POST", path: "/api/v1/blocks", body: `{"ip":"203.0.113.9","by":"alice"}`, status: 200, call: `block 203.0.113.9 "" ` + ` by "alice via api"`},
		{method: "POST", path: "/api/v1/blocks", body: `{"ip":"203.0.113.9","ttl":"1h"}`, status: 400, answer: "known members"},
		{method: "POST", path: "/api/v1/blocks", body: `{"reason":"x"}`, status: 400, answer: "ip is required"},
		{method: "POST", path: "/api/v1/blocks", body: `{"ip":"203.0.113.9","alert":"<script>"}`, status: 400, answer: "alert must be an alert id"},
		{method: "POST", path: "/api/v1/blocks", body: `{"ip":"203.0.113.9","reason":"a\u0007b"}`, status: 400, answer: "control characters"},
		{method: "DELETE", path: "/api/v1/blocks/2001:db8:1:2::/64", status: 200, call: `unblock 2001:db8:1:2::/64 "" by "api"`},
		{method: "DELETE", path: "/api/v1/blocks/2001%3Adb8%3A1%3A2%3A%3A%2F64", status: 200, call: `unblock 2001:db8:1:2::/64 "" by "api"`},
		{method: "DELETE", path: "/api/v1/blocks/203.0.113.9", body: `{"reason":"false positive"}`, status: 200, call: `unblock 203.0.113.9 "false positive" by "api"`},
		{method: "POST", path: "/api/v1/blocks", body: `{"ip":"203.0.113.9"}`, status: 403, answer: "cross-origin"},
	} {
		fb.mu.Lock()
		fb.calls = nil
		fb.mu.Unlock()
		var hdr []string
		if tc.status == 403 {
			hdr = []string{"Origin", "https://evil.example"}
		}
		status, answer := do(tc.method, tc.path, tc.body, hdr...)
		if status != tc.status || !strings.Contains(answer, tc.answer) {
			t.Errorf("%s %s %s = %d %s; want %d with %q", tc.method, tc.path, tc.body, status, answer, tc.status, tc.answer)
		}
		var want []string
		if tc.call != "" {
			want = []string{tc.call}
		}
		fb.mu.Lock()
		if d := cmp.Diff(want, fb.calls); d != "" {
			t.Errorf("%s %s: calls (-want +got):\n%s", tc.method, tc.path, d)
		}
		fb.mu.Unlock()
	}

	// Errors: refused (400, with the reason), not listed (404), Cloudflare's (502).
	for _, tc := range []struct {
		err    error
		status int
		answer string
	}{
		{fmt.Errorf("%w: 10.0.0.1 is never listed: it is a private address", ErrBadRequest), 400, `"10.0.0.1 is never listed: it is a private address"`},
		{fmt.Errorf("203.0.113.1: %w", ErrNotFound), 404, "not on the block list"},
		{errors.New("add 1 items to list rw_block: Cloudflare API answered HTTP 429"), 502, "cannot change the Cloudflare list: add 1 items"},
	} {
		fb.mu.Lock()
		fb.err = tc.err
		fb.mu.Unlock()
		status, answer := do("DELETE", "/api/v1/blocks/203.0.113.1", "")
		var e struct{ Error string }
		if status != tc.status || json.Unmarshal([]byte(answer), &e) != nil || !strings.Contains(answer, tc.answer) {
			t.Errorf("with error %v: %d %s; want %d with %q", tc.err, status, answer, tc.status, tc.answer)
		}
	}
}

func TestBlocksAPIOff(t *testing.T) {
	ts, _ := newTestServer(t, 1<<20)
	resp, err := http.Get(ts.URL + "/api/v1/blocks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/v1/blocks without a block list = %d; want 404", resp.StatusCode)
	}
}
