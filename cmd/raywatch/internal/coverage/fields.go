package coverage

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	sigma "github.com/bradleyjkemp/sigma-go"

	"github.com/raywatch/raywatch/rules"
)

// logpushToECS is the field knowledge of the http_requests decoder: which
// top-level Logpush http_requests fields feed which ECS fields. It follows
// spec/sekoia-cloudflare-mapping.md §3.1 (SEKOIA's parser) plus raywatch's
// documented additions (url.original and url.query from ClientRequestURI,
// @timestamp from EdgeStartTimestamp). Every field is also copied to
// cloudflare.<Field> when SEKOIA declares it; [ecsSources] handles that
// prefix generically. When an ECS field has several sources, the order of
// this table is the order of preference (url.path: ClientRequestPath, else
// ClientRequestURI).
var logpushToECS = []struct {
	Logpush string
	ECS     []string
}{
	{"ClientIP", []string{"source.ip", "source.address", "related.ip"}},
	{"ClientRequestHost", []string{"destination.address"}},
	{"ClientRequestMethod", []string{"http.request.method"}},
	{"ClientRequestPath", []string{"url.path"}},
	{"ClientRequestURI", []string{"url.path", "url.original", "url.query"}},
	{"EdgeResponseBytes", []string{"http.response.bytes"}},
	{"EdgeResponseStatus", []string{"http.response.status_code"}},
	{"ClientASN", []string{"source.as.number"}},
	{"ClientCountry", []string{"source.geo.country_name"}},
	{"ClientRequestProtocol", []string{"network.protocol"}},
	{"ClientRequestUserAgent", []string{"user_agent.original"}},
	{"ClientRequestBytes", []string{"http.request.bytes"}},
	{"ClientRequestReferer", []string{"http.request.referrer"}},
	{"ClientSSLCipher", []string{"tls.cipher"}},
	{"ClientSSLProtocol", []string{"tls.version_protocol"}},
	{"ClientSrcPort", []string{"source.port"}},
	{"EdgeStartTimestamp", []string{"event.start", "@timestamp"}},
	{"EdgeEndTimestamp", []string{"event.end"}},
}

// constantECS are the ECS fields the http_requests decoder sets on every
// event whatever the record holds; a rule testing them needs no Logpush
// field.
var constantECS = map[string]bool{
	"event.category":  true,
	"event.type":      true,
	"event.dataset":   true,
	"observer.vendor": true,
	"observer.type":   true,
}

// sigmaAliases maps the SigmaHQ proxy and webserver field names onto the ECS
// fields raywatch sets (spec/sigmahq-census.md §7), so that a rule written
// with SigmaHQ names gets the same Logpush fields.
var sigmaAliases = map[string]string{
	"c-uri":           "url.original",
	"cs-uri":          "url.original",
	"cs-uri-query":    "url.original",
	"cs-uri-stem":     "url.path",
	"c-uri-query":     "url.query",
	"c-uri-stem":      "url.original",
	"cs-method":       "http.request.method",
	"sc-status":       "http.response.status_code",
	"c-useragent":     "user_agent.original",
	"cs-user-agent":   "user_agent.original",
	"cs-host":         "destination.address",
	"r-dns":           "destination.address",
	"cs-referer":      "http.request.referrer",
	"cs-referrer":     "http.request.referrer",
	"c-ip":            "source.ip",
	"src_ip":          "source.ip",
	"clientip":        "source.ip",
	"cs-bytes":        "http.request.bytes",
	"sc-bytes":        "http.response.bytes",
	"cs-version":      "network.protocol",
	"c-uri-extension": "url.path",
}

// iocFields are the Logpush fields the IOC matcher reads: addresses, hosts,
// URLs, referrers, user-agents and JA3 hashes.
var iocFields = []string{
	"ClientIP",
	"ClientRequestHost",
	"ClientRequestURI",
	"ClientRequestReferer",
	"ClientRequestUserAgent",
	"JA3Hash",
}

// contextFields are the http_requests fields a raywatch Logpush job asks for
// whether or not a rule tests them: they make an alert readable (who, what,
// when, which zone) and feed the IOC matcher. JA3Hash needs Bot Management
// and is dropped when the zone does not offer it.
var contextFields = []string{
	"ClientIP",
	"ClientRequestHost",
	"ClientRequestMethod",
	"ClientRequestURI",
	"ClientRequestPath",
	"ClientRequestUserAgent",
	"ClientRequestReferer",
	"ClientRequestProtocol",
	"ClientRequestScheme",
	"ClientCountry",
	"ClientASN",
	"ClientSrcPort",
	"EdgeStartTimestamp",
	"EdgeEndTimestamp",
	"EdgeResponseStatus",
	"EdgeResponseBytes",
	"RayID",
	"ZoneName",
	"JA3Hash",
}

