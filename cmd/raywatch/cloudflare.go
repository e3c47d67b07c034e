package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/raywatch/raywatch/rules"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloudflare/cloudflare-go/v6/logpush"
	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/zones"
)

const cloudflareUsage = `Usage:
  raywatch cloudflare fields  --zone ZONE_ID [--dataset http_requests] [--rules-dir DIR]
  raywatch cloudflare connect --zone ZONE_ID --url https://HOST[:PORT] [--dataset http_requests]
                              [--intake NAME] [--name JOB_NAME] [--data-dir DIR] [--rules-dir DIR] [--dry-run]
  raywatch cloudflare status  [--zone ZONE_ID] [--data-dir DIR]

Credentials come from the environment, as Cloudflare documents them:
  CLOUDFLARE_API_TOKEN                      an API token with Logs Edit on the zone (preferred;
                                            status without --zone also needs Zone Read)
  CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY   or the account e-mail and global API key
`

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

func cloudflareCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, cloudflareUsage)
		return errUsage
	}
	red := &redactor{}
	var err error
	switch args[0] {
	case "fields":
		err = cfFieldsCmd(ctx, args[1:], red, stdout, stderr)
	case "connect":
		err = cfConnectCmd(ctx, args[1:], red, stdout, stderr)
	case "status":
		err = cfStatusCmd(ctx, args[1:], red, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, cloudflareUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "raywatch cloudflare: unknown command %q\n\n%s", args[0], cloudflareUsage)
		return errUsage
	}
	if err == nil || errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) || errors.Is(err, errReported) {
		return err
	}
	return &redactedError{msg: red.replace(err.Error()), err: err}
}

// redactor replaces secrets (API credentials, intake keys) in text that
// goes to the user, including Cloudflare's own messages, which may quote a
// destination_conf.
type redactor struct{ secrets []string }

// add registers s and its URL-encoded forms as secrets.
func (r *redactor) add(s string) {
	if len(s) < 4 {
		return // nothing that short is a real secret, and masking it would mangle the text
	}
	r.secrets = append(r.secrets, s, url.QueryEscape(s), url.PathEscape(s))
}

func (r *redactor) replace(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "****")
	}
	return s
}

// redactedError is an error whose text has had the secrets masked.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// cfClient is the part of Cloudflare's API raywatch uses.
type cfClient struct {
	logpush *logpush.LogpushService
	zones   *zones.ZoneService
}

// newCFClient builds a client from CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL
// with CLOUDFLARE_API_KEY, registering the credentials with red. The SDK's
// own NewClient is not used: it reads more variables than documented here
// (CLOUDFLARE_BASE_URL, CLOUDFLARE_API_USER_SERVICE_KEY) and would send a
// token and a key together when both are set.
func newCFClient(red *redactor) (*cfClient, error) {
	opts := []option.RequestOption{
		option.WithEnvironmentProduction(),
		option.WithMaxRetries(2),
		option.WithRequestTimeout(60 * time.Second),
	}
	token := strings.TrimSpace(getenv("CLOUDFLARE_API_TOKEN"))
	email := strings.TrimSpace(getenv("CLOUDFLARE_EMAIL"))
	key := strings.TrimSpace(getenv("CLOUDFLARE_API_KEY"))
	switch {
	case token != "":
		red.add(token)
		opts = append(opts, option.WithAPIToken(token))
	case email != "" && key != "":
		red.add(key)
		red.add(email)
		opts = append(opts, option.WithAPIEmail(email), option.WithAPIKey(key))
	case key != "":
		return nil, errors.New("CLOUDFLARE_API_KEY is set but CLOUDFLARE_EMAIL is not; a global API key needs the account e-mail (or use CLOUDFLARE_API_TOKEN)")
	default:
		return nil, errors.New("no Cloudflare credentials: export CLOUDFLARE_API_TOKEN with an API token that has the Logs Edit permission on the zone (dashboard: My Profile → API Tokens), or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY")
	}
	if base := getenv("RAYWATCH_CLOUDFLARE_API_URL"); base != "" {
		opts = append(opts, option.WithBaseURL(base))
	}
	return &cfClient{logpush: logpush.NewLogpushService(opts...), zones: zones.NewZoneService(opts...)}, nil
}

