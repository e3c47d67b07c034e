package normalize

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Custom fields set by name rather than copied from a record key.
var (
	fCFRayID                = fid("cloudflare.RayID")
	fCFClientASNDescription = fid("cloudflare.clientASNDescription")
	fCFMatchIndex           = fid("cloudflare.matchIndex")
	fCFMetadata             = fid("cloudflare.metadata")
	fCFResponseCached       = fid("cloudflare.ResponseCached")
	fCFFileList             = fid("cloudflare.file_list")
	fCFInternalSourceIP     = fid("cloudflare.InternalSourceIP")
	fCFZoneTag              = fid("cloudflare.zone_tag")
	fCFRequestClientDefault = fid("cloudflare.request_client_default")
	fCFRequestName          = fid("cloudflare.request_name")
	fCFRequestNetworks      = fid("cloudflare.request_networks")
	fCFZoneName             = fid("cloudflare.zone_name")
)

// The decoders below follow SEKOIA's parser.yml for each format (mapping
// spec §3), plus the documented raywatch additions and fixes (README.md).
// The engine's implicit rules (R4-R9) are applied afterwards by finish.

// fail records a field that could not be normalized: the field is left
// out, and the rest of the record goes on.
func (b *builder) fail(err error) {
	if err == nil {
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		fe = &FieldError{Reason: err.Error()}
	}
	for _, x := range b.ev.fieldErrs {
		if x == *fe {
			return // one key mapped to two fields (the ECS one and cloudflare.*)
		}
	}
	b.ev.fieldErrs = append(b.ev.fieldErrs, *fe)
}

// mapKey sets field id from record key, cast to kind.
func (b *builder) mapKey(id uint16, key string, kind fieldKind) {
	b.fail(b.set(id, b.v(key), kind, key))
}

// mapSlot sets field id from the record key in slot s, cast to kind.
func (b *builder) mapSlot(id uint16, s int, kind fieldKind) {
	b.fail(b.set(id, b.vals[s], kind, b.ds.names[s]))
}

// mapOr sets field id from Jinja's "a or b": the first truthy value.
func (b *builder) mapOr(id uint16, a, c int, kind fieldKind) {
	va, vc := b.vals[a], b.vals[c]
	s := a
	if !truthy(va) {
		s = c
	}
	v := b.vals[s]
	if isEmpty(v) {
		if isEmptyString(va) || isEmptyString(vc) {
			b.setEmpty(id)
		}
		return
	}
	b.fail(b.set(id, v, kind, b.ds.names[s]))
}

