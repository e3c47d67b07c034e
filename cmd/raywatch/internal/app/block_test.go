package app

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare/cftest"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/web"
)

// TestBlockConfig checks the --block-* flags, their variables and
// validation.
func TestBlockConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"off", nil, ""},
		{"on", map[string]string{"RAYWATCH_BLOCK_LIST": "rw_block", "CLOUDFLARE_API_TOKEN": "t0ken-t0ken", "CLOUDFLARE_ACCOUNT_ID": "acc"}, ""},
		{"zone's account", map[string]string{"RAYWATCH_BLOCK_LIST": "rw_block", "CLOUDFLARE_API_TOKEN": "t0ken-t0ken", "RAYWATCH_CLOUDFLARE_ZONE": "z"}, ""},
		{"dry run without credentials", map[string]string{"RAYWATCH_BLOCK_LIST": "rw_block", "RAYWATCH_BLOCK_DRY_RUN": "1"}, ""},
		{"no credentials", map[string]string{"RAYWATCH_BLOCK_LIST": "rw_block", "CLOUDFLARE_ACCOUNT_ID": "acc"}, "needs Cloudflare API credentials"},
		{"no account", map[string]string{"RAYWATCH_BLOCK_LIST": "rw_block", "CLOUDFLARE_API_TOKEN": "t0ken-t0ken"}, "CLOUDFLARE_ACCOUNT_ID"},
		{"bad name", map[string]string{"RAYWATCH_BLOCK_LIST": "rw-block", "RAYWATCH_BLOCK_DRY_RUN": "1"}, "--block-list"},
		{"bad level", map[string]string{"RAYWATCH_BLOCK_LIST": "rw", "RAYWATCH_BLOCK_DRY_RUN": "1", "RAYWATCH_BLOCK_MIN_LEVEL": "severe"}, "--block-min-level"},
		{"bad never", map[string]string{"RAYWATCH_BLOCK_LIST": "rw", "RAYWATCH_BLOCK_DRY_RUN": "1", "RAYWATCH_BLOCK_NEVER": "10.0.0.0/8,office"}, `--block-never "office"`},
		{"bad max", map[string]string{"RAYWATCH_BLOCK_LIST": "rw", "RAYWATCH_BLOCK_DRY_RUN": "1", "RAYWATCH_BLOCK_MAX": "0"}, "--block-max 0"},
		{"short ttl", map[string]string{"RAYWATCH_BLOCK_LIST": "rw", "RAYWATCH_BLOCK_DRY_RUN": "1", "RAYWATCH_BLOCK_TTL": "10s"}, "--block-ttl 10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := Env(func(k string) string { return tc.env[k] })
			var c Config
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			c.ServeFlags(fs, env)
			if err := fs.Parse(nil); err != nil {
				t.Fatal(err)
			}
			c.IntakeKeys = map[string]string{"default": "k"}
			err := c.LoadSecrets(env)
			if err == nil {
				err = c.Validate()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate() = %v; want an error with %q", err, tc.wantErr)
			}
		})
	}
	// The default rules are the built-in ones, the intelligence feed's
	// included.
	var c Config
	c.ServeFlags(flag.NewFlagSet("serve", flag.ContinueOnError), func(string) string { return "" })
	o, err := c.Block.options("")
	if err != nil || len(o.Rules) != 6 || o.MinLevel != "high" || o.TTL != 24*time.Hour || o.Max != 1000 {
		t.Errorf("default block options = %+v, %v; want the 6 built-in rules, high, 24h, 1000", o, err)
	}
}

