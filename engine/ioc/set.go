// Package ioc loads indicators of compromise from a folder of files (plain
// text, CSV including MISP exports, STIX 2.1 bundles), keeps them current as
// the files change, and matches normalized Cloudflare events against them.
//
// A [Set] is an immutable, indexed snapshot of every indicator of the
// folder; [Set.Match] is safe for concurrent use and does not allocate when
// nothing matches. A [Watcher] rebuilds the set off to the side when the
// folder changes and swaps it in atomically.
package ioc

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/gaissmai/bart"

	"github.com/raywatch/raywatch/normalize"
)

// Hit is one match of an event field against an indicator.
type Hit struct {
	// Indicator is the indicator that matched; it is shared and must not be
	// modified.
	Indicator *Indicator `json:"indicator"`
	// Field is the ECS field of the event that matched ("source.ip",
	// "destination.address", "http.request.referrer", "url.original",
	// "user_agent.original", "cloudflare.JA3Hash", "dns.question.name").
	Field string `json:"field"`
	// Value is the event's value of Field, except for a URL matched on
	// url.original, where it is the URL matched: the host (lower case,
	// without port) plus url.original.
	Value string `json:"value"`
	ref   uint32 // the indicator's index in its segment
}

// Set is an immutable snapshot of indicators indexed for matching. The zero
// Set and a nil *Set are empty. All methods are safe for concurrent use.
//
// A Set is made of segments, each indexing the indicators of some files
// (a big feed has one of its own, small files share one), so that a
// reload rebuilds only the segments whose files changed.
type Set struct {
	segs   []*segment
	n      int // indicators
	counts [len(typeIndex)]int
}

// newSetOf is the Set of segs.
func newSetOf(segs []*segment) *Set {
	s := &Set{segs: segs}
	for _, g := range segs {
		s.n += len(g.refs)
		for i, c := range g.counts {
			s.counts[i] += c
		}
	}
	return s
}

// segment is an immutable index of the indicators of some files.
type segment struct {
	// groups hold the indicators (one group per file); refs the indexed
	// ones, in index order. Neither holds a pointer per indicator.
	groups []*indGroup
	refs   []indRef
	// next chains indicators with the same match key (listed twice, in two
	// files): next[i] is 1 + the index of the next one, 0 at the end.
	next []uint32

	// seed hashes the keys of the string tables and filters.
	seed maphash.Seed
	ip4  *u32Table
	ip6  map[[16]byte]uint32
	cidr *bart.Table[uint32]
	// domains holds domain keys; a host matches when it or one of its
	// parent domains (with minLabels to maxLabels labels) is a key. tails
	// filters the last two labels of every key: a host whose own last two
	// labels do not pass matches no domain, which saves most lookups.
	domains              *strTable
	tails                *bitFilter
	minLabels, maxLabels int
	urls                 *strTable
	urlHosts             *bitFilter // filters the hosts of the URL keys
	uas                  *strTable
	uaFilter             *bitFilter // by sampleHash
	ja3                  *strTable  // keyed by the 16 bytes of the hash
	ja3Filter            *bitFilter // by md5Hash

	counts [len(typeIndex)]int
}

// indRef is an indicator of a Set: group and index in the group.
type indRef struct{ g, i uint32 }

func (s *segment) group(r indRef) *indGroup { return s.groups[r.g] }

var typeIndex = [...]Type{TypeIPv4, TypeIPv6, TypeCIDR, TypeDomain, TypeURL, TypeUA, TypeJA3}

func typeSlot(t Type) int {
	for i, x := range typeIndex {
		if x == t {
			return i
		}
	}
	return -1
}

// NewSet indexes indicators that are valid at now: it drops those whose
// ValidUntil has passed, and of STIX indicators sharing a Meta.ID keeps only
// the newest Meta.Modified. The Set keeps the Meta pointers of inds, which
// the caller must not modify afterwards. Indicators with an invalid value
// are dropped.
func NewSet(inds []Indicator, now time.Time) *Set {
	vs := make(map[string]version)
	for i := range inds {
		if m := inds[i].Meta; m != nil && m.ID != "" && !m.Modified.IsZero() {
			if v, ok := vs[m.ID]; !ok || m.Modified.After(v.modified) {
				vs[m.ID] = version{id: m.ID, modified: m.Modified}
			}
		}
	}
	seg, _ := build([]*indGroup{compactGroup(inds)}, vs, now)
	return newSetOf([]*segment{seg})
}

