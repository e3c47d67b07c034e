// Package cloudflare is raywatch's side of Cloudflare's API: the fields a
// Logpush dataset offers, creating or updating the Logpush job that
// delivers to raywatch, and the state of those jobs (for `raywatch
// cloudflare status` and the dashboard's job health). Every call honours
// the API base URL of [Credentials].
package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go/v6/logpush"
	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/rules"
	"github.com/cloudflare/cloudflare-go/v6/rulesets"
	"github.com/cloudflare/cloudflare-go/v6/zones"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/coverage"
)

// The Logpush job settings raywatch asks for. unixnano is what the
// http_requests decoder parses exactly (rfc3339, the dashboard's default,
// has second precision). The upload limits keep every batch far inside
// raywatch's intake limits (64 MiB compressed, 256 MiB decompressed); they
// are SEKOIA's, at Logpush's minimum batch size and interval.
const (
	jobTimestampFormat = logpush.OutputOptionsTimestampFormatUnixnano
	jobMaxUploadBytes  = 5_000_000
	jobMaxUploadRecs   = 1000
	jobMaxUploadSecs   = 30
	intakeKeyHeader    = "X-SEKOIAIO-INTAKE-KEY"
	intakePath         = "/plain/batch"
)

// Redactor replaces secrets (API credentials, intake keys) in text that
// goes to the user, including Cloudflare's own messages, which may quote a
// destination_conf.
// It is not safe for concurrent use while secrets are added.
type Redactor struct{ secrets []string }

// add registers s and its URL-encoded forms as secrets.
func (r *Redactor) Add(s string) {
	if len(s) < 4 {
		return // nothing that short is a real secret, and masking it would mangle the text
	}
	r.secrets = append(r.secrets, s, url.QueryEscape(s), url.PathEscape(s))
}

// Replace returns s with every secret masked.
func (r *Redactor) Replace(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "****")
	}
	return s
}

// Redact returns err with the secrets of red masked in its text (nil for
// nil); errors.Is and errors.As still see the original.
func Redact(err error, red *Redactor) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: red.Replace(err.Error()), err: err}
}

// redactedError is an error whose text has had the secrets masked.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Client is the part of Cloudflare's API raywatch uses. Its methods are
// safe for concurrent use.
type Client struct {
	logpush  *logpush.LogpushService
	zones    *zones.ZoneService
	lists    *rules.ListService
	rulesets *rulesets.RulesetService

	// BulkPoll is the first wait between two polls of a bulk operation on
	// a list (it doubles up to 5 seconds); 0 means 250 milliseconds. Set
	// it before use.
	BulkPoll time.Duration
}

// Credentials are the API credentials, as Cloudflare documents their
// variables: CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL with
// CLOUDFLARE_API_KEY; BaseURL (RAYWATCH_CLOUDFLARE_API_URL) replaces the
// API's address when set.
type Credentials struct {
	Token, Email, APIKey string
	BaseURL              string
}

// Set reports whether any credential is given.
func (cr Credentials) Set() bool { return cr.Token != "" || cr.APIKey != "" }