// datasetFields returns the fields the dataset offers on the zone, with
// Cloudflare's description of each.
func (c *cfClient) datasetFields(ctx context.Context, zone, dataset string) (map[string]string, error) {
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
func (c *cfClient) jobs(ctx context.Context, zone string) ([]logpush.LogpushJob, error) {
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

// loadIntakeKey returns the key of the named intake the way raywatch serve
// finds it: RAYWATCH_INTAKE_KEY, RAYWATCH_INTAKE_KEYS or
// RAYWATCH_INTAKE_KEYS_FILE, else the key serve generated in dataDir. It
// never creates a key.
func loadIntakeKey(dataDir, intake string) (string, error) {
	keys, err := parseIntakeKeys()
	if err != nil {
		return "", err
	}
	if len(keys) > 0 {
		if k, ok := keys[intake]; ok {
			return k, nil
		}
		names := slices.Sorted(maps.Keys(keys))
		return "", fmt.Errorf("no intake named %q in RAYWATCH_INTAKE_KEY(S); the configured intakes are %s; pick one with --intake", intake, strings.Join(names, ", "))
	}
	path := keyFile(dataDir)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("no intake key: %s does not exist and RAYWATCH_INTAKE_KEY is not set; start raywatch serve once with the same --data-dir (it generates the key), or set RAYWATCH_INTAKE_KEY", path)
	case err != nil:
		return "", fmt.Errorf("read intake key: %w", err)
	}
	if intake != "default" {
		return "", fmt.Errorf("no intake named %q: the key in %s is intake \"default\"; set RAYWATCH_INTAKE_KEYS to define more intakes", intake, path)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("intake key file %s is empty", path)
	}
	return key, nil
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

// parseRaywatchURL checks the --url of connect.
func parseRaywatchURL(s string) (*url.URL, error) {
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

// fieldUse says why raywatch wants a Logpush field.
type fieldUse struct {
	rules   []string // titles of the enabled rules that need it
	ioc     bool
	context bool
}

// wantedFields returns, for the dataset, the fields raywatch wants and why,
// and the rules' needs. Only http_requests has field knowledge; for other
// datasets the map is empty.
func wantedFields(dataset string, needs []RuleNeeds) map[string]*fieldUse {
	want := map[string]*fieldUse{}
	if dataset != "http_requests" {
		return want
	}
	get := func(f string) *fieldUse {
		u := want[f]
		if u == nil {
			u = &fieldUse{}
			want[f] = u
		}
		return u
	}
	for _, rn := range needs {
		if rn.ID == rules.IntelligenceFeedID {
			continue // its fields are the IOC matcher's, marked below
		}
		for _, f := range LogpushFieldsFor(rn.Needs) {
			u := get(f)
			if !slices.Contains(u.rules, rn.Title) {
				u.rules = append(u.rules, rn.Title)
			}
		}
	}
	for _, f := range iocFields {
		get(f).ioc = true
	}
	for _, f := range contextFields {
		get(f).context = true
	}
	return want
}

func (u *fieldUse) String() string {
	var parts []string
	parts = append(parts, u.rules...)
	if u.ioc {
		parts = append(parts, "IOC matcher")
	}
	if len(parts) == 0 && u.context {
		parts = append(parts, "context")
	}
	return strings.Join(parts, "; ")
}

// enabledRuleNeeds loads the rules raywatch serve would run and returns
// their needs.
func enabledRuleNeeds(rulesDir string, stderr io.Writer) ([]RuleNeeds, error) {
	rs, problems, err := loadRules(rulesDir)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "raywatch cloudflare: skipped rule %v\n", p)
	}
	return rulesNeeds(rs)
}

// datasetPlan is what raywatch knows of a dataset on a zone: the fields
// the zone offers, the needs of the enabled rules, and the fields raywatch
// wants (those of the rules, the IOC matcher and context fields).
type datasetPlan struct {
	client *cfClient
	avail  map[string]string
	needs  []RuleNeeds
	want   map[string]*fieldUse
}

// planDataset loads the enabled rules (with those of rulesDir) and asks
// the zone which fields dataset offers.
func planDataset(ctx context.Context, red *redactor, rulesDir, zone, dataset string, stderr io.Writer) (datasetPlan, error) {
	var p datasetPlan
	var err error
	if p.needs, err = enabledRuleNeeds(rulesDir, stderr); err != nil {
		return p, err
	}
	if p.client, err = newCFClient(red); err != nil {
		return p, err
	}
	if p.avail, err = p.client.datasetFields(ctx, zone, dataset); err != nil {
		return p, err
	}
	p.want = wantedFields(dataset, p.needs)
	return p, nil
}

func cfFieldsCmd(ctx context.Context, args []string, red *redactor, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("raywatch cloudflare fields", flag.ContinueOnError)
	fset.SetOutput(stderr)
	zone := fset.String("zone", "", "zone ID (32 hex characters, from the zone's Overview page)")
	dataset := fset.String("dataset", "http_requests", "Logpush dataset")
	rulesDir := fset.String("rules-dir", envOr("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if err := requireZone(*zone, fset, stderr); err != nil {
		return err
	}
	dp, err := planDataset(ctx, red, *rulesDir, *zone, *dataset, stderr)
	if err != nil {
		return err
	}
	avail, want, needs := dp.avail, dp.want, dp.needs

	fmt.Fprintf(stdout, "Dataset %s on zone %s offers %d fields.\n", *dataset, *zone, len(avail))
	if *dataset != "http_requests" {
		fmt.Fprintf(stdout, "raywatch's rules read http_requests; no field of %s is marked.\n", *dataset)
	} else {
		fmt.Fprintln(stdout, "* = an enabled rule or the IOC matcher reads it, + = recommended context; raywatch cloudflare connect asks for both.")
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tFIELD\tUSED BY")
	for _, name := range slices.Sorted(maps.Keys(avail)) {
		mark, use := "", ""
		if u := want[name]; u != nil {
			mark, use = "+", u.String()
			if len(u.rules) > 0 || u.ioc {
				mark = "*"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", mark, name, use)
	}
	tw.Flush()
	if missing := unavailable(want, avail); len(missing) > 0 {
		fmt.Fprintf(stdout, "\nNot offered on this zone: %s.\n", describeUnavailable(missing, want))
	}
	for _, rn := range needs {
		if len(rn.Unknown) > 0 && *dataset == "http_requests" {
			fmt.Fprintf(stdout, "Rule %q tests %s, which no Logpush field feeds.\n", rn.Title, strings.Join(rn.Unknown, ", "))
		}
	}
	if len(want) > 0 {
		fmt.Fprintf(stdout, "\nraywatch cloudflare connect --zone %s --url https://YOUR-RAYWATCH-HOST creates a job with the marked fields.\n", *zone)
	}
	return nil
}

// requireZone checks that --zone was given.
func requireZone(zone string, fset *flag.FlagSet, stderr io.Writer) error {
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fset.Name(), fset.Arg(0))
		return errUsage
	}
	if zone == "" {
		fmt.Fprintf(stderr, "%s: --zone ZONE_ID is required (the zone ID is on the zone's Overview page in the Cloudflare dashboard)\n", fset.Name())
		return errUsage
	}
	return nil
}

// unavailable returns the wanted fields the dataset does not offer, sorted.
func unavailable(want map[string]*fieldUse, avail map[string]string) []string {
	var out []string
	for f := range want {
		if _, ok := avail[f]; !ok {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

func describeUnavailable(missing []string, want map[string]*fieldUse) string {
	parts := make([]string, len(missing))
	for i, f := range missing {
		parts[i] = f
		if u := want[f]; u != nil && len(u.rules) > 0 {
			parts[i] += fmt.Sprintf(" (%d rules cannot fire without it)", len(u.rules))
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

func cfConnectCmd(ctx context.Context, args []string, red *redactor, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("raywatch cloudflare connect", flag.ContinueOnError)
	fset.SetOutput(stderr)
	zone := fset.String("zone", "", "zone ID (32 hex characters, from the zone's Overview page)")
	rawURL := fset.String("url", "", "public HTTPS address of raywatch, https://HOST[:PORT]")
	dataset := fset.String("dataset", "http_requests", "Logpush dataset")
	intake := fset.String("intake", "default", "raywatch intake whose key the job sends")
	name := fset.String("name", "", `Logpush job name (default "raywatch-INTAKE-DATASET")`)
	dataDir := fset.String("data-dir", envOr("RAYWATCH_DATA_DIR", "./raywatch-data"), "raywatch's data folder, where serve keeps the generated intake key (RAYWATCH_DATA_DIR)")
	rulesDir := fset.String("rules-dir", envOr("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	dryRun := fset.Bool("dry-run", false, "show what would change without creating or updating the job")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if err := requireZone(*zone, fset, stderr); err != nil {
		return err
	}
	if *rawURL == "" {
		fmt.Fprintln(stderr, "raywatch cloudflare connect: --url https://HOST[:PORT] is required (raywatch's public HTTPS address)")
		return errUsage
	}
	base, err := parseRaywatchURL(*rawURL)
	if err != nil {
		return err
	}
	if *name == "" {
		*name = defaultJobName(*intake, *dataset)
	}
	key, err := loadIntakeKey(*dataDir, *intake)
	if err != nil {
		return err
	}
	red.add(key)
	dp, err := planDataset(ctx, red, *rulesDir, *zone, *dataset, stderr)
	if err != nil {
		return err
	}
	c, avail, want := dp.client, dp.avail, dp.want
	plan := jobPlan{name: *name, dataset: *dataset, destination: destinationConf(base, key)}
	if len(want) == 0 {
		// No field knowledge for this dataset: ask for everything.
		plan.fields = slices.Sorted(maps.Keys(avail))
	} else {
		for f := range want {
			if _, ok := avail[f]; ok {
				plan.fields = append(plan.fields, f)
			}
		}
		sort.Strings(plan.fields)
	}
	if len(plan.fields) == 0 {
		return fmt.Errorf("dataset %s offers none of the fields raywatch needs on zone %s", *dataset, *zone)
	}

	fmt.Fprintf(stdout, "zone:        %s\n", *zone)
	fmt.Fprintf(stdout, "dataset:     %s\n", *dataset)
	fmt.Fprintf(stdout, "intake:      %s\n", *intake)
	fmt.Fprintf(stdout, "job name:    %s\n", *name)
	fmt.Fprintf(stdout, "destination: %s\n", maskDestination(plan.destination))
	fmt.Fprintf(stdout, "fields (%d): %s\n", len(plan.fields), strings.Join(plan.fields, ","))
	if missing := unavailable(want, avail); len(missing) > 0 {
		fmt.Fprintf(stdout, "not offered on this zone, left out: %s\n", describeUnavailable(missing, want))
	}

	var vp logpush.ValidateDestinationParams
	vp.ZoneID.Value, vp.ZoneID.Present = *zone, true
	vp.DestinationConf.Value, vp.DestinationConf.Present = plan.destination, true
	v, err := c.logpush.Validate.Destination(ctx, vp)
	if err != nil {
		return explainAPI("validate the destination", err)
	}
	if !v.Valid {
		msg := v.Message
		if msg == "" {
			msg = "no reason given"
		}
		return fmt.Errorf("validate the destination: Cloudflare says it is not valid: %s\n  hint: %s", msg, hintValidation)
	}
	fmt.Fprintln(stdout, "Cloudflare validated the destination.")

	jobs, err := c.jobs(ctx, *zone)
	if err != nil {
		return err
	}
	var existing []logpush.LogpushJob
	for _, j := range jobs {
		if j.Name == plan.name {
			existing = append(existing, j)
		}
	}
	switch {
	case len(existing) > 1:
		ids := make([]string, len(existing))
		for i, j := range existing {
			ids[i] = fmt.Sprint(j.ID)
		}
		return fmt.Errorf("%d Logpush jobs on zone %s are named %q (ids %s); delete the extra ones or choose another --name", len(existing), *zone, plan.name, strings.Join(ids, ", "))
	case len(existing) == 1 && string(existing[0].Dataset) != plan.dataset:
		return fmt.Errorf("job %d named %q exports dataset %s, not %s (a job's dataset cannot be changed); choose another --name", existing[0].ID, plan.name, existing[0].Dataset, plan.dataset)
	case len(existing) == 0:
		if *dryRun {
			fmt.Fprintf(stdout, "dry run: would create Logpush job %q.\n", plan.name)
			return nil
		}
		// No retry: a create that timed out may have succeeded, and a
		// second one would make a duplicate job.
		job, err := c.logpush.Jobs.New(ctx, plan.newParams(*zone), option.WithMaxRetries(0))
		if err != nil {
			return explainAPI("create the Logpush job", err)
		}
		fmt.Fprintf(stdout, "created Logpush job %d %q.\n", job.ID, job.Name)
		return nil
	}
	job := existing[0]
	changes := plan.diff(job)
	if len(changes) == 0 {
		fmt.Fprintf(stdout, "Logpush job %d %q is up to date; nothing changed.\n", job.ID, job.Name)
		return nil
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: would update Logpush job %d %q: %s.\n", job.ID, job.Name, strings.Join(changes, "; "))
		return nil
	}
	if _, err := c.logpush.Jobs.Update(ctx, job.ID, plan.updateParams(*zone, job)); err != nil {
		return explainAPI(fmt.Sprintf("update Logpush job %d", job.ID), err)
	}
	fmt.Fprintf(stdout, "updated Logpush job %d %q: %s.\n", job.ID, job.Name, strings.Join(changes, "; "))
	return nil
}

var jobNameUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// defaultJobName names the job after the intake and dataset, in the
// characters Logpush accepts in a job name.
func defaultJobName(intake, dataset string) string {
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

// LogpushJobStatus is the state of one Logpush job that delivers to a
// raywatch intake.
type LogpushJobStatus struct {
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
func (s LogpushJobStatus) Failing() bool {
	return !s.LastError.IsZero() && s.LastError.After(s.LastComplete)
}

// raywatchJobs returns the zone's Logpush jobs that deliver to a raywatch
// intake (destination path /plain/batch with an X-SEKOIAIO-INTAKE-KEY
// header), naming the local intake whose key each sends when keys (intake
// name → key) holds it.
func (c *cfClient) raywatchJobs(ctx context.Context, zone, zoneName string, keys map[string]string) ([]LogpushJobStatus, error) {
	jobs, err := c.jobs(ctx, zone)
	if err != nil {
		return nil, err
	}
	var out []LogpushJobStatus
	for _, j := range jobs {
		key, ok := raywatchIntakeKey(j.DestinationConf)
		if !ok {
			continue
		}
		s := LogpushJobStatus{
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

func cfStatusCmd(ctx context.Context, args []string, red *redactor, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("raywatch cloudflare status", flag.ContinueOnError)
	fset.SetOutput(stderr)
	zone := fset.String("zone", "", "zone ID; without it, every zone the credentials can read")
	dataDir := fset.String("data-dir", envOr("RAYWATCH_DATA_DIR", "./raywatch-data"), "raywatch's data folder, to name the intake of each job (RAYWATCH_DATA_DIR)")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "raywatch cloudflare status: unexpected argument %q\n", fset.Arg(0))
		return errUsage
	}
	keys := localIntakeKeys(*dataDir)
	for _, k := range keys {
		red.add(k)
	}
	c, err := newCFClient(red)
	if err != nil {
		return err
	}
	all, err := c.allRaywatchJobs(ctx, *zone, keys)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		fmt.Fprintln(stdout, "No Logpush job delivers to a raywatch intake; create one with:\n  raywatch cloudflare connect --zone ZONE_ID --url https://YOUR-RAYWATCH-HOST")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ZONE\tJOB\tNAME\tDATASET\tHOST\tINTAKE\tENABLED\tLAST COMPLETE\tLAST ERROR\tERROR MESSAGE")
	for _, s := range all {
		z := s.ZoneName
		if z == "" {
			z = s.Zone
		}
		intake := s.Intake
		if intake == "" {
			intake = "(other key)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", z, s.ID, s.Name, s.Dataset, s.Host, intake,
			s.Enabled, fmtTime(s.LastComplete), fmtTime(s.LastError), orDash(red.replace(s.ErrorMessage)))
	}
	tw.Flush()
	for _, s := range all {
		switch {
		case !s.Enabled:
			fmt.Fprintf(stdout, "job %d %q is disabled; raywatch cloudflare connect re-enables it.\n", s.ID, s.Name)
		case s.Failing():
			fmt.Fprintf(stdout, "job %d %q is failing since %s.\n", s.ID, s.Name, fmtTime(s.LastError))
		}
	}
	return nil
}

// allRaywatchJobs returns the jobs delivering to raywatch in zone, or in
// every zone the credentials can read when zone is "".
func (c *cfClient) allRaywatchJobs(ctx context.Context, zone string, keys map[string]string) ([]LogpushJobStatus, error) {
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
	var all []LogpushJobStatus
	for _, z := range zs {
		js, err := c.raywatchJobs(ctx, z.id, z.name, keys)
		if err != nil {
			return nil, err
		}
		all = append(all, js...)
	}
	return all, nil
}

// localIntakeKeys returns the intake keys raywatch serve would use, or
// none when they cannot be read (status works without them).
func localIntakeKeys(dataDir string) map[string]string {
	keys, err := parseIntakeKeys()
	if err == nil && len(keys) > 0 {
		return keys
	}
	b, err := os.ReadFile(keyFile(dataDir))
	if err != nil {
		return nil
	}
	if k := strings.TrimSpace(string(b)); k != "" {
		return map[string]string{"default": k}
	}
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
