package notify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// syslogFacility is the facility of raywatch's syslog messages: 4,
// "security/authorization messages" (RFC 5424 §6.2.1).
const syslogFacility = 4

// cefMaxValue bounds a CEF extension value, in bytes (ArcSight's limit
// for request, requestClientApplication and msg).
const cefMaxValue = 1023

// severities maps a level to its CEF severity (0-10) and syslog severity.
var severities = map[string]struct{ cef, syslog int }{
	"informational": {1, 6}, // informational
	"low":           {3, 5}, // notice
	"medium":        {5, 4}, // warning
	"high":          {8, 3}, // error
	"critical":      {10, 2},
}

func severity(level string) (cef, sys int) {
	s, ok := severities[strings.ToLower(level)]
	if !ok {
		s = severities["low"]
	}
	return s.cef, s.syslog
}

// parseSyslogAddr splits tcp://HOST:PORT, udp://HOST:PORT or
// tls://HOST:PORT.
func parseSyslogAddr(addr string) (scheme, hostport string, err error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return "", "", fmt.Errorf("%q: want tcp://HOST:PORT, udp://HOST:PORT or tls://HOST:PORT", addr)
	}
	switch u.Scheme {
	case "tcp", "udp", "tls":
	default:
		return "", "", fmt.Errorf("%q: scheme %q: want tcp, udp or tls", addr, u.Scheme)
	}
	if u.Port() == "" {
		return "", "", fmt.Errorf("%q: no port", addr)
	}
	return u.Scheme, u.Host, nil
}

// syslogOut sends RFC 5424 messages with a CEF body, over one connection
// it keeps open (octet-counted frames on TCP and TLS, RFC 6587 and 5425;
// a datagram each on UDP). Only the runner's goroutine uses it.
type syslogOut struct {
	scheme, addr string
	tls          *tls.Config
	hostname     string
	version      string
	links        func(string) string
	conn         net.Conn
}

func newSyslog(o *Options, links func(string) string) *syslogOut {
	scheme, addr, _ := parseSyslogAddr(o.SyslogAddr) // validated
	s := &syslogOut{scheme: scheme, addr: addr, hostname: o.Hostname, version: o.Version, links: links}
	if s.hostname == "" {
		s.hostname, _ = os.Hostname()
	}
	if scheme == "tls" {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if o.SyslogTLS != nil {
			s.tls = o.SyslogTLS.Clone()
		}
		if s.tls.ServerName == "" {
			s.tls.ServerName, _, _ = net.SplitHostPort(addr)
		}
	}
	return s
}

func (s *syslogOut) close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

func (s *syslogOut) connect(ctx context.Context) error {
	if s.conn != nil {
		if s.scheme == "udp" || alive(s.conn) {
			return nil
		}
		s.close()
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	var (
		c   net.Conn
		err error
	)
	switch s.scheme {
	case "tls":
		c, err = (&tls.Dialer{NetDialer: &d, Config: s.tls}).DialContext(ctx, "tcp", s.addr)
	default:
		c, err = d.DialContext(ctx, s.scheme, s.addr)
	}
	if err != nil {
		return fmt.Errorf("connect to syslog: %s", errText(err))
	}
	s.conn = c
	return nil
}

func (s *syslogOut) send(ctx context.Context, ds []delivery) (int, error) {
	for i := range ds {
		if err := s.connect(ctx); err != nil {
			return i, err
		}
		msg := s.message(&ds[i], time.Now())
		if s.scheme != "udp" {
			msg = strconv.Itoa(len(msg)) + " " + msg
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.conn.Write([]byte(msg)); err != nil {
			s.close()
			return i, fmt.Errorf("write to syslog: %s", errText(err))
		}
	}
	return len(ds), nil
}

// message returns the RFC 5424 message of d, sent at now.
func (s *syslogOut) message(d *delivery, now time.Time) string {
	_, sev := severity(d.alert.Rule.Level)
	return fmt.Sprintf("<%d>1 %s %s raywatch %d %s - %s",
		syslogFacility*8+sev, now.UTC().Format("2006-01-02T15:04:05.000000Z"),
		headerField(s.hostname, 255), os.Getpid(), headerField(d.job.Kind, 32), s.cef(d))
}

// headerField makes s a valid RFC 5424 header field: printable US-ASCII
// without spaces, at most n bytes, "-" when empty.
func headerField(s string, n int) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < n; i++ {
		if c := s[i]; c > 32 && c < 127 {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// cef returns the CEF record of d.
func (s *syslogOut) cef(d *delivery) string {
	a := &d.alert
	cefSev, _ := severity(a.Rule.Level)
	version := s.version
	if version == "" {
		version = "dev"
	}
	td := templateData(d, s.links(a.ID))
	var b strings.Builder
	fmt.Fprintf(&b, "CEF:0|raywatch|raywatch|%s|%s|%s|%d|",
		cefHeader(version), cefHeader(a.Rule.ID), cefHeader(a.Rule.Title), cefSev)
	ext := [][2]string{
		{"rt", strconv.FormatInt(a.LastSeen.UnixMilli(), 10)},
		{"start", strconv.FormatInt(a.FirstSeen.UnixMilli(), 10)},
		{"end", strconv.FormatInt(a.LastSeen.UnixMilli(), 10)},
		{"cnt", strconv.Itoa(a.Count)},
		{"externalId", a.ID},
		{"cat", d.job.Kind},
		{"src", td.SourceIP},
		{"dhost", td.Host},
		{"request", td.URL},
		{"requestMethod", td.Method},
		{"requestClientApplication", td.UserAgent},
		{"cs1Label", "intake"}, {"cs1", a.Intake},
		{"cs2Label", "status"}, {"cs2", a.Status},
		{"cs3Label", "dashboard"}, {"cs3", td.Link},
		{"msg", a.Rule.Description},
	}
	sep := ""
	for _, kv := range ext {
		if kv[1] == "" {
			continue
		}
		b.WriteString(sep)
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(cefValue(truncate(kv[1], cefMaxValue)))
		sep = " "
	}
	return b.String()
}

// cefHeader escapes a CEF header field: backslash and pipe; a line break
// becomes a space (the header has no escape for it).
func cefHeader(s string) string {
	return strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// cefValue escapes a CEF extension value: backslash, equals sign, and
// line breaks as \n and \r.
func cefValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\n", `\n`, "\r", `\r`).Replace(s)
}