// NewClient builds a client from cr, registering the credentials with
// red. The SDK's own NewClient is not used: it reads more variables than
// documented here (CLOUDFLARE_BASE_URL, CLOUDFLARE_API_USER_SERVICE_KEY)
// and would send a token and a key together when both are set.
func NewClient(cr Credentials, red *Redactor) (*Client, error) {
	opts := []option.RequestOption{
		option.WithEnvironmentProduction(),
		option.WithMaxRetries(2),
		option.WithRequestTimeout(60 * time.Second),
	}
	token := strings.TrimSpace(cr.Token)
	email := strings.TrimSpace(cr.Email)
	key := strings.TrimSpace(cr.APIKey)
	switch {
	case token != "":
		red.Add(token)
		opts = append(opts, option.WithAPIToken(token))
	case email != "" && key != "":
		red.Add(key)
		red.Add(email)
		opts = append(opts, option.WithAPIEmail(email), option.WithAPIKey(key))
	case key != "":
		return nil, errors.New("CLOUDFLARE_API_KEY is set but CLOUDFLARE_EMAIL is not; a global API key needs the account e-mail (or use CLOUDFLARE_API_TOKEN)")
	default:
		return nil, errors.New("no Cloudflare credentials: export CLOUDFLARE_API_TOKEN with an API token that has the Logs Edit permission on the zone (dashboard: My Profile → API Tokens), or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY")
	}
	if cr.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cr.BaseURL))
	}
	return &Client{
		logpush: logpush.NewLogpushService(opts...), zones: zones.NewZoneService(opts...),
		lists: rules.NewListService(opts...), rulesets: rulesets.NewRulesetService(opts...),
	}, nil
}

// DatasetFields returns the fields the dataset offers on the zone, with
// Cloudflare's description of each.
func (c *Client) DatasetFields(ctx context.Context, zone, dataset string) (map[string]string, error) {
	var p logpush.DatasetFieldGetParams
	p.ZoneID.Value, p.ZoneID.Present = zone, true
	res, err := c.logpush.Datasets.Fields.Get(ctx, logpush.DatasetFieldGetParamsDatasetID(dataset), p)
	if err != nil {
		return nil, explainAPI("list the fields of dataset "+dataset, err)
	}
	m, ok := (*res).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("list the fields of dataset %s: unexpected result %T", dataset, *res)
	}
	out := make(map[string]string, len(m))
	for name, desc := range m {
		s, _ := desc.(string)
		out[name] = s
	}
	return out, nil
}

// jobs lists the zone's Logpush jobs.
func (c *Client) jobs(ctx context.Context, zone string) ([]logpush.LogpushJob, error) {
	var p logpush.JobListParams
	p.ZoneID.Value, p.ZoneID.Present = zone, true
	page, err := c.logpush.Jobs.List(ctx, p)
	if err != nil {
		return nil, explainAPI("list the Logpush jobs", err)
	}
	return page.Result, nil
}

// cfError is an error answer of Cloudflare's API: its codes and messages,
// and a hint at the likely cause.
type cfError struct {
	Op     string
	Status int
	Codes  []int64
	Msgs   []string
	Hint   string
	// RetryAfter is the wait the answer's Retry-After header asked for.
	RetryAfter time.Duration
}

func (e *cfError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: Cloudflare API answered HTTP %d", e.Op, e.Status)
	for i := range e.Codes {
		fmt.Fprintf(&b, "\n  error %d: %s", e.Codes[i], e.Msgs[i])
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "\n  hint: %s", e.Hint)
	}
	return b.String()
}

