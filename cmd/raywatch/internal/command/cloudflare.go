package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/coverage"
	"github.com/raywatch/raywatch/engine"
)

const cloudflareUsage = `Usage:
  raywatch cloudflare fields  --zone ZONE_ID [--dataset http_requests] [--rules-dir DIR]
  raywatch cloudflare connect --zone ZONE_ID --url https://HOST[:PORT] [--dataset http_requests]
                              [--intake NAME] [--name JOB_NAME] [--data-dir DIR] [--rules-dir DIR] [--dry-run]
                              [--block-list NAME [--block-action block|managed_challenge]]
  raywatch cloudflare status  [--zone ZONE_ID] [--data-dir DIR] [--block-list NAME]

connect --block-list (with or without --url) also creates the account IP list NAME if missing and
the zone's WAF custom rule "ip.src in $NAME" that blocks or challenges what raywatch serve
--block-list NAME lists there; a second run changes nothing.

Credentials come from the environment, as Cloudflare documents them:
  CLOUDFLARE_API_TOKEN                      an API token with Logs Edit on the zone (preferred;
                                            status without --zone also needs Zone Read)
  CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY   or the account e-mail and global API key
CLOUDFLARE_ACCOUNT_ID                       the account of the block list (default: the zone's);
                                            --block-list needs Account Filter Lists Edit and Zone WAF Edit
RAYWATCH_CLOUDFLARE_API_URL replaces the API's base URL (a proxy, a test server).
`

// cloudflareCmd is raywatch cloudflare fields|connect|status. Every
// secret (API credentials, intake keys) is masked in what it prints.
func cloudflareCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, cloudflareUsage)
		return errUsage
	}
	red := &cloudflare.Redactor{}
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
		fmt.Fprintf(stderr, "raywatch cloudflare: unknown command %q\nrun 'raywatch cloudflare help' for its commands\n", args[0])
		return errUsage
	}
	if err == nil || errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) || errors.Is(err, errReported) {
		return err
	}
	return cloudflare.Redact(err, red)
}

// ruleNeeds loads the rules raywatch serve would run and returns their
// needs.
func ruleNeeds(rulesDir string, stderr io.Writer) ([]coverage.RuleNeeds, error) {
	rs, problems, err := engine.LoadRules(rulesDir)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "raywatch cloudflare: skipped rule %v\n", p)
	}
	return coverage.Needs(rs)
}

// requireZone checks that --zone was given and nothing else.
func requireZone(zone string, fset *flag.FlagSet, stderr io.Writer) error {
	if err := noArgs(fset, stderr); err != nil {
		return err
	}
	if zone == "" {
		fmt.Fprintf(stderr, "%s: --zone ZONE_ID is required (the zone ID is on the zone's Overview page in the Cloudflare dashboard)\n", fset.Name())
		return errUsage
	}
	return nil
}

