package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/raywatch/raywatch/web"
)

// The demo traffic generator (raywatch serve --demo) posts synthetic but
// realistic Cloudflare http_requests records to raywatch's own intake, the
// way Logpush does: gzip'd NDJSON batches to POST /plain/batch with the
// intake key. Most records are ordinary browsing from many clients; each
// built-in detection's traffic is mixed in at a low rate, from a few
// attacker addresses so that grouped alerts count up. Addresses come from
// the documentation ranges (RFC 5737, RFC 3849).

// demoIOCs is the indicator file written for the intelligence-feed rule
// when --demo runs without --ioc-dir.
const demoIOCs = `# raywatch demo indicators (written by raywatch serve --demo)
203.0.113.66 # Demo C2 relay (fictitious)
198.51.100.200 # Demo scanner known for credential stuffing (fictitious)
evil-cdn.example.net # Demo phishing kit host (fictitious)
`

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
	if err := os.WriteFile(filepath.Join(dir, "demo-feed.txt"), []byte(demoIOCs), 0o600); err != nil {
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

// demoGen builds records. It is not safe for concurrent use.
type demoGen struct {
	rnd *rand.Rand
	ips []string
}

func newDemoGen(seed uint64) *demoGen {
	g := &demoGen{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for _, p := range []string{"192.0.2.", "198.51.100.", "203.0.113."} {
		for i := 1; i < 255; i++ {
			g.ips = append(g.ips, p+fmt.Sprint(i))
		}
	}
	for i := range 120 {
		g.ips = append(g.ips, fmt.Sprintf("2001:db8:%x::%x", 0x100+i*7, i+1))
	}
	return g
}

var demoCountries = []struct {
	cc     string
	asn    int
	weight int
}{
	{"us", 7922, 24}, {"fr", 3215, 9}, {"de", 3320, 9}, {"gb", 2856, 8}, {"nl", 1136, 4}, {"jp", 2516, 5},
	{"br", 28573, 5}, {"in", 9829, 6}, {"ca", 812, 4}, {"au", 1221, 3}, {"sg", 4657, 2}, {"es", 3352, 3},
	{"it", 3269, 3}, {"pl", 5617, 2}, {"se", 3301, 2}, {"kr", 4766, 3}, {"za", 37457, 1}, {"mx", 8151, 2},
	{"cn", 4134, 3}, {"ru", 12389, 2},
}

var demoUAs = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"curl/8.5.0",
	"python-requests/2.32.3",
	"Go-http-client/2.0",
}

var demoHosts = []string{"www.example.com", "www.example.com", "shop.example.com", "shop.example.com", "api.example.com", "static.example.com"}

var demoColos = []string{"CDG", "FRA", "LHR", "AMS", "IAD", "SJC", "NRT", "SIN", "GRU", "SYD"}

var demoWords = []string{"shoes", "laptop", "gift", "coffee", "lamp", "desk", "jacket", "headphones", "book", "tent"}

func (g *demoGen) pick(list []string) string { return list[g.rnd.IntN(len(list))] }

// country returns the country and AS of an address, the same each time.
func (g *demoGen) country(ip string) (string, int) {
	h := uint32(2166136261)
	for i := 0; i < len(ip); i++ {
		h = (h ^ uint32(ip[i])) * 16777619
	}
	total := 0
	for _, c := range demoCountries {
		total += c.weight
	}
	n := int(h % uint32(total))
	for _, c := range demoCountries {
		if n < c.weight {
			return c.cc, c.asn
		}
		n -= c.weight
	}
	return "us", 7922
}

// request is what varies between records.
type demoRequest struct {
	ip, method, host, uri, ua, referer string
	status                             int
}

func (g *demoGen) browse() demoRequest {
	r := demoRequest{ip: g.pick(g.ips), method: "GET", host: g.pick(demoHosts), ua: g.pick(demoUAs), status: 200}
	switch g.rnd.IntN(14) {
	case 0:
		r.uri = "/"
	case 1:
		r.uri = fmt.Sprintf("/products/%d", 1000+g.rnd.IntN(9000))
	case 2:
		r.uri, r.method = "/cart", "POST"
	case 3:
		r.uri = "/checkout"
	case 4:
		r.uri, r.host = fmt.Sprintf("/api/v1/items?page=%d", 1+g.rnd.IntN(20)), "api.example.com"
	case 5:
		r.uri, r.host = fmt.Sprintf("/static/app.%08x.js", g.rnd.Uint32()), "static.example.com"
	case 6:
		r.uri, r.host = fmt.Sprintf("/images/%d.webp", g.rnd.IntN(500)), "static.example.com"
	case 7:
		r.uri, r.method = "/login", "POST"
	case 8:
		r.uri = "/search?q=" + g.pick(demoWords)
	case 9:
		r.uri, r.status = "/favicon.ico", 304
	case 10:
		r.uri = "/robots.txt"
	case 11:
		r.uri, r.status = "/wp-login.php", 404
	case 12:
		r.uri, r.status = "/.env", 403
	default:
		r.uri = fmt.Sprintf("/blog/%d/%s", 2020+g.rnd.IntN(6), g.pick(demoWords))
	}
	if g.rnd.IntN(3) == 0 {
		r.referer = "https://www.example.com/"
	}
	if g.rnd.IntN(40) == 0 {
		r.status = 500
	}
	return r
}

// attacks are the records each built-in detection fires on, from a few
// addresses per attack.
var demoAttacks = []func(g *demoGen) demoRequest{
	func(g *demoGen) demoRequest { // Covenant Grunt beaconing
		paths := []string{"/en-us/index.html", "/en-us/docs.html", "/en-us/test.html?message=" + g.b64(12)}
		return demoRequest{ip: g.pick([]string{"203.0.113.50", "203.0.113.51"}), method: g.pick([]string{"GET", "POST"}), host: "www.example.com",
			uri: g.pick(paths), ua: "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2228.0 Safari/537.36", status: 404}
	},
	func(g *demoGen) demoRequest { // Bazar task polling
		return demoRequest{ip: g.pick([]string{"198.51.100.77", "2001:db8:bad::7"}), method: "GET", host: "api.example.com", uri: "/pool/job/priority/normal", status: 404}
	},
	func(g *demoGen) demoRequest { // Lemon Duck
		return demoRequest{ip: g.pick([]string{"192.0.2.45", "192.0.2.46", "192.0.2.47"}), method: "POST", host: "www.example.com", uri: "/report.json",
			ua: "Lemon-Duck-" + g.letters(5) + "-" + g.letters(8), status: 404}
	},
	func(g *demoGen) demoRequest { // LokiBot check-in
		return demoRequest{ip: "198.51.100.13", method: "POST", host: "shop.example.com", uri: "/wp-content/plugins/x/fre.php",
			ua: "Mozilla/4.08 (Charon; Inferno)", status: 404}
	},
	func(g *demoGen) demoRequest { // TrevorC2
		return demoRequest{ip: "203.0.113.99", method: "GET", host: "www.example.com", uri: "/images?guid=" + g.b64(24),
			ua: "Mozilla/5.0 (Windows NT 6.3; Trident/7.0; rv:11.0) like Gecko", status: 200}
	},
	func(g *demoGen) demoRequest { // an address of the demo IOC feed
		r := g.browse()
		r.ip = g.pick([]string{"203.0.113.66", "198.51.100.200"})
		return r
	},
	func(g *demoGen) demoRequest { // a referrer on a domain of the demo IOC feed
		r := g.browse()
		r.referer = "https://login.evil-cdn.example.net/kit/index.html"
		return r
	},
}

func (g *demoGen) letters(n int) string {
	const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	for i := range b {
		b[i] = abc[g.rnd.IntN(len(abc))]
	}
	return string(b)
}

func (g *demoGen) b64(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rnd.UintN(256))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// record renders r as a Logpush http_requests record at time t.
func (g *demoGen) record(r demoRequest, t time.Time) []byte {
	cc, asn := g.country(r.ip)
	path, _, _ := strings.Cut(r.uri, "?")
	dur := time.Duration(5+g.rnd.IntN(300)) * time.Millisecond
	device := "desktop"
	if strings.Contains(r.ua, "Mobile") {
		device = "mobile"
	}
	rec := map[string]any{
		"ClientASN": asn, "ClientCountry": cc, "ClientDeviceType": device, "ClientIP": r.ip,
		"ClientRequestBytes": 300 + g.rnd.IntN(2000), "ClientRequestHost": r.host, "ClientRequestMethod": r.method,
		"ClientRequestPath": path, "ClientRequestProtocol": "HTTP/2", "ClientRequestReferer": r.referer,
		"ClientRequestScheme": "https", "ClientRequestURI": r.uri, "ClientRequestUserAgent": r.ua,
		"ClientSSLCipher": "AEAD-AES128-GCM-SHA256", "ClientSSLProtocol": "TLSv1.3", "ClientSrcPort": 1024 + g.rnd.IntN(64000),
		"EdgeColoCode": g.pick(demoColos), "EdgeStartTimestamp": t.UnixNano(), "EdgeEndTimestamp": t.Add(dur).UnixNano(),
		"EdgeResponseBytes": 200 + g.rnd.IntN(90000), "EdgeResponseStatus": r.status, "RayID": fmt.Sprintf("%016x", g.rnd.Uint64()),
		"ZoneName": "example.com",
	}
	b, _ := json.Marshal(rec)
	return b
}

// batch returns n records spread over the second before now, with each
// attack mixed in with probability attackRate (all of them when every is
// set), newest last.
func (g *demoGen) batch(now time.Time, n int, attackRate float64, every bool) []byte {
	var buf bytes.Buffer
	var reqs []demoRequest
	for range n {
		reqs = append(reqs, g.browse())
	}
	for _, a := range demoAttacks {
		if every || g.rnd.Float64() < attackRate {
			reqs = append(reqs, a(g))
		}
	}
	g.rnd.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	for i, r := range reqs {
		t := now.Add(-time.Second + time.Duration(i)*time.Second/time.Duration(len(reqs)))
		buf.Write(g.record(r, t))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
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
	g := newDemoGen(uint64(time.Now().UnixNano()))
	const perSecond, attackRate = 25, 1.0 / 40
	log.Info("demo traffic generator started", "target", target, "records_per_second", perSecond)
	// An hour of history first, so that the overview has a past.
	start := time.Now()
	for m := 60; m > 0; m-- {
		at := start.Add(-time.Duration(m) * time.Minute)
		if err := postDemo(ctx, client, target, key, g.batch(at, 20+g.rnd.IntN(20), 0.12, false)); err != nil {
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
		body := g.batch(time.Now(), perSecond/2+g.rnd.IntN(perSecond), attackRate, first)
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