// buildStats counts what build did with one group of indicators.
type buildStats struct {
	byType     [len(typeIndex)]int
	expired    int
	superseded int
}

// build indexes groups of indicators (one per file) into a segment. newest
// gives, per STIX id, the version that counts: an indicator of an older
// version, or of a revoked newest version, is dropped as superseded.
func build(groups []*indGroup, newest map[string]version, now time.Time) (*segment, []buildStats) {
	s, stats := selectRefs(groups, newest, now)
	s.allocIndexes()
	// Index what counts; an indicator whose value does not parse is
	// dropped, and the kept ones are packed at the front of refs.
	ok := 0
	for n, ref := range s.refs {
		if n&yieldEvery == yieldEvery {
			runtime.Gosched()
		}
		if !s.index(ref, uint32(ok)) {
			continue
		}
		s.refs[ok] = ref
		ok++
	}
	s.refs = s.refs[:ok]
	s.next = s.next[:ok]
	for _, t := range []*strTable{s.domains, s.urls, s.uas, s.ja3} {
		if t != nil {
			t.compact()
		}
	}
	return s, stats
}

// selectRefs returns a segment of groups whose refs are the indicators
// that count at now (neither expired nor superseded, of a known type),
// with their counts by type, and what was left out of each group.
func selectRefs(groups []*indGroup, newest map[string]version, now time.Time) (*segment, []buildStats) {
	stats := make([]buildStats, len(groups))
	total := 0
	for _, g := range groups {
		if g != nil {
			total += len(g.recs)
		}
	}
	s := &segment{groups: groups, refs: make([]indRef, 0, total)}
	for gi, g := range groups {
		if g == nil {
			continue
		}
		st := &stats[gi]
		for i := range g.recs {
			if g.expired(uint32(i), now) {
				st.expired++
				continue
			}
			if m := g.metaOf(uint32(i)); m != nil && m.ID != "" {
				if v, ok := newest[m.ID]; ok && (v.revoked || !v.modified.Equal(m.Modified)) {
					st.superseded++
					continue
				}
			}
			slot := g.recs[i].typ
			if slot == noType {
				continue
			}
			st.byType[slot]++
			s.counts[slot]++
			s.refs = append(s.refs, indRef{uint32(gi), uint32(i)})
		}
	}
	return s, stats
}

// allocIndexes sizes the segment's indexes for its counts by type.
func (s *segment) allocIndexes() {
	s.next = make([]uint32, len(s.refs))
	c := &s.counts
	s.seed = maphash.MakeSeed()
	if n := c[0] + c[1]; n > 0 {
		s.ip4 = newU32Table(c[0])
		if c[1] > 0 {
			s.ip6 = make(map[[16]byte]uint32, c[1])
		}
	}
	if c[2] > 0 {
		s.cidr = new(bart.Table[uint32])
	}
	if c[3] > 0 {
		s.domains = newStrTable(s.seed, c[3])
		s.tails = newBitFilter(c[3])
		s.minLabels = 1 << 30
	}
	if c[4] > 0 {
		s.urls = newStrTable(s.seed, c[4])
		s.urlHosts = newBitFilter(c[4])
	}
	if c[5] > 0 {
		s.uas = newStrTable(s.seed, c[5])
		s.uaFilter = newBitFilter(c[5])
	}
	if c[6] > 0 {
		s.ja3 = newStrTable(s.seed, c[6])
		s.ja3Filter = newBitFilter(c[6])
	}
}

// index adds the indicator ref to the segment's indexes as number idx. A
// key seen before chains the new indicator in front of the old one. It
// reports false, indexing nothing, for a value that does not parse.
func (s *segment) index(ref indRef, idx uint32) bool {
	g := s.group(ref)
	value := g.value(ref.i)
	switch g.typeOf(ref.i) {
	case TypeIPv4, TypeIPv6, TypeCIDR:
		p, isAddr, valid := parseIPOrPrefix(refang(value))
		if !valid {
			return false
		}
		s.indexIP(p, isAddr, idx)
	case TypeDomain:
		k := domainKey(value)
		if !validDomain(k) {
			return false
		}
		s.next[idx] = link(s.domains.put(maphash.String(s.seed, k), k, idx))
		s.tails.add(maphash.String(s.seed, tail(k)))
		n := strings.Count(k, ".") + 1
		s.minLabels = min(s.minLabels, n)
		s.maxLabels = max(s.maxLabels, n)
	case TypeURL:
		k, valid := urlKey(value)
		if !valid {
			return false
		}
		s.next[idx] = link(s.urls.put(maphash.String(s.seed, k), k, idx))
		s.urlHosts.add(maphash.String(s.seed, k[:strings.IndexByte(k, '/')]))
	case TypeUA:
		s.next[idx] = link(s.uas.put(maphash.String(s.seed, value), value, idx))
		s.uaFilter.add(sampleHash(value))
	case TypeJA3:
		k, valid := parseMD5(value)
		if !valid {
			return false
		}
		s.next[idx] = link(s.ja3.put(maphash.Bytes(s.seed, k[:]), string(k[:]), idx))
		s.ja3Filter.add(md5Hash(value))
	}
	return true
}

