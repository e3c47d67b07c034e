package normalize

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/valyala/fastjson"
)

// Datasets lists the Logpush dataset ids [Normalizer.Normalize] decodes.
var Datasets = []string{
	"http_requests",
	"firewall_events",
	"dns_logs",
	"gateway_dns",
	"gateway_http",
	"gateway_network",
	"access_requests",
	"audit_logs",
}

var (
	// ErrUnsupportedDataset is wrapped by the error for a dataset listed in
	// [Datasets] whose decoder is not written. Every listed dataset has a
	// decoder now; the error is kept for callers that test for it.
	ErrUnsupportedDataset = errors.New("unsupported dataset")
	// ErrUnknownDataset is wrapped by the error for a dataset name that is
	// not in [Datasets], and for a record whose dataset "auto" cannot tell.
	ErrUnknownDataset = errors.New("unknown dataset")
)

// DefaultMaxRecordBytes is the record size limit used when
// [Options.MaxRecordBytes] is 0.
const DefaultMaxRecordBytes = 4 << 20

// DefaultUserAgentCacheSize is the number of parsed user-agents kept when
// [Options.UserAgentCacheSize] is 0.
const DefaultUserAgentCacheSize = 4096

// Options configures a [Normalizer].
type Options struct {
	// MaxRecordBytes is the largest record Normalize accepts; 0 means
	// [DefaultMaxRecordBytes].
	MaxRecordBytes int
	// UserAgentCacheSize bounds the cache of parsed user-agent strings; 0
	// means [DefaultUserAgentCacheSize].
	UserAgentCacheSize int
}

// Normalizer decodes Logpush records into [Event]s. It is safe for concurrent
// use by multiple goroutines.
type Normalizer struct {
	maxRecord int
	builders  sync.Pool // of *builder, each with its own parser
	ua        *uaCache
}

// New returns a Normalizer configured by opts. The first New of a process
// compiles the user-agent parser's regular expressions (uap-core: about
// 0.15 s and 340,000 allocations), so that the first records do not wait
// for them.
func New(opts Options) *Normalizer {
	uapParser()
	n := &Normalizer{maxRecord: opts.MaxRecordBytes}
	if n.maxRecord <= 0 {
		n.maxRecord = DefaultMaxRecordBytes
	}
	size := opts.UserAgentCacheSize
	if size <= 0 {
		size = DefaultUserAgentCacheSize
	}
	n.ua = newUACache(size)
	return n
}

// Normalize decodes one record, a single JSON object, as the Logpush dataset
// named by dataset, or guesses the dataset from the field names when dataset
// is "auto" or "". raw is not retained; the returned Event shares no memory
// with it.
//
// The error names what is wrong with the record as a whole: an unknown
// dataset ([ErrUnknownDataset]), a record over the size limit, text that is
// not JSON, or JSON that is not an object. A field whose value has the
// wrong type or format costs that field only: it is left out, the rest is
// normalized, and [Event.FieldErrors] says which and why.
func (n *Normalizer) Normalize(dataset string, raw []byte) (*Event, error) {
	ev := &Event{
		ents:  make([]entry, 0, min(len(raw)/12+24, 512)),
		arena: make([]byte, 0, len(raw)+arenaSlack),
	}
	if err := n.NormalizeInto(ev, dataset, raw); err != nil {
		return nil, err
	}
	return ev, nil
}

