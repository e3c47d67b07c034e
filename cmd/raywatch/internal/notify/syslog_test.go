package notify

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/google/go-cmp/cmp"
)

// rfc5424 is a parsed RFC 5424 message.
type rfc5424 struct {
	Pri                                           int
	Version                                       string
	Timestamp, Host, App, ProcID, MsgID, SD, Body string
}

func parseRFC5424(t *testing.T, msg string) rfc5424 {
	t.Helper()
	var m rfc5424
	end := strings.IndexByte(msg, '>')
	if !strings.HasPrefix(msg, "<") || end < 2 {
		t.Fatalf("message %q: no <PRI>", msg)
	}
	pri, err := strconv.Atoi(msg[1:end])
	if err != nil || pri < 0 || pri > 191 {
		t.Fatalf("message %q: bad PRI", msg)
	}
	m.Pri = pri
	f := strings.SplitN(msg[end+1:], " ", 8)
	if len(f) != 8 {
		t.Fatalf("message %q: %d header fields; want 7 and a body", msg, len(f)-1)
	}
	m.Version, m.Timestamp, m.Host, m.App, m.ProcID, m.MsgID, m.SD, m.Body = f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
	if _, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", m.Timestamp, err)
	}
	return m
}

// cefRecord is a parsed CEF record, values unescaped.
type cefRecord struct {
	Header []string // version, vendor, product, version, signature id, name, severity
	Ext    map[string]string
}

func parseCEF(t *testing.T, s string) cefRecord {
	t.Helper()
	var r cefRecord
	var cur strings.Builder
	i := 0
	for ; i < len(s) && len(r.Header) < 7; i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '\\' || s[i+1] == '|'):
			cur.WriteByte(s[i+1])
			i++
		case c == '\\':
			t.Fatalf("CEF %q: bad header escape at %d", s, i)
		case c == '|':
			r.Header = append(r.Header, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if len(r.Header) != 7 || !strings.HasPrefix(r.Header[0], "CEF:") {
		t.Fatalf("CEF %q: header %q", s, r.Header)
	}
	r.Header[0] = strings.TrimPrefix(r.Header[0], "CEF:")
	ext := s[i:]
	// Keys are the words before the unescaped equals signs.
	var eqs []int
	for j := 0; j < len(ext); j++ {
		if ext[j] == '\\' {
			j++
			continue
		}
		if ext[j] == '=' {
			eqs = append(eqs, j)
		}
	}
	r.Ext = map[string]string{}
	keyStart := func(eq int) int { return strings.LastIndexByte(ext[:eq], ' ') + 1 }
	for n, eq := range eqs {
		end := len(ext)
		if n+1 < len(eqs) {
			end = keyStart(eqs[n+1]) - 1
		}
		raw := ext[eq+1 : end]
		var v strings.Builder
		for j := 0; j < len(raw); j++ {
			if raw[j] != '\\' {
				if raw[j] == '\n' || raw[j] == '\r' {
					t.Errorf("CEF extension %q: raw line break", raw)
				}
				v.WriteByte(raw[j])
				continue
			}
			j++
			switch raw[j] {
			case '\\', '=':
				v.WriteByte(raw[j])
			case 'n':
				v.WriteByte('\n')
			case 'r':
				v.WriteByte('\r')
			default:
				t.Errorf("CEF extension %q: bad escape \\%c", raw, raw[j])
			}
		}
		r.Ext[ext[keyStart(eq):eq]] = v.String()
	}
	return r
}

// syslogReceiver collects the messages of a stream or datagram server.
type syslogReceiver struct {
	mu   sync.Mutex
	msgs []string
	conn int // connections accepted
}

func (r *syslogReceiver) add(m string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *syslogReceiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// serveStream reads octet-counted frames (RFC 6587 §3.4.1) from the
// connections of l; with dropAfterFirst, it closes the first connection
// after its first frame.
func (r *syslogReceiver) serveStream(t *testing.T, l net.Listener, dropAfterFirst bool) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conn++
		first := r.conn == 1
		r.mu.Unlock()
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				n, err := br.ReadString(' ')
				if err != nil {
					return
				}
				size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
				if err != nil || size <= 0 || size > 1<<20 {
					t.Errorf("frame length %q", n)
					return
				}
				buf := make([]byte, size)
				if _, err := io.ReadFull(br, buf); err != nil {
					t.Errorf("frame of %d bytes: %v", size, err)
					return
				}
				if first && dropAfterFirst {
					c.Close() // before the message shows as received
					r.add(string(buf))
					return
				}
				r.add(string(buf))
			}
		}()
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syslog test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// awkward is an alert whose values need every CEF escape.
func awkward(t0 time.Time) alert.Alert {
	a := hit(t0, `r|1\x`, "k1", "203.0.113.5")
	a.Rule.Title = `Pipe | and back\slash`
	a.Rule.Level = "critical"
	a.Rule.Description = "line one\nline two: a=b \\ c"
	a.Event["user_agent"] = map[string]any{"original": `Mozilla/5.0 (x=y|z\w)`}
	a.Event["url"] = map[string]any{"original": "/p?a=1&b=2\r\nInjected: yes"}
	return a
}

