package normalize

import (
	"net/netip"
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

// Source fields of the http_requests ECS mapping, by slot. The lower-case
// names are the GraphQL firewall-event style keys SEKOIA's parser also reads.
const (
	slotClientIP = iota
	slotClientIPGQL
	slotHost
	slotHostGQL
	slotMethod
	slotMethodGQL
	slotPath
	slotURI
	slotRespBytes
	slotStatus
	slotAction
	slotASNGQL
	slotASN
	slotCountryGQL
	slotCountry
	slotProtoGQL
	slotProto
	slotDatetime
	slotRuleID
	slotRulesetID
	slotUAGQL
	slotUA
	slotReqBytes
	slotReferer
	slotCipher
	slotSSLProto
	slotSrcPort
	slotStart
	slotEnd
	slotRayID
	numSlots
)

var httpSlotNames = [numSlots]string{
	slotClientIP:    "ClientIP",
	slotClientIPGQL: "clientIP",
	slotHost:        "ClientRequestHost",
	slotHostGQL:     "clientRequestHTTPHost",
	slotMethod:      "ClientRequestMethod",
	slotMethodGQL:   "clientRequestHTTPMethodName",
	slotPath:        "ClientRequestPath",
	slotURI:         "ClientRequestURI",
	slotRespBytes:   "EdgeResponseBytes",
	slotStatus:      "EdgeResponseStatus",
	slotAction:      "action",
	slotASNGQL:      "clientAsn",
	slotASN:         "ClientASN",
	slotCountryGQL:  "clientCountryName",
	slotCountry:     "ClientCountry",
	slotProtoGQL:    "clientRequestHTTPProtocol",
	slotProto:       "ClientRequestProtocol",
	slotDatetime:    "datetime",
	slotRuleID:      "ruleId",
	slotRulesetID:   "rulesetId",
	slotUAGQL:       "userAgent",
	slotUA:          "ClientRequestUserAgent",
	slotReqBytes:    "ClientRequestBytes",
	slotReferer:     "ClientRequestReferer",
	slotCipher:      "ClientSSLCipher",
	slotSSLProto:    "ClientSSLProtocol",
	slotSrcPort:     "ClientSrcPort",
	slotStart:       "EdgeStartTimestamp",
	slotEnd:         "EdgeEndTimestamp",
	slotRayID:       "RayID",
}

// httpECS is the set_ecs_fields stage of SEKOIA's http_requests parser:
// path is set from the first source slot if it is truthy, else from the
// second (Jinja's "a or b"), cast to kind. second is -1 for a single source.
var httpECS = []struct {
	path          string
	kind          fieldKind
	first, second int
}{
	{"destination.address", kindText, slotHost, slotHostGQL},
	{"http.request.method", kindText, slotMethod, slotMethodGQL},
	{"url.path", kindText, slotPath, slotURI},
	{"http.response.bytes", kindNumber, slotRespBytes, -1},
	{"http.response.status_code", kindNumber, slotStatus, -1},
	{"event.action", kindText, slotAction, -1},
	{"source.as.number", kindNumber, slotASNGQL, slotASN},
	{"source.geo.country_name", kindText, slotCountryGQL, slotCountry},
	{"network.protocol", kindText, slotProtoGQL, slotProto},
	{"@timestamp", kindText, slotDatetime, -1},
	{"rule.id", kindText, slotRuleID, -1},
	{"rule.ruleset", kindText, slotRulesetID, -1},
	{"user_agent.original", kindText, slotUAGQL, slotUA},
	{"http.request.bytes", kindNumber, slotReqBytes, -1},
	{"http.request.referrer", kindText, slotReferer, -1},
	{"tls.cipher", kindText, slotCipher, -1},
	{"tls.version_protocol", kindText, slotSSLProto, -1},
	{"source.port", kindNumber, slotSrcPort, -1},
}

// httpKey describes what becomes of one top-level key of an http_requests
// record.
type httpKey struct {
	name string    // the key, so that map keys need no allocation
	kind fieldKind // cast for cloudflare.<name>; 0 when not copied
	flat string    // "cloudflare.<name>"
	slot int       // source slot for the ECS mapping, or -1
}

var httpKeys = func() map[string]httpKey {
	m := make(map[string]httpKey, len(httpRequestsFields)+numSlots)
	for name, kind := range httpRequestsFields {
		m[name] = httpKey{name: name, kind: kind, flat: "cloudflare." + name, slot: -1}
	}
	for slot, name := range httpSlotNames {
		k, ok := m[name]
		if !ok {
			k = httpKey{name: name}
		}
		k.slot = slot
		m[name] = k
	}
	return m
}()

// slot holds a source field of the ECS mapping and, once cast, its value.
type slot struct {
	v    *fastjson.Value
	val  any
	kind fieldKind // kind val was cast to; 0 if not cast yet
}

// decodeHTTPRequests maps an http_requests record as SEKOIA's parser does
// (mapping spec §3.1 and rules R1-R12), plus the documented raywatch
// additions @timestamp, url.original and url.query.
func decodeHTTPRequests(obj *fastjson.Object, raw []byte) (*Event, error) {
	b := newBuilder(len(raw), obj.Len())
	var slots [numSlots]slot
	cf := make(map[string]any, obj.Len())
	var err error
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		k, ok := httpKeys[string(key)]
		if !ok {
			return
		}
		var val any
		if k.kind != 0 {
			if isEmpty(v) {
				delete(cf, k.name)
				if isEmptyString(v) {
					b.flat[k.flat] = ""
				} else {
					delete(b.flat, k.flat)
				}
			} else {
				val, err = b.cast(v, k.kind, k.name, k.flat)
				if err != nil {
					return
				}
				cf[k.name] = val
				if k.kind != kindObject {
					b.flat[k.flat] = val
				}
			}
		}
		if k.slot >= 0 {
			s := slot{v: v}
			if val != nil {
				s.val, s.kind = val, k.kind
			}
			slots[k.slot] = s
		}
	})
	if err != nil {
		return nil, err
	}
	ev := &Event{Dataset: "http_requests"}

	for _, i := range []int{slotClientIP, slotClientIPGQL} {
		if ip, ok := b.slotIP(&slots[i]); ok {
			b.set("source.ip", ip)
			b.set("source.address", ip)
			b.set("related.ip", []any{ip})
		}
	}

	for _, m := range httpECS {
		s := &slots[m.first]
		if !truthy(s.v) && m.second >= 0 {
			s = &slots[m.second]
		}
		if isEmpty(s.v) {
			if isEmptyString(slots[m.first].v) || m.second >= 0 && isEmptyString(slots[m.second].v) {
				b.setEmpty(m.path)
			}
			continue
		}
		if s.kind != m.kind {
			name := httpSlotNames[m.first]
			if s != &slots[m.first] {
				name = httpSlotNames[m.second]
			}
			val, err := b.cast(s.v, m.kind, name, "")
			if err != nil {
				return nil, err
			}
			s.val, s.kind = val, m.kind
		}
		b.set(m.path, s.val)
	}
	b.set("event.category", []any{"web"})
	b.set("event.type", []any{"access"})
	b.set("event.dataset", "http_requests")
	b.set("observer.vendor", "Cloudflare")
	b.set("observer.type", "proxy")

	if s := slots[slotStart].v; !isEmpty(s) {
		t, err := b.parseTimestamp(s, httpSlotNames[slotStart])
		if err != nil {
			return nil, err
		}
		ev.Time = t
		var start any = formatTimestamp(t)
		b.set("event.start", start)
		if _, ok := b.doc["@timestamp"]; !ok {
			b.set("@timestamp", start)
		}
	}
	if s := slots[slotEnd].v; !isEmpty(s) {
		t, err := b.parseTimestamp(s, httpSlotNames[slotEnd])
		if err != nil {
			return nil, err
		}
		b.set("event.end", formatTimestamp(t))
	}
	if ev.Time.IsZero() {
		if s, ok := b.flat["@timestamp"].(string); ok && s != "" {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				ev.Time = t.UTC()
			}
		}
	}

	if s := &slots[slotURI]; !isEmpty(s.v) {
		if uri, ok := s.val.(string); ok {
			b.set("url.original", s.val)
			if i := strings.IndexByte(uri, '?'); i >= 0 && i+1 < len(uri) {
				b.set("url.query", uri[i+1:])
			}
		}
	} else if isEmptyString(s.v) {
		b.setEmpty("url.original")
	}

	if len(cf) > 0 {
		b.doc["cloudflare"] = cf
	}
	ev.doc, ev.flat = b.doc, b.flat
	if id, ok := slots[slotRayID].val.(string); ok && id != "" {
		ev.Key = id
	} else {
		ev.Key = recordKey(raw)
	}
	return ev, nil
}

// slotIP returns the slot's value if it is a string holding an IPv4 or IPv6
// address (Python's is_ipaddress, which accepts IPv4-mapped IPv6 and zones).
func (b *builder) slotIP(s *slot) (any, bool) {
	if s.v == nil || s.v.Type() != fastjson.TypeString {
		return nil, false
	}
	ip, ok := s.val.(string)
	if !ok {
		raw, _ := s.v.StringBytes()
		ip = b.str(raw)
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return nil, false
	}
	if ok {
		return s.val, true // already boxed
	}
	return ip, true
}