func cfFieldsCmd(ctx context.Context, args []string, red *cloudflare.Redactor, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("raywatch cloudflare fields", flag.ContinueOnError)
	zone := fset.String("zone", "", "zone ID (32 hex characters, from the zone's Overview page)")
	dataset := fset.String("dataset", "http_requests", "Logpush dataset")
	rulesDir := fset.String("rules-dir", getenv.Or("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	if err := parseFlags(fset, args, stderr); err != nil {
		return err
	}
	if err := requireZone(*zone, fset, stderr); err != nil {
		return err
	}
	needs, err := ruleNeeds(*rulesDir, stderr)
	if err != nil {
		return err
	}
	c, err := cloudflare.NewClient(app.CloudflareCredentials(getenv), red)
	if err != nil {
		return err
	}
	dp, err := c.PlanDataset(ctx, *zone, *dataset, needs)
	if err != nil {
		return err
	}
	printFields(stdout, *zone, *dataset, dp)
	return nil
}

// printFields prints the fields of a dataset and who reads each.
func printFields(stdout io.Writer, zone, dataset string, dp cloudflare.Plan) {
	fmt.Fprintf(stdout, "Dataset %s on zone %s offers %d fields.\n", dataset, zone, len(dp.Avail))
	if dataset != "http_requests" {
		fmt.Fprintf(stdout, "raywatch's rules read http_requests; no field of %s is marked.\n", dataset)
	} else {
		fmt.Fprintln(stdout, "* = an enabled rule or the IOC matcher reads it, + = recommended context; raywatch cloudflare connect asks for both.")
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tFIELD\tUSED BY")
	for _, name := range slices.Sorted(maps.Keys(dp.Avail)) {
		mark, use := "", ""
		if u := dp.Want[name]; u != nil {
			mark, use = "+", u.String()
			if len(u.Rules) > 0 || u.IOC {
				mark = "*"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", mark, name, use)
	}
	tw.Flush()
	if missing := cloudflare.Unavailable(dp.Want, dp.Avail); len(missing) > 0 {
		fmt.Fprintf(stdout, "\nNot offered on this zone: %s.\n", cloudflare.DescribeUnavailable(missing, dp.Want))
	}
	for _, rn := range dp.Needs {
		if len(rn.Unknown) > 0 && dataset == "http_requests" {
			fmt.Fprintf(stdout, "Rule %q tests %s, which no Logpush field feeds.\n", rn.Title, strings.Join(rn.Unknown, ", "))
		}
	}
	if len(dp.Want) > 0 {
		fmt.Fprintf(stdout, "\nraywatch cloudflare connect --zone %s --url https://YOUR-RAYWATCH-HOST creates a job with the marked fields.\n", zone)
	}
}

func cfConnectCmd(ctx context.Context, args []string, red *cloudflare.Redactor, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("raywatch cloudflare connect", flag.ContinueOnError)
	var o cloudflare.ConnectOptions
	fset.StringVar(&o.Zone, "zone", "", "zone ID (32 hex characters, from the zone's Overview page)")
	rawURL := fset.String("url", "", "public HTTPS address of raywatch, https://HOST[:PORT]")
	fset.StringVar(&o.Dataset, "dataset", "http_requests", "Logpush dataset")
	fset.StringVar(&o.Intake, "intake", "default", "raywatch intake whose key the job sends")
	fset.StringVar(&o.Name, "name", "", `Logpush job name (default "raywatch-INTAKE-DATASET")`)
	dataDir := fset.String("data-dir", getenv.Or("RAYWATCH_DATA_DIR", "./raywatch-data"), "raywatch's data folder, where serve keeps the generated intake key (RAYWATCH_DATA_DIR)")
	rulesDir := fset.String("rules-dir", getenv.Or("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	fset.BoolVar(&o.DryRun, "dry-run", false, "show what would change without creating or updating the job")
	blockList := fset.String("block-list", getenv.Or("RAYWATCH_BLOCK_LIST", ""), "account IP list that raywatch serve --block-list fills: create it if missing, and the zone's WAF custom rule that applies it (RAYWATCH_BLOCK_LIST)")
	blockAction := fset.String("block-action", cloudflare.ActionManagedChallenge, "what the WAF custom rule does to the listed addresses: block or managed_challenge")
	if err := parseFlags(fset, args, stderr); err != nil {
		return err
	}
	if err := requireZone(o.Zone, fset, stderr); err != nil {
		return err
	}
	if *rawURL == "" && *blockList == "" {
		fmt.Fprintln(stderr, "raywatch cloudflare connect: --url https://HOST[:PORT] is required (raywatch's public HTTPS address), or --block-list NAME for the WAF rule alone")
		return errUsage
	}
	if *blockList != "" {
		if err := cloudflare.CheckListName("--block-list", *blockList); err != nil {
			return err
		}
		if !slices.Contains(cloudflare.BlockActions, *blockAction) {
			return fmt.Errorf("--block-action %q: want %s", *blockAction, strings.Join(cloudflare.BlockActions, " or "))
		}
	}
	if *rawURL != "" {
		if err := connectJob(ctx, o, *rawURL, *dataDir, *rulesDir, red, stdout, stderr); err != nil {
			return err
		}
	}
	if *blockList == "" {
		return nil
	}
	c, err := cloudflare.NewClient(app.CloudflareCredentials(getenv), red)
	if err != nil {
		return err
	}
	return c.ConnectBlockList(ctx, cloudflare.BlockConnectOptions{
		Zone: o.Zone, Account: getenv("CLOUDFLARE_ACCOUNT_ID"), List: *blockList, Action: *blockAction, DryRun: o.DryRun,
	}, stdout)
}

// connectJob creates or updates the Logpush job of connect.
func connectJob(ctx context.Context, o cloudflare.ConnectOptions, rawURL, dataDir, rulesDir string, red *cloudflare.Redactor, stdout, stderr io.Writer) error {
	var err error
	if o.URL, err = cloudflare.ParseURL(rawURL); err != nil {
		return err
	}
	if o.Name == "" {
		o.Name = cloudflare.DefaultJobName(o.Intake, o.Dataset)
	}
	if o.Key, err = app.IntakeKey(getenv, dataDir, o.Intake); err != nil {
		return err
	}
	red.Add(o.Key)
	if o.Needs, err = ruleNeeds(rulesDir, stderr); err != nil {
		return err
	}
	c, err := cloudflare.NewClient(app.CloudflareCredentials(getenv), red)
	if err != nil {
		return err
	}
	return c.Connect(ctx, o, stdout)
}

func cfStatusCmd(ctx context.Context, args []string, red *cloudflare.Redactor, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("raywatch cloudflare status", flag.ContinueOnError)
	zone := fset.String("zone", "", "zone ID; without it, every zone the credentials can read")
	dataDir := fset.String("data-dir", getenv.Or("RAYWATCH_DATA_DIR", "./raywatch-data"), "raywatch's data folder, to name the intake of each job (RAYWATCH_DATA_DIR)")
	blockList := fset.String("block-list", getenv.Or("RAYWATCH_BLOCK_LIST", ""), "also show the size of this block list and the WAF custom rule that applies it (RAYWATCH_BLOCK_LIST)")
	if err := parseFlags(fset, args, stderr); err != nil {
		return err
	}
	if err := noArgs(fset, stderr); err != nil {
		return err
	}
	keys := app.LocalIntakeKeys(getenv, *dataDir)
	for _, k := range keys {
		red.Add(k)
	}
	c, err := cloudflare.NewClient(app.CloudflareCredentials(getenv), red)
	if err != nil {
		return err
	}
	all, err := c.AllJobs(ctx, *zone, keys)
	if err != nil {
		return err
	}
	printJobs(stdout, all, red)
	if *blockList == "" {
		return nil
	}
	st, err := c.BlockListStatus(ctx, getenv("CLOUDFLARE_ACCOUNT_ID"), *zone, *blockList)
	if err != nil {
		return err
	}
	printBlockStatus(stdout, *blockList, *zone, st)
	return nil
}

// printBlockStatus prints the size of the block list and its WAF rules.
func printBlockStatus(stdout io.Writer, list, zone string, st cloudflare.BlockStatus) {
	fmt.Fprintln(stdout)
	if st.Exists {
		fmt.Fprintf(stdout, "Block list %s (account %s): %d addresses.\n", list, st.Account, st.List.Items)
	} else {
		fmt.Fprintf(stdout, "Block list %s does not exist in account %s yet: raywatch serve --block-list %s creates it.\n", list, st.Account, list)
	}
	for _, r := range st.Rules {
		state := "enabled"
		if !r.Enabled {
			state = "DISABLED"
		}
		fmt.Fprintf(stdout, "WAF custom rule %s on zone %s: %s when %s (%s).\n", r.ID, r.Zone, r.Action, r.Expression, state)
	}
	for _, z := range st.Without {
		zoneArg := zone
		if zoneArg == "" {
			zoneArg = "ZONE_ID"
		}
		fmt.Fprintf(stdout, "No WAF custom rule on zone %s applies the list; the addresses it holds are not blocked there: raywatch cloudflare connect --zone %s --block-list %s --block-action block\n", z, zoneArg, list)
	}
}

// printJobs prints the jobs that deliver to raywatch and what is wrong
// with them.
func printJobs(stdout io.Writer, all []cloudflare.JobStatus, red *cloudflare.Redactor) {
	if len(all) == 0 {
		fmt.Fprintln(stdout, "No Logpush job delivers to a raywatch intake; create one with:\n  raywatch cloudflare connect --zone ZONE_ID --url https://YOUR-RAYWATCH-HOST")
		return
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
			s.Enabled, fmtTime(s.LastComplete), fmtTime(s.LastError), orDash(red.Replace(s.ErrorMessage)))
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