// NormalizeInto is [Normalizer.Normalize] into an Event the caller owns,
// reusing its memory: a loop that normalizes into one Event allocates about
// once per record. Whatever the Event handed out before (strings, Doc,
// FlatMap) stays valid and unchanged; the Event itself is rewritten, so it
// must not be read while NormalizeInto runs. After an error the Event holds
// no meaningful fields.
func (n *Normalizer) NormalizeInto(ev *Event, name string, raw []byte) error {
	ev.reset()
	var ds *dataset
	if name != "" && name != "auto" {
		var err error
		if ds, err = lookupDataset(name); err != nil {
			return err
		}
	}
	if len(raw) > n.maxRecord {
		return fmt.Errorf("record is %d bytes, over the limit of %d", len(raw), n.maxRecord)
	}
	b, _ := n.builders.Get().(*builder)
	if b == nil {
		b = &builder{jp: &jparser{}}
	}
	defer n.builders.Put(b)

	v, err := b.jp.parse(raw)
	if err != nil {
		return fmt.Errorf("not JSON: %w", jsonError(raw, err))
	}
	if v.t != jObject {
		return fmt.Errorf("not a JSON object: got %s", typeName(v))
	}
	if ds == nil {
		if ds = datasetsByName[detect(b.jp, v)]; ds == nil {
			return fmt.Errorf("cannot tell the dataset from the field names: %w", ErrUnknownDataset)
		}
	}

	b.ev, b.ds, b.err, b.ua = ev, ds, nil, n.ua
	if cap(ev.arena)-len(ev.arena) < len(raw)+arenaSlack {
		ev.arena = make([]byte, 0, max(arenaChunk, len(raw)+arenaSlack))
	}
	b.arena, b.textsAt, b.start = ev.arena, len(ev.arena), len(ev.arena)
	b.vals = slices.Grow(b.vals[:0], len(ds.names))[:len(ds.names)]
	clear(b.vals)
	for c := b.jp.child(v); c != nil; c = b.jp.next(v, c) {
		if s, ok := ds.lookup(c.key); ok {
			b.vals[s] = c
		}
	}
	ev.Dataset = ds.name
	ds.decode(b)
	if b.err == nil {
		b.finish()
	}
	if b.err == nil && ev.Key == "" {
		ev.Key = b.recordKey(raw)
	}
	if b.err == nil {
		b.coverTexts()
	}
	ev.arena, ev.recStart = b.arena, b.start
	err = b.err
	clear(b.vals)
	b.ev, b.ds, b.err, b.arena = nil, nil, nil, nil
	if err != nil {
		ev.reset()
		ev.Reuse() // nothing of the record was handed out
		return err
	}
	return nil
}

// Reuse tells the next [Normalizer.NormalizeInto] on e that nothing handed
// out for the record e holds (strings from String, Each, Range or Texts,
// Key, Doc, FlatMap) is in use any more, so that it may write the next
// record's strings over this record's: a loop that calls Reuse after each
// record it keeps nothing of does not allocate. What was handed out for
// earlier records is not affected. e may still be read until the next
// NormalizeInto. Reuse is not safe for concurrent use with readers of e.
func (e *Event) Reuse() { e.arena = e.arena[:e.recStart] }

// jsonError returns fastjson's error for the text raw that jparser
// rejected with err: the two accept the same language, and fastjson's
// messages are the ones users and the golden files know.
func jsonError(raw []byte, err error) error {
	var p fastjson.Parser
	if _, ferr := p.ParseBytes(raw); ferr != nil {
		return ferr
	}
	return err
}

// arenaChunk is the size of the arena chunks NormalizeInto allocates for
// the strings of the records it decodes into one Event. A chunk is only
// appended to, never rewritten, so strings handed out stay valid; a string
// kept keeps its chunk alive.
const arenaChunk = 8 << 10

// arenaSlack is the room NormalizeInto makes in the arena beyond the
// record's length, so that the record's strings (its values, at most as
// long as the record, and the few the decoders add) stay in one piece:
// see [Event.Texts].
const arenaSlack = 512

// reset empties ev for reuse.
func (ev *Event) reset() {
	if len(ev.index) != len(fieldNames) {
		ev.index = make([]int32, len(fieldNames))
	} else {
		for i := range ev.ents {
			ev.index[ev.ents[i].id] = 0
		}
	}
	ev.ents = ev.ents[:0]
	ev.doc.Store(nil)
	ev.Dataset, ev.Time, ev.Key = "", time.Time{}, ""
	ev.fieldErrs = nil // handed out: never reused
	ev.texts = nil
}

func lookupDataset(name string) (*dataset, error) {
	if ds, ok := datasetsByName[name]; ok {
		return ds, nil
	}
	return nil, fmt.Errorf("dataset %q: %w", name, ErrUnknownDataset)
}

// detect guesses the dataset of a record from its field names, following
// logpush.md §2.9: the Zero Trust and account datasets by their own fields,
// then firewall_events by Datetime (which http_requests does not have), then
// http_requests. It returns "" when nothing fits.
func detect(p *jparser, o *jvalue) string {
	if o == nil || o.t != jObject {
		return ""
	}
	// One pass over the record's keys marks which fingerprint keys it
	// has; the cases below then test bit sets, in the order of precedence.
	var seen uint64
	for c := p.child(o); c != nil; c = p.next(o, c) {
		seen |= fingerprintBits.bit(c.key)
	}
	for _, fp := range fingerprints {
		if seen&fp.a != 0 && seen&fp.b != 0 {
			return fp.dataset
		}
	}
	return ""
}

