package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/web"
)

// The demo traffic generator (raywatch serve --demo) posts synthetic but
// realistic Cloudflare http_requests records to raywatch's own intake, the
// way Logpush does: gzip'd NDJSON batches to POST /plain/batch with the
// intake key. Most records are ordinary browsing from many clients; each
// built-in detection's traffic is mixed in at a low rate, from a few
// attacker addresses so that grouped alerts count up. Addresses come from
// the documentation ranges (RFC 5737, RFC 3849).

// prepareDemo points cfg at a demo IOC folder under the data folder when
// no IOC folder is configured, so that the intelligence-feed rule fires
// too.
func prepareDemo(cfg *Config) error {
	if cfg.IOCDir != "" {
		return nil
	}
	dir := filepath.Join(cfg.DataDir, "demo-iocs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("demo: create IOC folder: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "demo-feed.txt"), []byte(traffic.DemoIOCs), 0o600); err != nil {
		return fmt.Errorf("demo: write IOC file: %w", err)
	}
	cfg.IOCDir = dir
	return nil
}

// demoTarget returns the URL of the intake that addr (a listener's
// address) serves, reachable from this machine.
func demoTarget(addr net.Addr, tls bool) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/plain/batch"
}

// demoIntake picks the intake the demo posts to: "default" if there is
// one, else the first by name.
func demoIntake(keys map[string]string) (string, string) {
	if k, ok := keys["default"]; ok {
		return "default", k
	}
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Strings(names)
	return names[0], keys[names[0]]
}

// runDemo posts an hour of history to target (a batch a minute), then a
// batch every second until ctx ends: about perSecond records, each attack
// with probability attackRate, and every attack in the first live batch,
// so that the dashboard has something to show at once.
func runDemo(ctx context.Context, target, key string, log *slog.Logger) {
	client := &http.Client{
		Timeout: 30 * time.Second,
		// The demo talks to this very process on a loopback address,
		// whose certificate need not name it.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer client.CloseIdleConnections()
	g := traffic.New(uint64(time.Now().UnixNano()))
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const perSecond, attackRate = 25, 1.0 / 40
	log.Info("demo traffic generator started", "target", target, "records_per_second", perSecond)
	// An hour of history first, so that the overview has a past.
	start := time.Now()
	for m := 60; m > 0; m-- {
		at := start.Add(-time.Duration(m) * time.Minute)
		if err := postDemo(ctx, client, target, key, g.Batch(at, 20+rnd.IntN(20), 0.12, false)); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("demo history batch not accepted", "err", err)
			break
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	posted, failures := 0, 0
	for first := true; ; first = false {
		body := g.Batch(time.Now(), perSecond/2+rnd.IntN(perSecond), attackRate, first)
		if err := postDemo(ctx, client, target, key, body); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 || failures%60 == 0 {
				log.Warn("demo batch not accepted", "err", err, "failures", failures)
			}
		} else {
			posted++
		}
		select {
		case <-ctx.Done():
			log.Info("demo traffic generator stopped", "batches", posted)
			return
		case <-tick.C:
		}
	}
}

func postDemo(ctx context.Context, client *http.Client, target, key string, body []byte) error {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(body)
	zw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, &gz)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set(web.IntakeKeyHeader, key)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("intake answered %s", resp.Status)
	}
	return nil
}
