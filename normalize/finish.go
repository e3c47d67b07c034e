package normalize

import (
	"strconv"
	"strings"
)

// finish applies the SEKOIA engine's implicit rules (mapping spec §2) to
// what a decoder set: *.address (R4), url.original parsing (R6), domain
// splitting (R5), host.name (R7), user-agent parsing (R9) and related.*
// (R8).
func (b *builder) finish() {
	if ip, ok := b.get(fSourceIP); ok {
		b.setText(fSourceAddress, ip)
	}
	if ip, ok := b.get(fClientIP); ok {
		b.setText(fClientAddress, ip)
	}
	splitDest := false
	if !b.has(fDestAddress) {
		if d, ok := b.get(fDestDomain); ok {
			b.setText(fDestAddress, d)
			splitDest = true
		} else if ip, ok := b.get(fDestIP); ok {
			b.setText(fDestAddress, ip)
		}
	}
	// R6 runs on the url.original a SEKOIA parser sets (gateway_http), not
	// on the one raywatch adds to http_requests.
	if b.ds != httpDS {
		if u, ok := b.get(fURLOriginal); ok {
			b.parseURL(u)
		}
	}
	b.split(fURLDomain, fURLRegistered, fURLTLD, fURLSubdomain)
	b.split(fDNSName, fDNSRegistered, fDNSTLD, fDNSSubdomain)
	if splitDest {
		b.split(fDestDomain, fDestRegistered, fDestTLD, fDestSubdomain)
	}
	if h, ok := b.get(fHostHostname); ok {
		b.setText(fHostName, h)
	}
	if ua, ok := b.get(fUAOriginal); ok && b.ua != nil {
		r := b.ua.parse(ua)
		b.setText(fUAName, r.name)
		if r.version != "" {
			b.setText(fUAVersion, r.version)
		}
		b.setText(fUAOSName, r.osName)
		if r.osVersion != "" {
			b.setText(fUAOSVersion, r.osVersion)
		}
		b.setText(fUADeviceName, r.deviceName)
	}

	// R8: related.ip, related.hosts, related.hash, de-duplicated.
	for i := range b.rel {
		b.rel[i] = b.rel[i][:0]
	}
	for _, id := range [...]uint16{fSourceIP, fDestIP, fClientIP} {
		if s, ok := b.get(id); ok {
			b.rel[0] = appendUnique(b.rel[0], s)
		}
	}
	if i := b.top(fDNSResolvedIP); i >= 0 {
		ents := b.ev.ents
		for j := i + 1; j < int(ents[i].end); j = int(ents[j].end) {
			if s, ok := ents[j].scalar(); ok {
				b.rel[0] = appendUnique(b.rel[0], s)
			}
		}
	}
	for _, id := range [...]uint16{fDestDomain, fURLDomain, fDNSName, fHostName} {
		if s, ok := b.get(id); ok {
			b.rel[1] = appendUnique(b.rel[1], s)
		}
	}
	if s, ok := b.get(fFileHash); ok {
		b.rel[2] = appendUnique(b.rel[2], s)
	}
	for i, id := range [...]uint16{fRelatedIP, fRelatedHosts, fRelatedHash} {
		if len(b.rel[i]) > 0 {
			b.setList(id, b.rel[i]...)
		}
	}
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// parseURL adds url.full, url.scheme, url.domain, url.port, url.path and
// url.query from an absolute URL (rule R6). A value without a scheme adds
// nothing.
func (b *builder) parseURL(u string) {
	i := strings.Index(u, "://")
	if i <= 0 || !validScheme(u[:i]) {
		return
	}
	scheme, rest := u[:i], u[i+3:]
	if j := strings.IndexByte(rest, '#'); j >= 0 {
		rest = rest[:j]
	}
	authority, pathQuery := rest, ""
	if j := strings.IndexAny(rest, "/?"); j >= 0 {
		authority, pathQuery = rest[:j], rest[j:]
	}
	path, query := pathQuery, ""
	if j := strings.IndexByte(pathQuery, '?'); j >= 0 {
		path, query = pathQuery[:j], pathQuery[j+1:]
	}
	if j := strings.LastIndexByte(authority, '@'); j >= 0 {
		authority = authority[j+1:]
	}
	host, port := authority, ""
	if strings.HasPrefix(host, "[") {
		if j := strings.IndexByte(host, ']'); j >= 0 {
			host, port = host[1:j], strings.TrimPrefix(host[j+1:], ":")
		}
	} else if j := strings.LastIndexByte(host, ':'); j >= 0 {
		host, port = host[:j], host[j+1:]
	}
	b.setText(fURLFull, u)
	b.setText(fURLScheme, scheme)
	if host != "" {
		b.setText(fURLDomain, host)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		b.setNum(fURLPort, strconv.FormatUint(n, 10))
	} else if port == "" {
		switch strings.ToLower(scheme) {
		case "https":
			b.setNum(fURLPort, "443")
		case "http":
			b.setNum(fURLPort, "80")
		}
	}
	if path != "" {
		b.setText(fURLPath, path)
	}
	if query != "" {
		b.setText(fURLQuery, query)
	}
}

func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// split sets the registered domain, top-level domain and subdomain of the
// name in field id (rule R5).
func (b *builder) split(id, registered, tld, subdomain uint16) {
	name, ok := b.get(id)
	if !ok {
		return
	}
	r, t, s := splitDomain(name)
	if r != "" {
		b.setText(registered, r)
	}
	if t != "" {
		b.setText(tld, t)
	}
	if s != "" {
		b.setText(subdomain, s)
	}
}