// explainAPI turns an error of the SDK into a *cfError when it is an API
// answer; other errors (network, context) are wrapped with op.
func explainAPI(op string, err error) error {
	var ae *logpush.Error
	if !errors.As(err, &ae) {
		return fmt.Errorf("%s: %w", op, err)
	}
	e := &cfError{Op: op, Status: ae.StatusCode}
	for _, d := range ae.Errors {
		e.Codes = append(e.Codes, d.Code)
		e.Msgs = append(e.Msgs, d.Message)
	}
	e.Hint = apiHint(e.Status, e.Codes, e.Msgs)
	if ae.Response != nil {
		if s, err := strconv.Atoi(ae.Response.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return e
}

const (
	hintAuth = "check the credentials: the API token needs the Logs Edit permission on this zone " +
		"(My Profile → API Tokens: Zone · Logs · Edit, with the zone under Zone Resources); " +
		"status without --zone also needs Zone · Zone · Read"
	hintZone       = "check --zone: it takes the 32-character zone ID shown on the zone's Overview page, not the domain name"
	hintEntitled   = "Logpush is not available on this zone: it needs an Enterprise plan (or the Logpush add-on)"
	hintRate       = "Cloudflare is rate-limiting this token; wait a minute and run the command again"
	hintValidation = "Cloudflare could not deliver a test batch: raywatch must be reachable from the Internet at --url over HTTPS " +
		"with a publicly trusted certificate, answer POST " + intakePath + ", and know the intake key (a 401 fails validation)"
)

// apiHint guesses the cause of an API error from its status, codes and
// messages.
func apiHint(status int, codes []int64, msgs []string) string {
	all := strings.ToLower(strings.Join(msgs, " "))
	for _, c := range codes {
		switch c {
		case 10000, 10001, 9103, 9106, 9107, 9109, 6003, 6103, 6111:
			return hintAuth
		case 7000, 7003:
			return hintZone
		case 971, 10429:
			return hintRate
		}
	}
	switch {
	case strings.Contains(all, "entitle") || strings.Contains(all, "enterprise") || strings.Contains(all, "not available for this zone"):
		return hintEntitled
	case strings.Contains(all, "zone identifier") || strings.Contains(all, "could not route"):
		return hintZone
	case strings.Contains(all, "validat") || strings.Contains(all, "destination"):
		return hintValidation
	case status == 401 || status == 403:
		return hintAuth
	case status == 429:
		return hintRate
	}
	return ""
}

// destinationConf returns the Logpush destination_conf for raywatch at
// base (https://HOST[:PORT][/prefix]) with the intake key.
func destinationConf(base *url.URL, key string) string {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + intakePath
	u.RawPath = ""
	u.RawQuery = "header_" + intakeKeyHeader + "=" + url.QueryEscape(key)
	return u.String()
}

// ParseURL checks the --url of connect: raywatch's public HTTPS base
// address.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--url %q: %w", s, err)
	}
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("--url %q: Logpush delivers only over HTTPS, with a publicly trusted certificate; give https://HOST[:PORT]", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("--url %q: no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("--url %q: give only https://HOST[:PORT] (and a path prefix if raywatch sits behind one)", s)
	case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), intakePath):
		return nil, fmt.Errorf("--url %q: give raywatch's base address; raywatch adds %s itself", s, intakePath)
	}
	return u, nil
}

