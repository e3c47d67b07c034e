package traffic

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// BaseTime is the time of record 0 of [Generator.Record] and
// [Sequence]: 2026-11-24, inside every test's expectations.
var BaseTime = time.Unix(0, 1795500000000000000)

// Record returns record i of a stream: an ordinary request, or with
// probability attackRate an attack of a random kind, at BaseTime plus i
// milliseconds, with a RayID made of i.
func (g *Generator) Record(i int, attackRate float64) []byte {
	r := g.Browse()
	if g.rnd.Float64() < attackRate {
		r = g.Attack(g.rnd.IntN(Attacks))
	}
	r.Time = BaseTime.Add(time.Duration(i) * time.Millisecond)
	r.RayID = fmt.Sprintf("8e%014x", i)
	return Render(make([]byte, 0, 1200), r)
}

// Batch returns n ordinary requests spread over the second before now,
// with each attack kind mixed in with probability attackRate (every kind
// when every is set), as NDJSON, newest last.
func (g *Generator) Batch(now time.Time, n int, attackRate float64, every bool) []byte {
	var reqs []Request
	for range n {
		reqs = append(reqs, g.Browse())
	}
	for k := range Attacks {
		if every || g.rnd.Float64() < attackRate {
			reqs = append(reqs, g.Attack(k))
		}
	}
	g.rnd.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	var buf bytes.Buffer
	for i, r := range reqs {
		r.Time = now.Add(-time.Second + time.Duration(i)*time.Second/time.Duration(len(reqs)))
		r.RayID = g.RayID()
		buf.Write(Render(nil, r))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// Sequence returns record i of batch b of a fixed sequence the tests
// count on: a unique RayID (b, then i, in hex); every seventh record
// (i%7 == 3) a Lemon Duck request and every eleventh (i%11 == 5) a
// LokiBot one, from five source IPs and two hosts over a few hours, so
// that alerts group.
func Sequence(b, i int) []byte {
	r := Request{
		IP: fmt.Sprintf("198.51.100.%d", (b+i)%5), Host: fmt.Sprintf("shop%d.example.com", i%2), Method: "GET",
		URI:    fmt.Sprintf("/x/%d?q=1", i),
		UA:     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		Status: 200, Time: BaseTime.Add(time.Duration(b)*997*time.Second + time.Duration(i)*time.Second),
		RayID: fmt.Sprintf("%08x%08x", b, i),
	}
	switch {
	case i%7 == 3:
		r.UA = "Lemon-Duck-abc-XYZ"
	case i%11 == 5:
		r.UA, r.Method = "Mozilla/4.08 (Charon; Inferno)", "POST"
	}
	return Render(nil, r)
}

// SequenceBatch returns records 0 to n-1 of batch b of [Sequence] as
// NDJSON, with a malformed line every malformedEvery lines (0 for none).
func SequenceBatch(b, n, malformedEvery int) []byte {
	var buf bytes.Buffer
	for i := range n {
		if malformedEvery > 0 && i%malformedEvery == malformedEvery-1 {
			buf.WriteString(`{"RayID": broken` + "\n")
			continue
		}
		buf.Write(Sequence(b, i))
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// MarkerIP is the source IP of batch n's marker record.
func MarkerIP(n int64) string {
	return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
}

// Marker returns the marker record of batch n, with its newline: a Lemon
// Duck request from an address of its own (see [MarkerIP]), timed now, so
// that it makes a new alert that names the batch.
func Marker(n int64) []byte {
	r := Request{IP: MarkerIP(n), Method: "GET", Host: "m.example.com", URI: "/", UA: "Lemon-Duck-bench-MARK",
		Status: 200, Time: time.Now(), RayID: fmt.Sprintf("feed%012x", n)}
	return append(Render(nil, r), '\n')
}

// WriteIOCs writes n indicators (70% IPv4 addresses, 30% domains), none
// in the ranges of ordinary requests, to a text feed in dir, and makes
// them the generator's IOC hits.
func (g *Generator) WriteIOCs(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write IOCs: %w", err)
	}
	path := filepath.Join(dir, "bench.txt")
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write IOCs: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g.IOCIPs, g.IOCDomains = nil, nil
	r := g.rnd
	for i := range n {
		var v string
		if i%10 < 7 {
			first := byte(1 + r.IntN(222))
			if first == 10 || first == 198 || first == 203 || first == 192 {
				first = 45
			}
			v = netip.AddrFrom4([4]byte{first, byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}).String()
			g.IOCIPs = append(g.IOCIPs, v)
		} else {
			v = fmt.Sprintf("%x-%d.bad%d.example", r.Uint32(), i, i%97)
			g.IOCDomains = append(g.IOCDomains, v)
		}
		w.WriteString(v)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write IOCs to %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write IOCs to %s: %w", path, err)
	}
	return nil
}

// IOCSet returns the generator's IOC hits as a plain set: the IOC
// baseline of raywatch bench.
func (g *Generator) IOCSet() map[string]struct{} {
	m := map[string]struct{}{}
	for _, v := range g.IOCIPs {
		m[v] = struct{}{}
	}
	for _, v := range g.IOCDomains {
		m[v] = struct{}{}
	}
	return m
}

// LokiBotID is the id of the built-in LokiBot User-Agent rule.
const LokiBotID = "7c5c2e06-91d3-4bed-a5e3-06e7c83af1db"

// LokiBotRecords returns NDJSON of one short LokiBot record (a POST of
// /fre.php to shop.example.com with its user-agent, from France, AS64500)
// per source address, timed now, with RayIDs made from tag: one alert of
// the LokiBot rule per address.
func LokiBotRecords(tag string, ips ...string) []byte {
	var b bytes.Buffer
	now := time.Now().UnixNano()
	for i, ip := range ips {
		fmt.Fprintf(&b, `{"ClientIP":%q,"ClientRequestHost":"shop.example.com","ClientRequestMethod":"POST","ClientRequestURI":"/fre.php","ClientRequestPath":"/fre.php",`+
			`"ClientRequestUserAgent":"Mozilla/4.08 (Charon; Inferno)","ClientCountry":"fr","ClientASN":64500,"EdgeStartTimestamp":%d,"EdgeResponseStatus":404,"RayID":"%s%04d"}`+"\n",
			ip, now, tag, i)
	}
	return b.Bytes()
}