// ecsToLogpush is logpushToECS reversed: ECS field → Logpush fields that
// set it, in order of preference.
var ecsToLogpush = func() map[string][]string {
	m := map[string][]string{}
	for _, e := range logpushToECS {
		for _, f := range e.ECS {
			m[f] = append(m[f], e.Logpush)
		}
	}
	return m
}()

// FieldNeed is one event field a rule tests and the Logpush fields that can
// supply it: the field is there when any one of AnyOf is in the record.
type FieldNeed struct {
	Field string   `json:"field"`  // as the rule names it
	AnyOf []string `json:"any_of"` // Logpush fields, preferred first
}

// String renders the need's Logpush side, for example "ClientRequestPath or
// ClientRequestURI".
func (n FieldNeed) String() string { return strings.Join(n.AnyOf, " or ") }

// ecsSources returns the Logpush http_requests fields that set the event
// field name (ECS, cloudflare.<Field> or a SigmaHQ alias), preferred first.
// constant is true when the decoder sets the field on every event. Both are
// zero for a field no Logpush field feeds.
func ecsSources(name string) (anyOf []string, constant bool) {
	if alias, ok := sigmaAliases[name]; ok {
		name = alias
	}
	if constantECS[name] {
		return nil, true
	}
	if f, ok := strings.CutPrefix(name, "cloudflare."); ok && f != "" {
		// cloudflare.ClientRequestURI, cloudflare.RequestHeaders.x-foo.
		f, _, _ = strings.Cut(f, ".")
		return []string{f}, false
	}
	return slices.Clone(ecsToLogpush[name]), false
}

// needsFor returns what the event fields (ECS names, cloudflare.<Field> or
// SigmaHQ aliases, as a rule writes them) need from Logpush, one FieldNeed
// per field in the order given, and the fields no Logpush http_requests
// field feeds. Fields the decoder always sets are neither.
func needsFor(fields []string) (needs []FieldNeed, unknown []string) {
	seen := map[string]bool{}
	for _, f := range fields {
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		anyOf, constant := ecsSources(f)
		switch {
		case constant:
		case len(anyOf) == 0:
			unknown = append(unknown, f)
		default:
			needs = append(needs, FieldNeed{Field: f, AnyOf: anyOf})
		}
	}
	return needs, unknown
}

// logpushFieldsFor returns the Logpush fields a job must carry for every
// need to be met (each need's every source, so that either decoder path
// works), sorted and without duplicates.
func logpushFieldsFor(needs []FieldNeed) []string {
	var out []string
	for _, n := range needs {
		out = append(out, n.AnyOf...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// RuleNeeds is what one rule needs from Logpush records to be able to fire.
type RuleNeeds struct {
	ID    string      `json:"id"`
	Title string      `json:"title"`
	Needs []FieldNeed `json:"needs"`
	// Unknown are fields the rule tests that no Logpush http_requests field
	// feeds: the rule cannot fire on them whatever the job selects.
	Unknown []string `json:"unknown,omitempty"`
}

// Needs returns the needs of each rule, in order. Sigma filters are left
// out: they keep alerts from being raised and need no field to be sent.
func Needs(rs []rules.Rule) ([]RuleNeeds, error) {
	out := make([]RuleNeeds, 0, len(rs))
	for _, r := range rs {
		if r.Kind() == rules.KindFilter {
			continue
		}
		if r.ID == rules.IntelligenceFeedID {
			// The IOC matcher evaluates it: any one indicator field will do.
			out = append(out, RuleNeeds{ID: r.ID, Title: r.Title, Needs: []FieldNeed{{Field: "indicator fields", AnyOf: iocFields}}})
			continue
		}
		fields, err := ruleFields(r)
		if err != nil {
			return nil, err
		}
		needs, unknown := needsFor(fields)
		out = append(out, RuleNeeds{ID: r.ID, Title: r.Title, Needs: needs, Unknown: unknown})
	}
	return out, nil
}

// ruleFields returns the event fields a rule's detection tests, sorted. It
// is the only place that reads a rule's Sigma text for field coverage; once
// the engine exposes the fields of its compiled rules (after the SigmaHQ
// field mapping), this is the function to switch over.
func ruleFields(r rules.Rule) ([]string, error) {
	sr, err := sigma.ParseRule(r.YAML)
	if err != nil {
		return nil, fmt.Errorf("rule %s (%s): %w", r.ID, r.File, err)
	}
	var out []string
	for _, s := range sr.Detection.Searches {
		for _, em := range s.EventMatchers {
			for _, fm := range em {
				if fm.Field != "" {
					out = append(out, fm.Field)
				}
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}
