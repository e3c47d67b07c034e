package normalize

// Every field name the decoders set at top level has a small static id, so
// that an Event finds a field with one map lookup and an array index, and a
// decoder sets one without hashing its name.
var (
	fieldNames = []string{""} // by id; id 0 is unused
	fieldIDs   = map[string]uint16{}
)

// fid returns the static id of the dotted field name, registering it.
func fid(name string) uint16 {
	if id, ok := fieldIDs[name]; ok {
		return id
	}
	id := uint16(len(fieldNames))
	fieldNames = append(fieldNames, name)
	fieldIDs[name] = id
	return id
}

// ECS fields.
var (
	fTimestamp          = fid("@timestamp")
	fClientAddress      = fid("client.address")
	fClientIP           = fid("client.ip")
	fCloudAccountID     = fid("cloud.account.id")
	fDestAddress        = fid("destination.address")
	fDestDomain         = fid("destination.domain")
	fDestIP             = fid("destination.ip")
	fDestPort           = fid("destination.port")
	fDestRegistered     = fid("destination.registered_domain")
	fDestSubdomain      = fid("destination.subdomain")
	fDestTLD            = fid("destination.top_level_domain")
	fDeviceID           = fid("device.id")
	fDNSName            = fid("dns.question.name")
	fDNSRegistered      = fid("dns.question.registered_domain")
	fDNSSubdomain       = fid("dns.question.subdomain")
	fDNSTLD             = fid("dns.question.top_level_domain")
	fDNSType            = fid("dns.question.type")
	fDNSResolvedIP      = fid("dns.resolved_ip")
	fDNSResponseCode    = fid("dns.response_code")
	fEventAction        = fid("event.action")
	fEventCategory      = fid("event.category")
	fEventDataset       = fid("event.dataset")
	fEventEnd           = fid("event.end")
	fEventModule        = fid("event.module")
	fEventOutcome       = fid("event.outcome")
	fEventStart         = fid("event.start")
	fEventType          = fid("event.type")
	fFileHash           = fid("file.hash.sha256")
	fFileName           = fid("file.name")
	fFileSize           = fid("file.size")
	fFileType           = fid("file.type")
	fHostHostname       = fid("host.hostname")
	fHostName           = fid("host.name")
	fReqBytes           = fid("http.request.bytes")
	fReqMethod          = fid("http.request.method")
	fReqReferrer        = fid("http.request.referrer")
	fRespBytes          = fid("http.response.bytes")
	fRespStatus         = fid("http.response.status_code")
	fHTTPVersion        = fid("http.version")
	fNetProtocol        = fid("network.protocol")
	fNetTransport       = fid("network.transport")
	fObserverType       = fid("observer.type")
	fObserverVendor     = fid("observer.vendor")
	fRelatedHash        = fid("related.hash")
	fRelatedHosts       = fid("related.hosts")
	fRelatedIP          = fid("related.ip")
	fRuleDescription    = fid("rule.description")
	fRuleID             = fid("rule.id")
	fRuleReference      = fid("rule.reference")
	fRuleRuleset        = fid("rule.ruleset")
	fSourceAddress      = fid("source.address")
	fSourceASN          = fid("source.as.number")
	fSourceCountry      = fid("source.geo.country_name")
	fSourceIP           = fid("source.ip")
	fSourcePort         = fid("source.port")
	fTLSCipher          = fid("tls.cipher")
	fTLSServerName      = fid("tls.client.server_name")
	fTLSVersionProtocol = fid("tls.version_protocol")
	fURLDomain          = fid("url.domain")
	fURLFull            = fid("url.full")
	fURLOriginal        = fid("url.original")
	fURLPath            = fid("url.path")
	fURLPort            = fid("url.port")
	fURLQuery           = fid("url.query")
	fURLRegistered      = fid("url.registered_domain")
	fURLScheme          = fid("url.scheme")
	fURLSubdomain       = fid("url.subdomain")
	fURLTLD             = fid("url.top_level_domain")
	fUAOriginal         = fid("user_agent.original")
	fUAName             = fid("user_agent.name")
	fUAVersion          = fid("user_agent.version")
	fUAOSName           = fid("user_agent.os.name")
	fUAOSVersion        = fid("user_agent.os.version")
	fUADeviceName       = fid("user_agent.device.name")
	fUserEmail          = fid("user.email")
	fUserID             = fid("user.id")
)

// dataset describes one Logpush dataset: the record keys its decoder reads
// and how.
type dataset struct {
	name  string
	keys  map[string]int // record key → slot
	names []string       // slot → record key
	// table finds the slot of a record key faster than keys does: open
	// addressing on keyHash, holding slot+1, at most a quarter full.
	table []uint16
	// copies are the cloudflare.* fields taken from a record key.
	copies []copyField
	decode func(b *builder)
}

// copyField copies the record key in slot to the custom field id.
type copyField struct {
	slot    int
	id      uint16
	kind    fieldKind
	noEmpty bool // skip an empty list (the parsers' "!= []" filters)
}

func newDataset(name string) *dataset {
	return &dataset{name: name, keys: map[string]int{}}
}

// slot returns the slot of record key, registering it.
func (d *dataset) slot(key string) int {
	if s, ok := d.keys[key]; ok {
		return s
	}
	s := len(d.names)
	d.names = append(d.names, key)
	d.keys[key] = s
	if 4*len(d.names) > len(d.table) {
		d.table = make([]uint16, max(64, 2*len(d.table)))
		for s, k := range d.names {
			d.insert(k, s)
		}
	} else {
		d.insert(key, s)
	}
	return s
}

func (d *dataset) insert(key string, s int) {
	mask := uint32(len(d.table) - 1)
	i := keyHash(key) & mask
	for d.table[i] != 0 {
		i = (i + 1) & mask
	}
	d.table[i] = uint16(s + 1)
}

// lookup returns the slot of record key.
func (d *dataset) lookup(key string) (int, bool) {
	mask := uint32(len(d.table) - 1)
	for i := keyHash(key) & mask; ; i = (i + 1) & mask {
		s := d.table[i]
		if s == 0 {
			return 0, false
		}
		if d.names[s-1] == key {
			return int(s - 1), true
		}
	}
}

// keyHash hashes a record key from its length and three of its bytes,
// which tell Logpush's field names apart well enough.
func keyHash(k string) uint32 {
	h := uint32(len(k))
	if n := len(k); n > 0 {
		h |= uint32(k[0])<<8 | uint32(k[n-1])<<16 | uint32(k[n/2])<<24
	}
	h *= 0x9E3779B1
	return h ^ h>>16
}

// copy declares that record key is copied to cloudflare.<name>.
func (d *dataset) copy(key, name string, kind fieldKind, noEmpty bool) {
	d.copies = append(d.copies, copyField{slot: d.slot(key), id: fid("cloudflare." + name), kind: kind, noEmpty: noEmpty})
}

// v returns the record's value of key, or nil.
func (b *builder) v(key string) *jvalue {
	s, ok := b.ds.lookup(key)
	if !ok {
		panic("normalize: " + b.ds.name + " does not read key " + key)
	}
	return b.vals[s]
}