// indexIP adds an address or CIDR indicator as number idx (an indicator
// of one IP type may hold a value of another: the value decides).
func (s *segment) indexIP(p netip.Prefix, isAddr bool, idx uint32) {
	switch {
	case isAddr && p.Addr().Is4():
		if s.ip4 == nil {
			s.ip4 = newU32Table(0)
		}
		a := p.Addr().As4()
		s.next[idx] = link(s.ip4.put(binary.BigEndian.Uint32(a[:]), idx))
	case isAddr:
		if s.ip4 == nil {
			s.ip4 = newU32Table(0)
		}
		if s.ip6 == nil {
			s.ip6 = make(map[[16]byte]uint32)
		}
		s.next[idx] = chain(s.ip6, p.Addr().As16(), idx)
	default:
		if s.cidr == nil {
			s.cidr = new(bart.Table[uint32])
		}
		if old, ok := s.cidr.Get(p); ok {
			s.next[idx] = old + 1
		}
		s.cidr.Insert(p, idx)
	}
}

// yieldEvery+1 is how many indicators a load parses or indexes before it
// lets other goroutines run: on a small machine a reload must not hold a
// processor that event matching is waiting for.
const yieldEvery = 1<<13 - 1

// link returns the link to the indicator that a table put replaced.
func link(old uint32, replaced bool) uint32 {
	if replaced {
		return old + 1
	}
	return 0
}

// chain sets m[k] to idx and returns the link to the indicator it replaces.
func chain[K comparable](m map[K]uint32, k K, idx uint32) uint32 {
	old, ok := m[k]
	m[k] = idx
	if ok {
		return old + 1
	}
	return 0
}

// Len returns the number of indicators in the set. An indicator listed in
// two files counts twice.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Counts returns the number of indicators of each type.
func (s *Set) Counts() map[Type]int {
	m := make(map[Type]int, len(typeIndex))
	for i, t := range typeIndex {
		if s != nil {
			m[t] = s.counts[i]
		} else {
			m[t] = 0
		}
	}
	return m
}

// plan names the fields of one dataset that are matched, by role.
type plan struct {
	ips      []field // client addresses: addresses and ranges
	hosts    []field // host names: domains, subdomains included
	urlHost  field   // with urlPath, the request URL: URLs
	urlPath  field
	referrer field // a URL: its host against domains, itself against URLs
	ua       field // user-agents, exact
	ja3      field // JA3 hashes
}

// field is an event field a plan reads: its name, for the hits, and the
// name resolved once, for reading it from every event.
type field struct {
	name string
	f    normalize.Field
}

func fl(name string) field { return field{name: name, f: normalize.FieldOf(name)} }

func fls(names ...string) []field {
	fs := make([]field, len(names))
	for i, n := range names {
		fs[i] = fl(n)
	}
	return fs
}

var plans = map[string]*plan{
	"http_requests": {
		ips:      fls("source.ip"),
		hosts:    fls("destination.address"),
		urlHost:  fl("destination.address"),
		urlPath:  fl("url.original"),
		referrer: fl("http.request.referrer"),
		ua:       fl("user_agent.original"),
		ja3:      fl("cloudflare.JA3Hash"),
	},
	"firewall_events": {
		ips:     fls("source.ip"),
		hosts:   fls("url.domain", "destination.domain"),
		urlHost: fl("url.domain"),
		urlPath: fl("url.original"),
		ua:      fl("user_agent.original"),
	},
	"dns_logs": {
		ips:   fls("source.ip"),
		hosts: fls("dns.question.name"),
	},
	"gateway_dns": {
		ips:   fls("source.ip"),
		hosts: fls("dns.question.name"),
	},
	"gateway_http": {
		ips:      fls("source.ip", "destination.ip"),
		hosts:    fls("url.domain", "destination.domain"),
		urlHost:  fl("url.domain"),
		urlPath:  fl("url.original"),
		referrer: fl("http.request.referrer"),
		ua:       fl("user_agent.original"),
	},
}