func TestSyslogCEF(t *testing.T) {
	for _, scheme := range []string{"tcp", "tls", "udp"} {
		t.Run(scheme, func(t *testing.T) {
			rcv := &syslogReceiver{}
			o := Options{}
			switch scheme {
			case "udp":
				pc, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { pc.Close() })
				go func() {
					buf := make([]byte, 65536)
					for {
						n, _, err := pc.ReadFrom(buf)
						if err != nil {
							return
						}
						rcv.add(string(buf[:n]))
					}
				}()
				o.SyslogAddr = "udp://" + pc.LocalAddr().String()
			default:
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				if scheme == "tls" {
					cert, pool := selfSigned(t)
					l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}})
					o.SyslogTLS = &tls.Config{RootCAs: pool}
				}
				t.Cleanup(func() { l.Close() })
				go rcv.serveStream(t, l, false)
				o.SyslogAddr = scheme + "://" + l.Addr().String()
			}
			o = testOptions(o, nil)
			o.ExternalURL = "https://rw.example"
			st := tempStore(t, &o)
			d := start(t, o, st)
			stored := commit(t, st, awkward(slotStart().Add(time.Second)))[0]
			d.Wake()
			waitFor(t, "a syslog message", func() bool { return len(rcv.messages()) == 1 })

			m := parseRFC5424(t, rcv.messages()[0])
			if m.Pri != 4*8+2 || m.Version != "1" || m.Host != "rw-test" || m.App != "raywatch" || m.MsgID != "alert.new" || m.SD != "-" {
				t.Errorf("syslog header = %+v; want PRI 34 (auth, critical), version 1, host rw-test, app raywatch, msgid alert.new, no SD", m)
			}
			cef := parseCEF(t, m.Body)
			if diff := cmp.Diff([]string{"0", "raywatch", "raywatch", "1.2.3", `r|1\x`, `Pipe | and back\slash`, "10"}, cef.Header); diff != "" {
				t.Errorf("CEF header (-want +got):\n%s", diff)
			}
			want := map[string]string{
				"src": "203.0.113.5", "dhost": "shop.example", "request": "/p?a=1&b=2\r\nInjected: yes", "requestMethod": "POST",
				"requestClientApplication": `Mozilla/5.0 (x=y|z\w)`, "msg": "line one\nline two: a=b \\ c",
				"externalId": stored.ID, "cnt": "1", "cat": "alert.new",
				"cs1Label": "intake", "cs1": "zone-a", "cs2Label": "status", "cs2": "new",
				"cs3Label": "dashboard", "cs3": "https://rw.example/#/alert/" + stored.ID,
				"rt": fmt.Sprint(stored.LastSeen.UnixMilli()), "start": fmt.Sprint(stored.FirstSeen.UnixMilli()), "end": fmt.Sprint(stored.LastSeen.UnixMilli()),
			}
			if diff := cmp.Diff(want, cef.Ext); diff != "" {
				t.Errorf("CEF extension (-want +got):\n%s\nmessage: %s", diff, m.Body)
			}
		})
	}
}

func TestSyslogReconnects(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rcv := &syslogReceiver{}
	go rcv.serveStream(t, l, true)
	o := testOptions(Options{SyslogAddr: "tcp://" + l.Addr().String()}, nil)
	st := tempStore(t, &o)
	d := start(t, o, st)
	t0 := slotStart().Add(time.Second)
	commit(t, st, hit(t0, "r1", "k1", "192.0.2.1"))
	d.Wake()
	waitFor(t, "the first message", func() bool { return len(rcv.messages()) == 1 })
	// The receiver dropped the connection: the next messages go over a new one.
	for i := range 3 {
		commit(t, st, hit(t0, "r1", keyN(i), ipN("192.0.2", 10+i)))
		d.Wake()
	}
	waitFor(t, "four messages", func() bool { return len(rcv.messages()) == 4 })
	rcv.mu.Lock()
	conns := rcv.conn
	rcv.mu.Unlock()
	if conns != 2 {
		t.Errorf("%d connections; want 2", conns)
	}
}

func TestCEFEscaping(t *testing.T) {
	for _, c := range []struct{ in, header, value string }{
		{`plain`, `plain`, `plain`},
		{`a|b`, `a\|b`, `a|b`},
		{`a\b`, `a\\b`, `a\\b`},
		{`a=b`, `a=b`, `a\=b`},
		{"a\nb", "a b", `a\nb`},
		{"a\r\nb", "a b", `a\r\nb`},
		{"a\rb", "a b", `a\rb`},
		{`\|=`, `\\\|=`, `\\|\=`},
	} {
		if got := cefHeader(c.in); got != c.header {
			t.Errorf("cefHeader(%q) = %q; want %q", c.in, got, c.header)
		}
		if got := cefValue(c.in); got != c.value {
			t.Errorf("cefValue(%q) = %q; want %q", c.in, got, c.value)
		}
	}
}