// raywatchIntakeKey returns the intake key of a destination_conf that
// points at a raywatch intake (or SEKOIA.IO's, which raywatch emulates:
// those are recognised by host and excluded).
func raywatchIntakeKey(dest string) (key string, ok bool) {
	u, err := url.Parse(dest)
	if err != nil || u.Scheme != "https" || !strings.HasSuffix(u.Path, intakePath) {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if host == "sekoia.io" || strings.HasSuffix(host, ".sekoia.io") {
		return "", false
	}
	for name, vals := range u.Query() {
		if strings.EqualFold(name, "header_"+intakeKeyHeader) && len(vals) > 0 {
			return vals[0], true
		}
	}
	return "", false
}

// maskDestination hides the intake key of a destination_conf.
func maskDestination(dest string) string {
	u, err := url.Parse(dest)
	if err != nil {
		return "(unparsable destination)"
	}
	q := u.Query()
	parts := make([]string, 0, len(q))
	for _, name := range slices.Sorted(maps.Keys(q)) {
		for _, v := range q[name] {
			if strings.HasPrefix(strings.ToLower(name), "header_") {
				v = "****"
			} else {
				v = url.QueryEscape(v)
			}
			parts = append(parts, name+"="+v)
		}
	}
	u.RawQuery = strings.Join(parts, "&")
	return u.String()
}

// Plan is what raywatch knows of a dataset on a zone: the fields the zone
// offers (with Cloudflare's description), the needs of the enabled rules,
// and the fields raywatch wants (those of the rules, the IOC matcher and
// context fields).
type Plan struct {
	Avail map[string]string
	Needs []coverage.RuleNeeds
	Want  map[string]*coverage.FieldUse
}

// PlanDataset asks the zone which fields dataset offers and sets them
// against the rules' needs.
func (c *Client) PlanDataset(ctx context.Context, zone, dataset string, needs []coverage.RuleNeeds) (Plan, error) {
	avail, err := c.DatasetFields(ctx, zone, dataset)
	if err != nil {
		return Plan{}, err
	}
	return Plan{Avail: avail, Needs: needs, Want: coverage.Wanted(dataset, needs)}, nil
}

// Unavailable returns the wanted fields the dataset does not offer, sorted.
func Unavailable(want map[string]*coverage.FieldUse, avail map[string]string) []string {
	var out []string
	for f := range want {
		if _, ok := avail[f]; !ok {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// DescribeUnavailable names the missing fields and what each costs.
func DescribeUnavailable(missing []string, want map[string]*coverage.FieldUse) string {
	parts := make([]string, len(missing))
	for i, f := range missing {
		parts[i] = f
		if u := want[f]; u != nil && len(u.Rules) > 0 {
			parts[i] += fmt.Sprintf(" (%d rules cannot fire without it)", len(u.Rules))
		}
		if f == "JA3Hash" || f == "JA4" {
			parts[i] += " (needs Bot Management)"
		}
	}
	return strings.Join(parts, ", ")
}

// jobPlan is the Logpush job connect wants.
type jobPlan struct {
	name, dataset, destination string
	fields                     []string
}

var jobNameUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// DefaultJobName names the job after the intake and dataset, in the
// characters Logpush accepts in a job name.
func DefaultJobName(intake, dataset string) string {
	return jobNameUnsafe.ReplaceAllString("raywatch-"+intake+"-"+dataset, "-")
}

// outputOptions are the output options of the plan. The sample rate and
// the CVE-2021-44228 replacement of an existing job are the user's choice
// and kept.
func (p jobPlan) outputOptions(old *logpush.OutputOptions) logpush.OutputOptionsParam {
	var o logpush.OutputOptionsParam
	o.FieldNames.Value, o.FieldNames.Present = p.fields, true
	o.TimestampFormat.Value, o.TimestampFormat.Present = jobTimestampFormat, true
	o.OutputType.Value, o.OutputType.Present = logpush.OutputOptionsOutputTypeNdjson, true
	if old != nil {
		if old.SampleRate > 0 {
			o.SampleRate.Value, o.SampleRate.Present = old.SampleRate, true
		}
		if old.Cve2021_44228 {
			o.Cve2021_44228.Value, o.Cve2021_44228.Present = true, true
		}
		if !defaultFraming(old) {
			// Reset a custom framing to NDJSON's defaults.
			for _, f := range []struct {
				dst *string
				pr  *bool
				v   string
			}{
				{&o.BatchPrefix.Value, &o.BatchPrefix.Present, ""},
				{&o.BatchSuffix.Value, &o.BatchSuffix.Present, ""},
				{&o.RecordPrefix.Value, &o.RecordPrefix.Present, "{"},
				{&o.RecordSuffix.Value, &o.RecordSuffix.Present, "}\n"},
				{&o.RecordDelimiter.Value, &o.RecordDelimiter.Present, ""},
				{&o.FieldDelimiter.Value, &o.FieldDelimiter.Present, ","},
				{&o.RecordTemplate.Value, &o.RecordTemplate.Present, ""},
			} {
				*f.dst, *f.pr = f.v, true
			}
		}
	}
	return o
}

// defaultFraming reports whether o frames records as NDJSON's defaults do,
// which is what the intake reads.
func defaultFraming(o *logpush.OutputOptions) bool {
	in := func(v string, ok ...string) bool { return slices.Contains(ok, v) }
	return in(string(o.OutputType), "", "ndjson") &&
		o.BatchPrefix == "" && o.BatchSuffix == "" && o.RecordDelimiter == "" && o.RecordTemplate == "" &&
		in(o.RecordPrefix, "", "{") && in(o.RecordSuffix, "", "}\n") && in(o.FieldDelimiter, "", ",")
}

func (p jobPlan) newParams(zone string) logpush.JobNewParams {
	var n logpush.JobNewParams
	n.ZoneID.Value, n.ZoneID.Present = zone, true
	n.Name.Value, n.Name.Present = p.name, true
	n.Dataset.Value, n.Dataset.Present = logpush.JobNewParamsDataset(p.dataset), true
	n.DestinationConf.Value, n.DestinationConf.Present = p.destination, true
	n.Enabled.Value, n.Enabled.Present = true, true
	n.MaxUploadBytes.Value, n.MaxUploadBytes.Present = jobMaxUploadBytes, true
	n.MaxUploadRecords.Value, n.MaxUploadRecords.Present = jobMaxUploadRecs, true
	n.MaxUploadIntervalSeconds.Value, n.MaxUploadIntervalSeconds.Present = jobMaxUploadSecs, true
	n.OutputOptions.Value, n.OutputOptions.Present = p.outputOptions(nil), true
	return n
}

func (p jobPlan) updateParams(zone string, old logpush.LogpushJob) logpush.JobUpdateParams {
	var u logpush.JobUpdateParams
	u.ZoneID.Value, u.ZoneID.Present = zone, true
	u.DestinationConf.Value, u.DestinationConf.Present = p.destination, true
	u.Enabled.Value, u.Enabled.Present = true, true
	u.MaxUploadBytes.Value, u.MaxUploadBytes.Present = jobMaxUploadBytes, true
	u.MaxUploadRecords.Value, u.MaxUploadRecords.Present = jobMaxUploadRecs, true
	u.MaxUploadIntervalSeconds.Value, u.MaxUploadIntervalSeconds.Present = jobMaxUploadSecs, true
	var oldOpts *logpush.OutputOptions
	if !old.JSON.OutputOptions.IsNull() {
		oldOpts = &old.OutputOptions
	}
	u.OutputOptions.Value, u.OutputOptions.Present = p.outputOptions(oldOpts), true
	return u
}

// diff describes how job differs from the plan, one entry per setting; it
// is empty when the job is already what connect would make. The
// destination is compared but never shown.
func (p jobPlan) diff(job logpush.LogpushJob) []string {
	var out []string
	if !sameDestination(job.DestinationConf, p.destination) {
		out = append(out, "destination_conf (new host or intake key)")
	}
	if !job.Enabled {
		out = append(out, "enabled (was disabled)")
	}
	o := job.OutputOptions
	if job.JSON.OutputOptions.IsNull() {
		out = append(out, "output_options (the job used logpull_options)")
	} else {
		have := slices.Sorted(slices.Values(o.FieldNames))
		var added, removed []string
		for _, f := range p.fields {
			if _, ok := slices.BinarySearch(have, f); !ok {
				added = append(added, "+"+f)
			}
		}
		for _, f := range have {
			if _, ok := slices.BinarySearch(p.fields, f); !ok {
				removed = append(removed, "-"+f)
			}
		}
		if len(added)+len(removed) > 0 {
			out = append(out, "field_names "+strings.Join(append(added, removed...), " "))
		}
		if o.TimestampFormat != jobTimestampFormat {
			was := string(o.TimestampFormat)
			if was == "" {
				was = "unset"
			}
			out = append(out, fmt.Sprintf("timestamp_format %s → %s", was, jobTimestampFormat))
		}
		if !defaultFraming(&o) {
			out = append(out, "output framing → NDJSON")
		}
	}
	for _, l := range []struct {
		name      string
		have, got int64
	}{
		{"max_upload_bytes", int64(job.MaxUploadBytes), jobMaxUploadBytes},
		{"max_upload_records", int64(job.MaxUploadRecords), jobMaxUploadRecs},
		{"max_upload_interval_seconds", int64(job.MaxUploadIntervalSeconds), jobMaxUploadSecs},
	} {
		if l.have != l.got {
			out = append(out, fmt.Sprintf("%s %d → %d", l.name, l.have, l.got))
		}
	}
	return out
}

// sameDestination reports whether two destination_conf URLs are the same
// once decoded, so that a re-encoding by Cloudflare is not a change.
func sameDestination(a, b string) bool {
	if a == b {
		return true
	}
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return false
	}
	qa, qb := ua.Query(), ub.Query()
	return ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host) &&
		strings.TrimSuffix(ua.Path, "/") == strings.TrimSuffix(ub.Path, "/") &&
		maps.EqualFunc(qa, qb, slices.Equal)
}

// JobStatus is the state of one Logpush job that delivers to a
// raywatch intake.
type JobStatus struct {
	Zone         string    `json:"zone"`      // zone ID
	ZoneName     string    `json:"zone_name"` // when known
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	Dataset      string    `json:"dataset"`
	Host         string    `json:"host"`   // destination host[:port]
	Intake       string    `json:"intake"` // the local intake whose key it sends, "" when none matches
	Enabled      bool      `json:"enabled"`
	LastComplete time.Time `json:"last_complete"` // zero: never
	LastError    time.Time `json:"last_error"`    // zero: never
	ErrorMessage string    `json:"error_message,omitempty"`
	// MaxUploadInterval is the job's max_upload_interval_seconds, the
	// longest gap between batches while traffic flows (0: Logpush's default).
	MaxUploadInterval time.Duration `json:"max_upload_interval"`
}

// Failing reports whether the job's last upload failed.
func (s JobStatus) Failing() bool {
	return !s.LastError.IsZero() && s.LastError.After(s.LastComplete)
}

// raywatchJobs returns the zone's Logpush jobs that deliver to a raywatch
// intake (destination path /plain/batch with an X-SEKOIAIO-INTAKE-KEY
// header), naming the local intake whose key each sends when keys (intake
// name → key) holds it.
func (c *Client) raywatchJobs(ctx context.Context, zone, zoneName string, keys map[string]string) ([]JobStatus, error) {
	jobs, err := c.jobs(ctx, zone)
	if err != nil {
		return nil, err
	}
	var out []JobStatus
	for _, j := range jobs {
		key, ok := raywatchIntakeKey(j.DestinationConf)
		if !ok {
			continue
		}
		s := JobStatus{
			Zone: zone, ZoneName: zoneName, ID: j.ID, Name: j.Name, Dataset: string(j.Dataset),
			Enabled: j.Enabled, LastComplete: j.LastComplete, LastError: j.LastError, ErrorMessage: j.ErrorMessage,
			MaxUploadInterval: time.Duration(j.MaxUploadIntervalSeconds) * time.Second,
		}
		if u, err := url.Parse(j.DestinationConf); err == nil {
			s.Host = u.Host
		}
		for name, k := range keys {
			if k == key {
				s.Intake = name
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// AllJobs returns the jobs delivering to raywatch in zone, or in
// every zone the credentials can read when zone is "".
func (c *Client) AllJobs(ctx context.Context, zone string, keys map[string]string) ([]JobStatus, error) {
	type zoneRef struct{ id, name string }
	var zs []zoneRef
	if zone != "" {
		zs = []zoneRef{{id: zone}}
	} else {
		var p zones.ZoneListParams
		p.PerPage.Value, p.PerPage.Present = 50, true
		it := c.zones.ListAutoPaging(ctx, p)
		for it.Next() {
			z := it.Current()
			zs = append(zs, zoneRef{z.ID, z.Name})
		}
		if err := it.Err(); err != nil {
			return nil, explainAPI("list the zones", err)
		}
	}
	var all []JobStatus
	for _, z := range zs {
		js, err := c.raywatchJobs(ctx, z.id, z.name, keys)
		if err != nil {
			return nil, err
		}
		all = append(all, js...)
	}
	return all, nil
}