// fingerprint recognises a dataset by two key sets: a record of the
// dataset has at least one key of each.
type fingerprint struct {
	dataset string
	a, b    uint64
}

var fingerprintKeys = map[string]uint64{}

// fingerprints are tried in order; the first that holds names the dataset.
var fingerprints = func() []fingerprint {
	bitsOf := func(keys ...string) uint64 {
		var m uint64
		for _, k := range keys {
			bit, ok := fingerprintKeys[k]
			if !ok {
				bit = 1 << len(fingerprintKeys)
				fingerprintKeys[k] = bit
			}
			m |= bit
		}
		return m
	}
	fp := func(dataset string, a, b []string) fingerprint {
		return fingerprint{dataset, bitsOf(a...), bitsOf(b...)}
	}
	all := []string{"EdgeStartTimestamp", "EdgeEndTimestamp", "EdgeResponseStatus", "EdgeResponseBytes", "ClientRequestURI",
		"CacheCacheStatus", "EdgePathingOp", "OriginResponseStatus", "WAFProfile", "WorkerStatus", "WorkerSubrequest",
		"ClientRequestHost", "RayID", "ClientIP", "ZoneName", "clientRequestHTTPHost", "rayName"}
	out := []fingerprint{
		fp("gateway_dns", []string{"QueryName", "QueryType"}, []string{"PolicyID", "QueryNameReversed", "ResolvedIPs", "ResolverDecision", "QueryTypeName", "RCode", "DstIP", "SrcIP"}),
		fp("dns_logs", []string{"QueryName", "QueryType"}, []string{"ResponseCode", "Timestamp", "ResponseCached", "EDNSSubnet"}),
		fp("gateway_http", []string{"HTTPHost", "URL", "HTTPMethod", "HTTPVersion", "BlockedFileHash"}, []string{"Datetime", "Action", "AccountID"}),
		fp("gateway_network", []string{"SessionID", "Transport", "SNI", "OverridePort"}, []string{"DestinationIP", "SourceIP", "Datetime"}),
		fp("audit_logs", []string{"ActionType", "ActorEmail", "ActorIP", "When"}, []string{"ResourceType", "ActorType", "When", "OwnerID", "ActionResult"}),
		fp("access_requests", []string{"AppUUID", "AppDomain", "CreatedAt", "UserUID", "IPAddress"}, []string{"Action", "Allowed", "Connection"}),
		fp("firewall_events", []string{"Datetime"}, []string{"ClientIP", "ClientRequestHost", "RayID", "Kind", "Source", "RuleID", "MatchIndex"}),
		fp("http_requests", all, all),
	}
	if len(fingerprintKeys) > 64 {
		panic("normalize: more than 64 fingerprint keys")
	}
	for k, bit := range fingerprintKeys {
		fingerprintBits.add(k, bit)
	}
	return out
}()

// fingerprintBits finds the bit of a fingerprint key faster than the map:
// records have dozens of keys, and most are not fingerprint keys.
var fingerprintBits keyBits

// keyBits is an open-addressing table of strings with a hash that looks at
// the length and the first and last bytes only.
type keyBits struct {
	slots [256]struct {
		key string
		bit uint64
	}
}

func keyBitsHash(k string) uint8 {
	return uint8(len(k)*31 + int(k[0])*7 + int(k[len(k)-1]))
}

func (t *keyBits) add(k string, bit uint64) {
	for h := keyBitsHash(k); ; h++ {
		if t.slots[h].key == "" {
			t.slots[h].key, t.slots[h].bit = k, bit
			return
		}
	}
}

// bit returns the bit of key k, or 0.
func (t *keyBits) bit(k string) uint64 {
	if k == "" {
		return 0
	}
	for h := keyBitsHash(k); t.slots[h].key != ""; h++ {
		if t.slots[h].key == k {
			return t.slots[h].bit
		}
	}
	return 0
}

// recordKey returns the de-duplication key of a record without a usable id:
// the first 32 hex digits of the SHA-256 of the record trimmed of white space.
func (b *builder) recordKey(raw []byte) string {
	sum := sha256.Sum256(trimSpace(raw))
	var buf [32]byte
	hex.Encode(buf[:], sum[:16])
	return b.strBytes(buf[:])
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
