package normalize

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/valyala/fastjson"
)

// Datasets lists the Logpush dataset ids [Normalizer.Normalize] knows by
// name. Only "http_requests" is decoded so far; the others are recognised and
// rejected with [ErrUnsupportedDataset].
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
	// [Datasets] whose decoder is not written yet.
	ErrUnsupportedDataset = errors.New("unsupported dataset")
	// ErrUnknownDataset is wrapped by the error for a dataset name that is
	// not in [Datasets], and for a record whose dataset "auto" cannot tell.
	ErrUnknownDataset = errors.New("unknown dataset")
)

// DefaultMaxRecordBytes is the record size limit used when
// [Options.MaxRecordBytes] is 0.
const DefaultMaxRecordBytes = 4 << 20

// Options configures a [Normalizer].
type Options struct {
	// MaxRecordBytes is the largest record Normalize accepts; 0 means
	// [DefaultMaxRecordBytes].
	MaxRecordBytes int
}

// Normalizer decodes Logpush records into [Event]s. It is safe for concurrent
// use by multiple goroutines.
type Normalizer struct {
	maxRecord int
	parsers   fastjson.ParserPool
}

// New returns a Normalizer configured by opts.
func New(opts Options) *Normalizer {
	n := &Normalizer{maxRecord: opts.MaxRecordBytes}
	if n.maxRecord <= 0 {
		n.maxRecord = DefaultMaxRecordBytes
	}
	return n
}

// Normalize decodes one record, a single JSON object, as the Logpush dataset
// named by dataset, or guesses the dataset from the field names when dataset
// is "auto" or "". raw is not retained; the returned Event shares no memory
// with it.
//
// The error names what is wrong: an unknown ([ErrUnknownDataset]) or not yet
// supported ([ErrUnsupportedDataset]) dataset, a record over the size limit,
// text that is not JSON, JSON that is not an object, or the field whose value
// has the wrong type.
func (n *Normalizer) Normalize(dataset string, raw []byte) (*Event, error) {
	auto := dataset == "" || dataset == "auto"
	if !auto {
		if err := checkDataset(dataset); err != nil {
			return nil, err
		}
	}
	if len(raw) > n.maxRecord {
		return nil, fmt.Errorf("record is %d bytes, over the limit of %d", len(raw), n.maxRecord)
	}
	p := n.parsers.Get()
	defer n.parsers.Put(p)
	v, err := p.ParseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	obj, err := v.Object()
	if err != nil {
		return nil, fmt.Errorf("not a JSON object: got %s", typeName(v))
	}
	if auto {
		dataset = detect(obj)
		if dataset == "" {
			return nil, fmt.Errorf("cannot tell the dataset from the field names: %w", ErrUnknownDataset)
		}
		if err := checkDataset(dataset); err != nil {
			return nil, fmt.Errorf("detected %w", err)
		}
	}
	// Only http_requests gets past checkDataset for now.
	return decodeHTTPRequests(obj, raw)
}

func checkDataset(dataset string) error {
	switch {
	case dataset == "http_requests":
		return nil
	case slices.Contains(Datasets, dataset):
		return fmt.Errorf("dataset %q: %w", dataset, ErrUnsupportedDataset)
	}
	return fmt.Errorf("dataset %q: %w", dataset, ErrUnknownDataset)
}

// detect guesses the dataset of a record from its field names, following
// logpush.md §2.9. It returns "" when nothing fits. A firewall_events record
// with only the fields common to both datasets (RayID, ClientRequestHost,
// Datetime, Action, ...) is taken for http_requests: configure the dataset
// per feed when a job sends such records.
func detect(o *fastjson.Object) string {
	has := func(keys ...string) bool {
		for _, k := range keys {
			if o.Get(k) != nil {
				return true
			}
		}
		return false
	}
	switch {
	case has("Datetime") && has("Kind", "Source", "RuleID", "MatchIndex"):
		return "firewall_events"
	case has("EdgeStartTimestamp", "EdgeEndTimestamp", "EdgeResponseStatus", "EdgeResponseBytes", "ClientRequestURI",
		"CacheCacheStatus", "EdgePathingOp", "OriginResponseStatus", "WAFProfile", "WorkerStatus", "WorkerSubrequest"):
		return "http_requests"
	case has("QueryName") && has("PolicyID", "QueryNameReversed", "ResolvedIPs", "ResolverDecision"):
		return "gateway_dns"
	case has("QueryName", "QueryType") && has("ResponseCode") && has("Timestamp"):
		return "dns_logs"
	case has("HTTPHost", "URL") && has("Datetime") && has("Action"):
		return "gateway_http"
	case has("SessionID") && has("DestinationIP") && has("Transport"):
		return "gateway_network"
	case has("AppUUID", "AppDomain") && has("Action", "Allowed"):
		return "access_requests"
	case has("ActionType", "ActorEmail", "When") && has("ResourceType", "ActorType", "Action"):
		return "audit_logs"
	case has("ClientRequestHost", "RayID", "clientRequestHTTPHost", "rayName"):
		return "http_requests"
	}
	return ""
}

// recordKey returns the de-duplication key of a record without a usable id:
// the first 32 hex digits of the SHA-256 of the record trimmed of white space.
func recordKey(raw []byte) string {
	sum := sha256.Sum256(trimSpace(raw))
	return hex.EncodeToString(sum[:16])
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

// typeName names a JSON value's type for error messages.
func typeName(v *fastjson.Value) string {
	switch t := v.Type(); t {
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "bool"
	default:
		return t.String()
	}
}