// planFor returns the plan of a dataset (a switch: faster than the map).
func planFor(dataset string) *plan {
	switch dataset {
	case "http_requests":
		return httpPlan
	case "":
		return otherPlan
	}
	if p := plans[dataset]; p != nil {
		return p
	}
	return otherPlan
}

var httpPlan = plans["http_requests"]

// otherPlan serves the datasets without a plan of their own.
var otherPlan = &plan{
	ips:      fls("source.ip"),
	hosts:    fls("destination.domain", "url.domain", "dns.question.name"),
	urlHost:  fl("url.domain"),
	urlPath:  fl("url.original"),
	referrer: fl("http.request.referrer"),
	ua:       fl("user_agent.original"),
}

// Match appends to dst a Hit for every indicator the event matches and
// returns the extended slice; it does not allocate when nothing matches.
//
// What is compared, for http_requests:
//   - source.ip (the client) with addresses and CIDR ranges of both
//     families, whatever the indicator's tags: behind Cloudflare an infected
//     host calling its command-and-control server is the client;
//   - destination.address (the requested host) and the host of
//     http.request.referrer with domains: a listed domain matches itself and
//     its subdomains; case, a trailing dot and a port are ignored;
//   - destination.address + url.original, and the referrer, with URLs: the
//     scheme, userinfo, port and fragment are ignored and the host's case too;
//     the path and query are compared as written (case kept, no
//     percent-decoding). A URL indicator without a query also matches that
//     path with any query;
//   - user_agent.original with user-agents, exactly;
//   - cloudflare.JA3Hash with JA3 hashes, ignoring case.
//
// The DNS datasets compare dns.question.name with domains and source.ip
// with addresses; firewall_events url.domain and destination.domain with
// domains, the URL and the user-agent. An indicator whose ValidUntil is not
// after the event's time (or now, for an event without a time) does not
// match. A nil Set matches nothing.
func (s *Set) Match(ev *normalize.Event, dst []Hit) []Hit {
	if s == nil || s.n == 0 {
		return dst
	}
	return s.match(ev.Dataset, ev.Time, ev, dst)
}

// fields is the view of an event that matching needs.
type fields interface {
	StringField(f normalize.Field) (string, bool)
}

func (s *Set) match(dataset string, evTime time.Time, ev fields, dst []Hit) []Hit {
	if s == nil {
		return dst
	}
	for _, g := range s.segs {
		if len(g.refs) > 0 {
			dst = g.match(dataset, evTime, ev, dst)
		}
	}
	return dst
}

// match is [Set.match] on the segment's indicators.
func (s *segment) match(dataset string, evTime time.Time, ev fields, dst []Hit) []Hit {
	p := planFor(dataset)
	m := matcher{s: s, evTime: evTime, dst: dst, start: len(dst)}
	if s.ip4 != nil || s.cidr != nil {
		for _, f := range p.ips {
			if v, ok := ev.StringField(f.f); ok {
				m.ip(f.name, v)
			}
		}
	}
	// The requested host: its parent domains against domains, its hash to
	// find whether any URL indicator has that host.
	var hbuf, obuf [256]byte
	var urlHost []byte // p.urlHost in lower case (in hbuf), once read
	if s.domains != nil {
		for _, f := range p.hosts {
			if v, ok := ev.StringField(f.f); ok {
				if f.name == p.urlHost.name {
					urlHost = m.host(&hbuf, f.name, v, v)
				} else {
					m.host(&obuf, f.name, v, v)
				}
			}
		}
	}
	if s.urls != nil && p.urlHost.name != "" {
		if path, ok := ev.StringField(p.urlPath.f); ok && path != "" {
			if urlHost == nil {
				v, _ := ev.StringField(p.urlHost.f)
				urlHost = lowerHost(&hbuf, v)
			}
			m.requestURL(p.urlPath.name, urlHost, path)
		}
	}
	if (s.domains != nil || s.urls != nil) && p.referrer.name != "" {
		if v, ok := ev.StringField(p.referrer.f); ok && v != "" {
			m.referrer(p.referrer.name, v)
		}
	}
	if s.uas != nil && p.ua.name != "" {
		if v, ok := ev.StringField(p.ua.f); ok && s.uaFilter.has(sampleHash(v)) {
			if i, ok := get(s.uas, maphash.String(s.seed, v), v); ok {
				m.hit(i, p.ua.name, v)
			}
		}
	}
	if s.ja3 != nil && p.ja3.name != "" {
		if v, ok := ev.StringField(p.ja3.f); ok && len(v) == 32 && s.ja3Filter.has(md5Hash(v)) {
			if k, ok := parseMD5(v); ok {
				if i, ok := get(s.ja3, maphash.Bytes(s.seed, k[:]), k[:]); ok {
					m.hit(i, p.ja3.name, v)
				}
			}
		}
	}
	return m.dst
}