// ipText returns v as an arena string if it is a string holding an IPv4 or
// IPv6 address (Python's ipaddress, which accepts IPv4-mapped IPv6 and
// zones).
func (b *builder) ipText(v *jvalue) (string, bool) {
	if v == nil || v.Type() != jString {
		return "", false
	}
	if len(v.s) == 0 || len(v.s) > 64 {
		return "", false
	}
	if _, err := netip.ParseAddr(v.s); err != nil {
		return "", false
	}
	return b.own(v), true
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// mapIP sets field id from v when it is an IP address (the is_ipaddress
// filter), and reports whether it did.
func (b *builder) mapIP(id uint16, v *jvalue) bool {
	s, ok := b.ipText(v)
	if ok {
		b.setText(id, s)
	}
	return ok
}

// copies applies the dataset's cloudflare.* copies.
func (b *builder) copies() {
	for _, c := range b.ds.copies {
		v := b.vals[c.slot]
		if v == nil {
			continue
		}
		if c.noEmpty && v != nil && v.t == jArray && v.n == 0 {
			continue
		}
		b.fail(b.set(c.id, v, c.kind, b.ds.names[c.slot]))
	}
}

// sub returns member key of object value v (Jinja's chained attribute
// access: undefined when v is not an object).
func (b *builder) sub(v *jvalue, key string) *jvalue { return b.jp.get(v, key) }

// textIs reports whether v is the string s.
func textIs(v *jvalue, s string) bool {
	return v != nil && v.t == jString && v.s == s
}

// present reports .get("K") != None: the key is there and not null.
func present(v *jvalue) bool { return v != nil && v.Type() != jNull }

// timestamp sets field id from a Logpush timestamp in any format (rule R10
// output) and returns the instant; an RFC 3339 string is kept verbatim when
// verbatim is set (rule R11).
func (b *builder) timestamp(id uint16, key string, verbatim bool) {
	b.timestampValue(id, b.v(key), key, verbatim)
}

// timestampValue is timestamp for the value v of key.
func (b *builder) timestampValue(id uint16, v *jvalue, key string, verbatim bool) {
	if isEmpty(v) {
		return
	}
	t, err := b.parseTimestamp(v, key)
	if verbatim && v.Type() == jString {
		if err != nil || !validNumber(v.s) {
			b.setText(id, b.own(v))
			if err == nil && b.ev.Time.IsZero() {
				b.ev.Time = t
			}
			return
		}
	}
	if err != nil {
		b.fail(err)
		return
	}
	if b.ev.Time.IsZero() {
		b.ev.Time = t
	}
	b.setText(id, b.formatTimestamp(t))
}

var (
	httpDS    = newDataset("http_requests")
	hClientIP = httpDS.slot("ClientIP")
	hClientIPGQL,
	hHost, hHostGQL,
	hMethod, hMethodGQL,
	hPath, hURI,
	hRespBytes, hStatus, hAction,
	hASNGQL, hASN,
	hCountryGQL, hCountry,
	hProtoGQL, hProto,
	hDatetime, hRuleID, hRulesetID,
	hUAGQL, hUA,
	hReqBytes, hReferer, hCipher, hSSLProto, hSrcPort,
	hStart, hEnd = httpDS.slot("clientIP"),
		httpDS.slot("ClientRequestHost"), httpDS.slot("clientRequestHTTPHost"),
		httpDS.slot("ClientRequestMethod"), httpDS.slot("clientRequestHTTPMethodName"),
		httpDS.slot("ClientRequestPath"), httpDS.slot("ClientRequestURI"),
		httpDS.slot("EdgeResponseBytes"), httpDS.slot("EdgeResponseStatus"), httpDS.slot("action"),
		httpDS.slot("clientAsn"), httpDS.slot("ClientASN"),
		httpDS.slot("clientCountryName"), httpDS.slot("ClientCountry"),
		httpDS.slot("clientRequestHTTPProtocol"), httpDS.slot("ClientRequestProtocol"),
		httpDS.slot("datetime"), httpDS.slot("ruleId"), httpDS.slot("rulesetId"),
		httpDS.slot("userAgent"), httpDS.slot("ClientRequestUserAgent"),
		httpDS.slot("ClientRequestBytes"), httpDS.slot("ClientRequestReferer"), httpDS.slot("ClientSSLCipher"),
		httpDS.slot("ClientSSLProtocol"), httpDS.slot("ClientSrcPort"),
		httpDS.slot("EdgeStartTimestamp"), httpDS.slot("EdgeEndTimestamp")
)

func init() {
	for _, name := range sortedKeys(httpRequestsFields) {
		httpDS.copy(name, name, httpRequestsFields[name], false)
	}
	httpDS.decode = decodeHTTPRequests
}

// decodeHTTPRequests maps an http_requests record (mapping spec §3.1), plus
// the additions @timestamp, url.original and url.query.
func decodeHTTPRequests(b *builder) {
	b.mapIP(fSourceIP, b.vals[hClientIP])
	b.mapIP(fSourceIP, b.vals[hClientIPGQL])
	b.mapOr(fDestAddress, hHost, hHostGQL, kindText)
	b.mapOr(fReqMethod, hMethod, hMethodGQL, kindText)
	b.mapOr(fURLPath, hPath, hURI, kindText)
	b.mapSlot(fRespBytes, hRespBytes, kindNumber)
	b.mapSlot(fRespStatus, hStatus, kindNumber)
	b.mapSlot(fEventAction, hAction, kindText)
	b.mapOr(fSourceASN, hASNGQL, hASN, kindNumber)
	b.mapOr(fSourceCountry, hCountryGQL, hCountry, kindText)
	b.mapOr(fNetProtocol, hProtoGQL, hProto, kindText)
	b.mapSlot(fTimestamp, hDatetime, kindText)
	b.mapSlot(fRuleID, hRuleID, kindText)
	b.mapSlot(fRuleRuleset, hRulesetID, kindText)
	b.mapOr(fUAOriginal, hUAGQL, hUA, kindText)
	b.mapSlot(fReqBytes, hReqBytes, kindNumber)
	b.mapSlot(fReqReferrer, hReferer, kindText)
	b.mapSlot(fTLSCipher, hCipher, kindText)
	b.mapSlot(fTLSVersionProtocol, hSSLProto, kindText)
	b.mapSlot(fSourcePort, hSrcPort, kindNumber)
	b.setList(fEventCategory, "web")
	b.setList(fEventType, "access")
	b.setText(fEventDataset, "http_requests")
	b.setText(fObserverVendor, "Cloudflare")
	b.setText(fObserverType, "proxy")

	if s, ok := b.get(fTimestamp); ok {
		if t, err := parseTimeText(s); err == nil {
			b.ev.Time = t
		}
	}
	b.timestampValue(fEventStart, b.vals[hStart], "EdgeStartTimestamp", false)
	b.timestampValue(fEventEnd, b.vals[hEnd], "EdgeEndTimestamp", false)
	if !b.has(fTimestamp) {
		if s, ok := b.get(fEventStart); ok {
			b.setText(fTimestamp, s) // raywatch addition
		}
	}

	// raywatch additions: url.original and url.query from the URI.
	if v := b.vals[hURI]; v != nil && v.Type() == jString {
		if s := b.own(v); len(s) == 0 {
			b.setEmpty(fURLOriginal)
		} else {
			b.setText(fURLOriginal, s)
			if i := strings.IndexByte(s, '?'); i >= 0 && i+1 < len(s) {
				b.setText(fURLQuery, s[i+1:])
			}
		}
	}
	b.copies()
	if id, ok := b.get(fCFRayID); ok && id != "" {
		b.ev.Key = id
	}
}

var fwDS = newDataset("firewall_events")

// firewallTypes is the translate table from event.action to event.type.
var firewallTypes = map[string]string{
	"unknown": "info", "allow": "allowed", "block": "denied", "challenge": "info", "jschallenge": "info",
	"log": "info", "connectionclose": "end", "challengesolved": "allowed", "challengefailed": "denied",
	"challengebypassed": "allowed", "jschallengesolved": "allowed", "jschallengefailed": "denied",
	"jschallengebypassed": "allowed", "bypass": "allowed", "managedchallenge": "info",
	"managedchallengeskipped": "allowed", "managedchallengenoninteractivesolved": "allowed",
	"managedchallengeinteractivesolved": "allowed", "managedchallengebypassed": "allowed",
}

func init() {
	d := fwDS
	for _, k := range []string{"ClientIP", "Datetime", "ClientASN", "ClientCountry", "ClientRequestHost",
		"ClientRequestMethod", "ClientRequestProtocol", "ClientRequestPath", "ClientRequestScheme",
		"ClientRequestQuery", "ClientRequestUserAgent", "EdgeResponseStatus", "Action", "RuleId", "RuleID",
		"Description", "Ref", "clientRequestHTTPProtocol", "rulesetId", "ClientRequestBytes",
		"ClientRequestReferer", "ClientSSLCipher", "ClientSSLProtocol", "ClientSrcPort", "Source",
		"clientASNDescription", "ClientASNDescription", "matchIndex", "MatchIndex", "metadata", "Metadata"} {
		d.slot(k)
	}
	// The whole-event copy keeps only the names declared in fields.yml
	// (by their name: attribute), then the explicit sets run.
	d.copy("clientRequestQuery", "clientRequestQuery", kindText, false)
	d.copy("RayID", "RayID", kindText, false)
	d.copy("EdgeColoCode", "EdgeColoCode", kindText, false)
	d.copy("EdgeResponseStatus", "EdgeResponseStatus", kindNumber, false)
	d.copy("ClientIPClass", "ClientIPClass", kindText, false)
	d.copy("OriginResponseStatus", "OriginResponseStatus", kindNumber, false)
	d.copy("OriginatorRayID", "OriginatorRayID", kindText, false)
	d.copy("Kind", "Kind", kindText, false)
	d.copy("ClientRefererHost", "ClientRefererHost", kindText, false)
	d.copy("ClientRefererPath", "ClientRefererPath", kindText, false)
	d.copy("ClientRefererQuery", "ClientRefererQuery", kindText, false)
	d.copy("ClientRefererScheme", "ClientRefererScheme", kindText, false)
	d.copy("source", "source", kindText, false) // a GraphQL-style record's own key
	d.copy("Source", "source", kindText, false)
	d.decode = decodeFirewallEvents
}

// decodeFirewallEvents maps a firewall_events record (mapping spec §3.2)
// with the fixes for source.as.number, rule.id and the custom fields lost
// through case mismatches.
func decodeFirewallEvents(b *builder) {
	b.mapIP(fSourceIP, b.v("ClientIP"))
	b.timestamp(fTimestamp, "Datetime", false)
	b.mapKey(fSourceASN, "ClientASN", kindNumber) // fix: the parser reads jjson_event
	b.mapKey(fSourceCountry, "ClientCountry", kindText)
	b.mapKey(fDestDomain, "ClientRequestHost", kindText)
	b.mapKey(fReqMethod, "ClientRequestMethod", kindText)
	b.mapKey(fHTTPVersion, "ClientRequestProtocol", kindText)
	b.mapKey(fURLDomain, "ClientRequestHost", kindText)
	b.mapKey(fURLPath, "ClientRequestPath", kindText)
	b.mapKey(fURLScheme, "ClientRequestScheme", kindText)
	b.mapKey(fURLQuery, "ClientRequestQuery", kindText)
	b.mapKey(fUAOriginal, "ClientRequestUserAgent", kindText)
	b.mapKey(fRespStatus, "EdgeResponseStatus", kindNumber)
	b.mapKey(fEventAction, "Action", kindText)
	b.mapKey(fRuleID, "RuleId", kindText)
	b.mapKey(fRuleID, "RuleID", kindText) // fix: Logpush spells it RuleID
	b.mapKey(fRuleDescription, "Description", kindText)
	b.mapKey(fRuleReference, "Ref", kindText)
	b.mapOr(fNetProtocol, b.ds.keys["clientRequestHTTPProtocol"], b.ds.keys["ClientRequestProtocol"], kindText)
	b.mapKey(fRuleRuleset, "rulesetId", kindText)
	b.mapKey(fReqBytes, "ClientRequestBytes", kindNumber)
	b.mapKey(fReqReferrer, "ClientRequestReferer", kindText)
	b.mapKey(fTLSCipher, "ClientSSLCipher", kindText)
	b.mapKey(fTLSVersionProtocol, "ClientSSLProtocol", kindText)
	b.mapKey(fSourcePort, "ClientSrcPort", kindNumber)
	b.setList(fEventCategory, "network")
	b.setText(fEventDataset, "firewall-events")
	b.setText(fObserverVendor, "Cloudflare")
	b.setText(fObserverType, "firewall")
	if a, ok := b.get(fEventAction); ok {
		if t, ok := firewallTypes[a]; ok {
			b.setList(fEventType, t)
		}
	}
	b.copies()
	// Fixes: the parser reads clientASNDescription, matchIndex and
	// metadata; Logpush sends ClientASNDescription, MatchIndex, Metadata.
	b.mapOr(fCFClientASNDescription, b.ds.keys["clientASNDescription"], b.ds.keys["ClientASNDescription"], kindText)
	if v := b.v("matchIndex"); present(v) {
		b.mapKey(fCFMatchIndex, "matchIndex", kindNumber)
	} else {
		b.mapKey(fCFMatchIndex, "MatchIndex", kindNumber)
	}
	if v := b.v("metadata"); present(v) {
		b.mapKey(fCFMetadata, "metadata", kindObject)
	} else {
		b.mapKey(fCFMetadata, "Metadata", kindObject)
	}
	if v := b.v("Source"); present(v) {
		if s, err := b.text(v, "Source"); err != nil {
			b.fail(err)
		} else {
			b.setText(fEventModule, b.join("cloudflare", s))
		}
	}
}

// dnsTypes is the IANA RR type table of the dns parsers.
var dnsTypes = map[int]string{
	1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
	11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 19: "X25",
	20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA",
	29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT",
	38: "A6", 39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY",
	46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA",
	53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS", 60: "CDNSKEY",
	61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF", 100: "UINFO",
	101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64", 107: "LP", 108: "EUI48",
	109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "*",
	256: "URI", 257: "CAA", 258: "AVC", 259: "DOA", 260: "AMTRELAY", 32768: "TA", 32769: "DLV",
}

// dnsRCodes is the IANA DNS RCODE table of the dns parsers.
var dnsRCodes = map[int]string{
	0: "NoError", 1: "FormErr", 2: "ServFail", 3: "NXDomain", 4: "NotImp", 5: "Refused", 6: "YXDomain",
	7: "YXRRSet", 8: "NXRRSet", 9: "NotAuth", 10: "NotZone", 11: "DSOTYPENI", 16: "BADVERS OR BADSIG",
	17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE",
}

// translate sets field id from table[v] when v is an integral number in
// the table (a translate action; Python looks up 1.0 like 1).
func (b *builder) translate(id uint16, v *jvalue, table map[int]string) {
	if v == nil || v.Type() != jNumber {
		return
	}
	f, err := v.float()
	if err != nil || f != float64(int(f)) {
		return
	}
	if s, ok := table[int(f)]; ok {
		b.setText(id, s)
	}
}

var dnsDS = newDataset("dns_logs")

func init() {
	for _, k := range []string{"Timestamp", "QueryName", "SourceIP", "QueryType", "ResponseCode", "ResponseCached"} {
		dnsDS.slot(k)
	}
	dnsDS.copy("ColoCode", "ColoCode", kindText, false)
	dnsDS.copy("EDNSSubnet", "EDNSSubnet", kindText, false)
	dnsDS.copy("EDNSSubnetLength", "EDNSSubnetLength", kindNumber, false)
	dnsDS.decode = decodeDNSLogs
}

// decodeDNSLogs maps a dns_logs record (mapping spec §3.3).
func decodeDNSLogs(b *builder) {
	b.timestamp(fTimestamp, "Timestamp", false)
	if v := b.v("QueryName"); !isEmpty(v) {
		if s, err := b.text(v, "QueryName"); err != nil {
			b.fail(err)
		} else if s = strings.Trim(s, "."); s != "" {
			b.setText(fDNSName, s)
		}
	} else if isEmptyString(v) {
		b.setEmpty(fDNSName)
	}
	b.setList(fEventCategory, "network")
	b.setList(fEventType, "info")
	b.setText(fEventDataset, "dns_logs")
	b.setText(fObserverVendor, "Cloudflare")
	b.setText(fObserverType, "dns")
	b.mapIP(fSourceIP, b.v("SourceIP"))
	b.translate(fDNSType, b.v("QueryType"), dnsTypes)
	b.translate(fDNSResponseCode, b.v("ResponseCode"), dnsRCodes)
	b.copies()
	// ResponseCached goes through "| string" and back to the declared bool
	// (addendum 4).
	switch v := b.v("ResponseCached"); {
	case v == nil || v.Type() == jNull:
	case v.Type() == jTrue || textIs(v, "True") || textIs(v, "true"):
		b.setBool(fCFResponseCached, true)
	case v.Type() == jFalse || textIs(v, "False") || textIs(v, "false"):
		b.setBool(fCFResponseCached, false)
	default:
		b.fail(b.set(fCFResponseCached, v, kindBool, "ResponseCached"))
	}
}

var gwDNSDS = newDataset("gateway_dns")

func init() {
	d := gwDNSDS
	for _, k := range []string{"DstIP", "Datetime", "DstPort", "DeviceID", "QueryName", "QueryTypeName", "ResolvedIPs",
		"DeviceName", "Protocol", "SrcPort", "Email", "UserID", "SrcIP", "QueryType", "RCode"} {
		d.slot(k)
	}
	d.copy("ApplicationID", "ApplicationID", kindNumber, false)
	d.copy("ColoCode", "ColoCode", kindText, false)
	d.copy("ColoID", "ColoID", kindNumber, false)
	d.copy("Location", "Location", kindText, false)
	d.copy("LocationID", "LocationID", kindText, false)
	d.copy("MatchedCategoryIDs", "MatchedCategoryIDs", kindObject, true)
	d.copy("MatchedCategoryNames", "MatchedCategoryNames", kindObject, true)
	d.copy("Policy", "Policy", kindText, false)
	d.copy("QueryCategoryIDs", "QueryCategoryIDs", kindObject, true)
	d.copy("QueryCategoryNames", "QueryCategoryNames", kindObject, true)
	d.copy("QueryNameReversed", "QueryNameReversed", kindText, false)
	d.copy("QuerySize", "QuerySize", kindNumber, false)
	d.copy("QueryType", "QueryType", kindText, false)
	d.copy("RData", "RData", kindObject, true)
	d.copy("ResolverDecision", "ResolverDecision", kindText, false)
	d.copy("TimeZone", "TimeZone", kindText, false)
	d.copy("TimeZoneInferredMethod", "TimeZoneInferredMethod", kindText, false)
	d.decode = decodeGatewayDNS
}

// decodeGatewayDNS maps a gateway_dns record (mapping spec §3.4).
func decodeGatewayDNS(b *builder) {
	b.mapIP(fDestIP, b.v("DstIP"))
	b.timestamp(fTimestamp, "Datetime", true)
	b.mapKey(fDestPort, "DstPort", kindNumber)
	b.mapKey(fDeviceID, "DeviceID", kindText)
	b.mapKey(fDNSName, "QueryName", kindText)
	b.mapKey(fDNSType, "QueryTypeName", kindText)
	// dns.resolved_ip: the valid IPs of ResolvedIPs, [] included.
	i := b.put(fDNSResolvedIP, kList, "")
	if v := b.v("ResolvedIPs"); v != nil && v.Type() == jArray {
		for e := b.jp.child(v); e != nil; e = b.jp.next(v, e) {
			if s, ok := b.ipText(e); ok {
				b.ev.ents = append(b.ev.ents, entry{text: s, parent: int32(i), end: int32(len(b.ev.ents) + 1), kind: kStr})
			}
		}
	}
	b.ev.ents[i].end = int32(len(b.ev.ents))
	b.setList(fEventCategory, "network")
	b.setText(fEventDataset, "gateway_dns")
	b.setList(fEventType, "info")
	b.mapKey(fHostHostname, "DeviceName", kindText)
	b.setText(fNetProtocol, "dns")
	b.mapKey(fNetTransport, "Protocol", kindText)
	b.setText(fObserverType, "dns")
	b.setText(fObserverVendor, "Cloudflare")
	b.mapKey(fSourcePort, "SrcPort", kindNumber)
	b.mapKey(fUserEmail, "Email", kindText)
	b.mapKey(fUserID, "UserID", kindText)
	b.mapIP(fSourceIP, b.v("SrcIP"))
	if !present(b.v("QueryTypeName")) {
		b.translate(fDNSType, b.v("QueryType"), dnsTypes)
	}
	b.translate(fDNSResponseCode, b.v("RCode"), dnsRCodes)
	b.copies()
}

var gwHTTPDS = newDataset("gateway_http")

func init() {
	d := gwHTTPDS
	for _, k := range []string{"Datetime", "AccountID", "HTTPHost", "DestinationPort", "DeviceID", "Action",
		"DestinationIP", "BlockedFileHash", "BlockedFileName", "BlockedFileSize", "BlockedFileType", "DeviceName",
		"HTTPMethod", "Referer", "HTTPStatusCode", "HTTPVersion", "SourceIP", "SourcePort", "UserAgent", "UserID",
		"Email", "URL", "FileInfo", "InternalSourceIP", "SourceInternalIP"} {
		d.slot(k)
	}
	d.copy("BlockedFileReason", "BlockedFileReason", kindText, false)
	d.copy("DownloadedFileNames", "DownloadedFileNames", kindObject, false)
	d.copy("IsIsolated", "IsIsolated", kindBool, false)
	d.copy("PolicyID", "PolicyID", kindText, false)
	d.copy("PolicyName", "PolicyName", kindText, false)
	d.copy("RequestID", "RequestID", kindText, false)
	d.copy("UntrustedCertificateAction", "UntrustedCertificateAction", kindText, false)
	d.copy("UploadedFileNames", "UploadedFileNames", kindObject, true)
	d.decode = decodeGatewayHTTP
}

// decodeGatewayHTTP maps a gateway_http record (mapping spec §3.5) with the
// user_agent and InternalSourceIP fixes.
func decodeGatewayHTTP(b *builder) {
	b.timestamp(fTimestamp, "Datetime", true)
	b.mapKey(fCloudAccountID, "AccountID", kindText)
	b.mapKey(fDestDomain, "HTTPHost", kindText)
	b.mapKey(fDestPort, "DestinationPort", kindNumber)
	b.mapKey(fDeviceID, "DeviceID", kindText)
	b.mapKey(fEventAction, "Action", kindText)
	b.setList(fEventCategory, "network")
	b.setText(fEventDataset, "gateway_http")
	b.setList(fEventType, "info")
	b.mapIP(fDestIP, b.v("DestinationIP"))
	switch a := b.v("Action"); {
	case textIs(a, "allow"):
		b.setList(fEventType, "info", "allowed")
	case textIs(a, "deny"):
		b.setList(fEventType, "denied")
	}
	if v := b.v("BlockedFileHash"); v != nil && v.Type() == jString {
		if utf8.RuneCountInString(v.s) == 64 {
			b.setText(fFileHash, b.own(v))
		}
	}
	b.mapKey(fFileName, "BlockedFileName", kindText)
	b.mapKey(fFileSize, "BlockedFileSize", kindNumber)
	b.mapKey(fFileType, "BlockedFileType", kindText)
	b.mapKey(fHostHostname, "DeviceName", kindText)
	b.mapKey(fReqMethod, "HTTPMethod", kindText)
	b.mapKey(fReqReferrer, "Referer", kindText)
	b.mapKey(fRespStatus, "HTTPStatusCode", kindNumber)
	b.mapKey(fHTTPVersion, "HTTPVersion", kindText)
	b.setText(fNetProtocol, "http")
	b.setText(fObserverType, "proxy")
	b.setText(fObserverVendor, "Cloudflare")
	b.mapIP(fSourceIP, b.v("SourceIP"))
	b.mapKey(fSourcePort, "SourcePort", kindNumber)
	b.mapKey(fUAOriginal, "UserAgent", kindText) // fix: the parser reads json_event.UserAgent
	b.mapKey(fUserID, "UserID", kindText)
	b.mapKey(fUserEmail, "Email", kindText)
	b.mapKey(fURLOriginal, "URL", kindText)
	b.copies()
	if files := b.sub(b.v("FileInfo"), "files"); !isEmptyList(files) {
		b.fail(b.set(fCFFileList, files, kindObject, "FileInfo.files"))
	}
	b.internalSourceIP()
}

// internalSourceIP sets cloudflare.InternalSourceIP, which the gateway
// parsers read from InternalSourceIP while Logpush sends SourceInternalIP.
func (b *builder) internalSourceIP() {
	id := fCFInternalSourceIP
	if present(b.v("InternalSourceIP")) {
		b.mapKey(id, "InternalSourceIP", kindText)
		return
	}
	b.mapKey(id, "SourceInternalIP", kindText) // fix
}

func isEmptyList(v *jvalue) bool {
	if v == nil || v.Type() != jArray {
		return v == nil
	}
	return v.n == 0
}

var gwNetDS = newDataset("gateway_network")

func init() {
	d := gwNetDS
	for _, k := range []string{"Datetime", "AccountID", "SNI", "DestinationIP", "DestinationPort", "DeviceID",
		"Action", "DeviceName", "Transport", "Email", "UserID", "SourceIP", "SourcePort",
		"InternalSourceIP", "SourceInternalIP"} {
		d.slot(k)
	}
	d.copy("OverrideIP", "OverrideIP", kindText, false)
	d.copy("OverridePort", "OverridePort", kindNumber, false)
	d.copy("PolicyID", "PolicyID", kindText, false)
	d.copy("PolicyName", "PolicyName", kindText, false)
	d.copy("SessionID", "SessionID", kindText, false)
	d.decode = decodeGatewayNetwork
}

// decodeGatewayNetwork maps a gateway_network record (mapping spec §3.6)
// with the InternalSourceIP fix.
func decodeGatewayNetwork(b *builder) {
	b.timestamp(fTimestamp, "Datetime", true)
	b.mapKey(fCloudAccountID, "AccountID", kindText)
	b.mapKey(fDestDomain, "SNI", kindText)
	if b.mapIP(fDestIP, b.v("DestinationIP")) {
		b.mapIP(fDestAddress, b.v("DestinationIP"))
	}
	b.mapKey(fDestPort, "DestinationPort", kindNumber)
	b.mapKey(fDeviceID, "DeviceID", kindText)
	b.mapKey(fEventAction, "Action", kindText)
	b.setList(fEventCategory, "network")
	b.setText(fEventDataset, "gateway_network")
	b.mapKey(fHostHostname, "DeviceName", kindText)
	b.setText(fObserverType, "proxy")
	b.setText(fObserverVendor, "Cloudflare")
	if textIs(b.v("Action"), "allowedOnNoRuleMatch") {
		b.setList(fEventType, "allowed")
	} else {
		b.setList(fEventType, "info")
	}
	b.mapKey(fNetTransport, "Transport", kindText)
	b.mapKey(fUserEmail, "Email", kindText)
	b.mapKey(fUserID, "UserID", kindText)
	b.mapIP(fSourceIP, b.v("SourceIP"))
	b.mapKey(fSourcePort, "SourcePort", kindNumber)
	b.mapKey(fTLSServerName, "SNI", kindText)
	b.copies()
	b.internalSourceIP()
}

var accessDS = newDataset("access_requests")

func init() {
	d := accessDS
	for _, k := range []string{"CreatedAt", "ActionType", "ActionResult", "Allowed", "IPAddress", "Action",
		"AppDomain", "Email", "ActorEmail", "UserUID", "ActorIP"} {
		d.slot(k)
	}
	d.copy("AppUUID", "AppUUID", kindText, false)
	d.copy("Connection", "Connection", kindText, false)
	d.copy("PurposeJustificationPrompt", "PurposeJustificationPrompt", kindText, false)
	d.copy("PurposeJustificationResponse", "PurposeJustificationResponse", kindText, false)
	d.copy("RayID", "RayID", kindText, false)
	d.copy("TemporaryAccessApprovers", "TemporaryAccessApprovers", kindObject, true)
	d.copy("TemporaryAccessDuration", "TemporaryAccessDuration", kindNumber, false)
	d.decode = decodeAccessRequests
}

// decodeAccessRequests maps an access_requests record (mapping spec §3.7).
func decodeAccessRequests(b *builder) {
	b.timestamp(fTimestamp, "CreatedAt", true)
	b.mapKey(fEventAction, "ActionType", kindText)
	if v := b.v("ActionResult"); present(v) {
		if truthy(v) {
			b.setText(fEventOutcome, "success")
		} else {
			b.setText(fEventOutcome, "failed")
		}
	}
	allowed := b.v("Allowed")
	if present(allowed) {
		if truthy(allowed) {
			b.setText(fEventOutcome, "success")
		} else {
			b.setText(fEventOutcome, "denied")
		}
	}
	b.mapIP(fClientIP, b.v("IPAddress"))
	b.setList(fEventCategory, "network", "authentication")
	b.setText(fEventDataset, "access_requests")
	b.setList(fEventType, "info")
	b.setText(fObserverType, "proxy")
	b.setText(fObserverVendor, "Cloudflare")
	action := b.v("Action")
	if textIs(action, "login") && allowed != nil && allowed.Type() == jTrue {
		b.setList(fEventType, "connection", "start")
	}
	if textIs(action, "logout") {
		b.setList(fEventType, "connection", "end")
	}
	if allowed != nil && allowed.Type() == jFalse {
		b.setList(fEventType, "connection", "denied")
	}
	b.mapKey(fURLDomain, "AppDomain", kindText)
	b.mapOr(fUserEmail, b.ds.keys["Email"], b.ds.keys["ActorEmail"], kindText)
	b.mapKey(fUserID, "UserUID", kindText)
	b.mapIP(fSourceIP, b.v("ActorIP"))
	b.mapIP(fSourceIP, b.v("IPAddress"))
	b.copies()
}

var auditDS = newDataset("audit_logs")

func init() {
	d := auditDS
	for _, k := range []string{"When", "OwnerID", "ActionType", "ActorEmail", "ActorID", "ActorIP", "Metadata"} {
		d.slot(k)
	}
	d.copy("ActionResult", "ActionResult", kindBool, false)
	d.copy("ActorType", "ActorType", kindText, false)
	d.copy("ID", "ID", kindText, false)
	d.copy("Interface", "Interface", kindText, false)
	d.copy("ResourceID", "ResourceID", kindText, false)
	d.copy("ResourceType", "ResourceType", kindText, false)
	d.decode = decodeAuditLogs
}

// decodeAuditLogs maps an audit_logs record (mapping spec §3.8).
func decodeAuditLogs(b *builder) {
	b.timestamp(fTimestamp, "When", true)
	b.mapKey(fCloudAccountID, "OwnerID", kindText)
	b.mapKey(fEventAction, "ActionType", kindText)
	b.setList(fEventCategory, "network")
	b.setText(fEventDataset, "audit_logs")
	b.setList(fEventType, "access")
	b.setText(fObserverType, "proxy")
	b.setText(fObserverVendor, "Cloudflare")
	b.mapKey(fUserEmail, "ActorEmail", kindText)
	b.mapKey(fUserID, "ActorID", kindText)
	ip := b.v("ActorIP")
	b.mapIP(fSourceIP, ip)
	// grok "::ffff:%{IP:ipv4}": an IPv4-mapped address becomes the IPv4.
	if ip != nil && ip.Type() == jString {
		if rest, ok := strings.CutPrefix(ip.s, "::ffff:"); ok && isIP(rest) {
			b.setText(fSourceIP, b.str(rest))
		}
	}
	b.copies()
	md := b.v("Metadata")
	req := b.sub(md, "Request")
	b.fail(b.set(fCFZoneTag, b.sub(md, "zone_tag"), kindText, "Metadata.zone_tag"))
	b.fail(b.set(fCFRequestClientDefault, b.sub(req, "client_default"), kindBool, "Metadata.Request.client_default"))
	b.fail(b.set(fCFRequestName, b.sub(req, "name"), kindText, "Metadata.Request.name"))
	b.fail(b.set(fCFRequestNetworks, b.sub(req, "networks"), kindObject, "Metadata.Request.networks"))
	b.fail(b.set(fCFZoneName, b.sub(md, "zone_name"), kindText, "Metadata.zone_name"))
}

// datasetsByName are the decoders by Logpush dataset id.
var datasetsByName = map[string]*dataset{
	"http_requests":   httpDS,
	"firewall_events": fwDS,
	"dns_logs":        dnsDS,
	"gateway_dns":     gwDNSDS,
	"gateway_http":    gwHTTPDS,
	"gateway_network": gwNetDS,
	"access_requests": accessDS,
	"audit_logs":      auditDS,
}