// TestAppEdgeBlock runs serve with --block-list against the fake
// Cloudflare API: an alert's source is listed, a private source is not,
// and GET/POST/DELETE /api/v1/blocks show, block and unblock.
func TestAppEdgeBlock(t *testing.T) {
	f := cftest.New(t)
	cfg := testConfig(t)
	cfg.Cloudflare.Credentials = cloudflare.Credentials{Token: cftest.Token, BaseURL: f.URL()}
	cfg.Cloudflare.Zone = cftest.Zone
	cfg.Block.List = "rw_block"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, quiet, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base := "http://" + a.Addr().String()

	now := time.Now()
	var batch []byte
	for i, ip := range []string{"203.0.113.66", "10.1.2.3"} {
		batch = traffic.Render(batch, traffic.Request{IP: ip, Method: "GET", Host: "shop.example.com", URI: "/", UA: "Lemon-Duck-TKShM-InUsrPcv",
			Status: 200, Time: now, RayID: fmt.Sprintf("edge%012x", i)})
		batch = append(batch, '\n')
	}
	post(t, base, "/plain/batch", batch, "X-SEKOIAIO-INTAKE-KEY", cfg.IntakeKeys["default"])
	poll(t, func() bool { return len(f.ListIPs("rw_block")) == 1 }, "the attacker on Cloudflare's list")
	if ips := f.ListIPs("rw_block"); !strings.HasPrefix(ips["203.0.113.66"], "raywatch: rule ") {
		t.Errorf("list = %v; want 203.0.113.66 with a comment naming the rule", ips)
	}

	var rep web.BlocksReport
	poll(t, func() bool { return getJSON(base+"/api/v1/blocks", &rep) == nil && len(rep.Audit) == 1 }, "the block in the audit trail")
	if len(rep.Entries) != 1 || rep.Entries[0].Address != "203.0.113.66" || !strings.HasPrefix(rep.Entries[0].Who, "rule:") {
		t.Errorf("entries = %+v", rep.Entries)
	}
	// Another rule's alert from the same address extends its time.
	loki := traffic.Render(nil, traffic.Request{IP: "203.0.113.66", Method: "POST", Host: "shop.example.com", URI: "/fre.php",
		UA: "Mozilla/4.08 (Charon; Inferno)", Status: 404, Time: now, RayID: "edge0000000009"})
	post(t, base, "/plain/batch", append(loki, '\n'), "X-SEKOIAIO-INTAKE-KEY", cfg.IntakeKeys["default"])
	poll(t, func() bool {
		rep = web.BlocksReport{}
		return getJSON(base+"/api/v1/blocks", &rep) == nil && len(rep.Audit) == 2
	}, "the extension in the audit trail")
	if rep.Audit[0].Action != "extend" || rep.Audit[0].Address != "203.0.113.66" {
		t.Errorf("last audit record = %+v; want the extension of 203.0.113.66", rep.Audit[0])
	}
	post(t, base, "/api/v1/blocks", []byte(`{"ip":"198.51.100.23","reason":"scanner seen in the origin logs","by":"alice"}`))
	req, _ := http.NewRequest("DELETE", base+"/api/v1/blocks/203.0.113.66", strings.NewReader(`{"reason":"a customer's NAT"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE = %v, %v", resp, err)
	}
	resp.Body.Close()
	if ips := f.ListIPs("rw_block"); len(ips) != 1 || ips["198.51.100.23"] == "" {
		t.Errorf("list after block and unblock = %v; want 198.51.100.23 only", ips)
	}
	rep = web.BlocksReport{} // decoding into the old slices would keep members the answer omits
	if err := getJSON(base+"/api/v1/blocks", &rep); err != nil {
		t.Fatal(err)
	}
	var trail strings.Builder
	for i := len(rep.Audit) - 1; i >= 0; i-- {
		r := rep.Audit[i]
		until := ""
		if !r.Until.IsZero() {
			until = " until=" + r.Until.Format(time.RFC3339)
		}
		fmt.Fprintf(&trail, "%s %-7s %-15s %-22s reason=%q%s\n", r.At.Format(time.RFC3339), r.Action, r.Address, r.Who, r.Reason, until)
	}
	t.Logf("audit trail:\n%s", trail.String())
	for _, w := range []string{"block   203.0.113.66    rule:", "extend  203.0.113.66    rule:", "block   198.51.100.23   alice via anonymous", "unblock 203.0.113.66    anonymous"} {
		if !strings.Contains(trail.String(), w) {
			t.Errorf("audit trail lacks %q", w)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func post(t *testing.T, base, path string, body []byte, hdr ...string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s = %d %s", path, resp.StatusCode, b)
	}
}