// matcher is the state of one Match call on one segment.
type matcher struct {
	s      *segment
	evTime time.Time
	dst    []Hit
	start  int
	at     time.Time // when expiry is judged, once needed
}

// hit appends a Hit for the indicator at index i and those chained to it,
// skipping expired ones and repeats of the same indicator and value.
func (m *matcher) hit(i uint32, field, value string) {
	for {
		ref := m.s.refs[i]
		if !m.expired(ref) && !m.seen(i, value) {
			m.dst = append(m.dst, Hit{Indicator: m.s.group(ref).indicator(ref.i), Field: field, Value: value, ref: i})
		}
		n := m.s.next[i]
		if n == 0 {
			return
		}
		i = n - 1
	}
}

func (m *matcher) expired(ref indRef) bool {
	g := m.s.group(ref)
	if meta := g.metaOf(ref.i); meta == nil || meta.ValidUntil.IsZero() {
		return false
	}
	if m.at.IsZero() {
		m.at = m.evTime
		if m.at.IsZero() {
			m.at = time.Now()
		}
	}
	return g.expired(ref.i, m.at)
}

func (m *matcher) seen(i uint32, value string) bool {
	for _, h := range m.dst[m.start:] {
		if h.ref == i && h.Value == value {
			return true
		}
	}
	return false
}

// ip matches an address against addresses and every range holding it.
func (m *matcher) ip(field, v string) {
	var a netip.Addr
	if n, ok := parseIPv4(v); ok {
		if i, ok := m.s.ip4.get(n); ok {
			m.hit(i, field, v)
		}
		if m.s.cidr == nil {
			return
		}
		a = netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	} else {
		var err error
		if a, err = netip.ParseAddr(v); err != nil {
			return
		}
		a = a.Unmap().WithZone("")
		if a.Is4() {
			b := a.As4()
			if i, ok := m.s.ip4.get(binary.BigEndian.Uint32(b[:])); ok {
				m.hit(i, field, v)
			}
		} else if i, ok := m.s.ip6[a.As16()]; ok {
			m.hit(i, field, v)
		}
	}
	if m.s.cidr == nil {
		return
	}
	if _, ok := m.s.cidr.Lookup(a); !ok {
		return
	}
	for _, i := range m.s.cidr.Supernets(netip.PrefixFrom(a, a.BitLen())) {
		m.hit(i, field, v)
	}
}

// parseIPv4 parses an IPv4 address in its canonical dotted-decimal form
// (no leading zeros), the form Cloudflare logs use. Anything else is
// left to [netip.ParseAddr].
func parseIPv4(s string) (uint32, bool) {
	if len(s) < 7 || len(s) > 15 {
		return 0, false
	}
	var ip uint32
	field, digits, dots := uint32(0), 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			if digits == 1 && field == 0 {
				return 0, false // leading zero
			}
			field = field*10 + uint32(c-'0')
			digits++
			if field > 255 {
				return 0, false
			}
		case c == '.' && digits > 0 && dots < 3:
			ip = ip<<8 | field
			field, digits = 0, 0
			dots++
		default:
			return 0, false
		}
	}
	if dots != 3 || digits == 0 {
		return 0, false
	}
	return ip<<8 | field, true
}

// parseMD5 decodes 32 hexadecimal digits of either case.
func parseMD5(v string) (k [16]byte, ok bool) {
	if len(v) != 32 {
		return k, false
	}
	for i := range k {
		hi, ok1 := fromHex(v[2*i])
		lo, ok2 := fromHex(v[2*i+1])
		if !ok1 || !ok2 {
			return k, false
		}
		k[i] = hi<<4 | lo
	}
	return k, true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// tail returns the last two labels of a domain key.
func tail(k string) string {
	i := strings.LastIndexByte(k, '.')
	if i < 0 {
		return k
	}
	if j := strings.LastIndexByte(k[:i], '.'); j >= 0 {
		return k[j+1:]
	}
	return k
}

// lowerHost writes host into buf in lower case, without port and trailing
// dot; a bracketed IPv6 address keeps its brackets. It returns nil for a
// bare IPv6 address and what is too long to be a host.
func lowerHost(buf *[256]byte, host string) []byte {
	if strings.HasPrefix(host, "[") {
		i := strings.IndexByte(host, ']')
		if i < 0 || i >= len(buf) {
			return nil
		}
		host = host[:i+1]
	} else if i := strings.IndexByte(host, ':'); i >= 0 {
		if strings.IndexByte(host[i+1:], ':') >= 0 {
			return nil // IPv6
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return nil
	}
	return appendLower(buf[:0], host)
}

// host matches a host name and its parent domains against domains,
// reporting value as the event's value of field. It returns the host in
// lower case, in buf, or nil when it is no host name.
func (m *matcher) host(buf *[256]byte, field, host, value string) []byte {
	b := lowerHost(buf, host)
	if len(b) == 0 || b[0] == '[' {
		return b
	}
	s := m.s
	labels, dot1, dot2 := 1, -1, -1 // dot1, dot2: the last two dots
	for i, c := range b {
		if c == '.' {
			labels++
			dot2, dot1 = dot1, i
		}
	}
	if labels < s.minLabels {
		return b
	}
	if labels > 1 && !s.tails.has(maphash.Bytes(s.seed, b[dot2+1:])) {
		return b
	}
	for i := 0; labels >= s.minLabels; labels-- {
		if labels <= s.maxLabels {
			if idx, ok := get(s.domains, maphash.Bytes(s.seed, b[i:]), b[i:]); ok {
				m.hit(idx, field, value)
			}
		}
		j := indexByte(b[i:], '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return b
}

// requestURL matches the URL of a request: host (lower case, from
// lowerHost) plus path (url.original, which may also be an absolute URL).
func (m *matcher) requestURL(field string, host []byte, path string) {
	if path[0] != '/' {
		h, rest, isURL := splitURL(path)
		if !isURL {
			return
		}
		var buf [256]byte
		host, path = lowerHost(&buf, h), rest
		m.url(field, host, path, "")
		return
	}
	m.url(field, host, path, "")
}

// referrer matches a referrer URL's host against domains and the URL
// against URLs.
func (m *matcher) referrer(field, v string) {
	host, rest, ok := splitURL(v)
	if !ok {
		return
	}
	var buf [256]byte
	var h []byte
	if m.s.domains != nil {
		h = m.host(&buf, field, host, v)
	} else {
		h = lowerHost(&buf, host)
	}
	if m.s.urls != nil {
		m.url(field, h, rest, v)
	}
}

// url matches host (lower case, from lowerHost) + rest against URLs, with
// its query and without, if any URL indicator has that host. value is the
// event value to report, or "" for host + rest.
func (m *matcher) url(field string, host []byte, rest, value string) {
	if len(host) == 0 {
		return
	}
	if !m.s.urlHosts.has(maphash.Bytes(m.s.seed, host)) {
		return
	}
	var kbuf [1024]byte
	k := appendRest(append(kbuf[:0], host...), rest)
	report := func(i uint32) {
		if value == "" {
			value = string(host) + rest
		}
		m.hit(i, field, value)
	}
	if i, ok := get(m.s.urls, maphash.Bytes(m.s.seed, k), k); ok {
		report(i)
	}
	if q := indexByte(k, '?'); q >= 0 {
		if i, ok := get(m.s.urls, maphash.Bytes(m.s.seed, k[:q]), k[:q]); ok {
			report(i)
		}
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// splitURL splits an absolute URL ("scheme://host/rest" or "//host/rest")
// into its host (userinfo removed, port kept) and the rest.
func splitURL(u string) (host, rest string, ok bool) {
	i := strings.Index(u, "//")
	if i < 0 || (i > 0 && (u[i-1] != ':' || i > 20)) {
		return "", "", false
	}
	u = u[i+2:]
	end := 0
	for end < len(u) && u[end] != '/' && u[end] != '?' && u[end] != '#' {
		end++
	}
	host = u[:end]
	if j := strings.LastIndexByte(host, '@'); j >= 0 {
		host = host[j+1:]
	}
	return host, u[end:], host != ""
}
