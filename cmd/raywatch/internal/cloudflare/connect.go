package cloudflare

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/cloudflare/cloudflare-go/v6/logpush"
	"github.com/cloudflare/cloudflare-go/v6/option"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/coverage"
)

// ConnectOptions says which Logpush job [Client.Connect] makes.
type ConnectOptions struct {
	Zone, Dataset string
	// Intake and Key are the raywatch intake whose key the job sends.
	Intake, Key string
	// Name is the job's name; see [DefaultJobName].
	Name string
	// URL is raywatch's public base address (see [ParseURL]).
	URL *url.URL
	// Needs are the enabled rules' needs.
	Needs []coverage.RuleNeeds
	// DryRun says what would change without changing it.
	DryRun bool
}

// Connect creates the zone's Logpush job that delivers the dataset to
// raywatch, with the fields raywatch wants, or updates the job of that
// name; it changes nothing when the job is already right. It prints the
// plan and what it did to out, with the intake key masked.
func (c *Client) Connect(ctx context.Context, o ConnectOptions, out io.Writer) error {
	dp, err := c.PlanDataset(ctx, o.Zone, o.Dataset, o.Needs)
	if err != nil {
		return err
	}
	plan := jobPlan{name: o.Name, dataset: o.Dataset, destination: destinationConf(o.URL, o.Key)}
	if len(dp.Want) == 0 {
		// No field knowledge for this dataset: ask for everything.
		plan.fields = slices.Sorted(maps.Keys(dp.Avail))
	} else {
		for f := range dp.Want {
			if _, ok := dp.Avail[f]; ok {
				plan.fields = append(plan.fields, f)
			}
		}
		sort.Strings(plan.fields)
	}
	if len(plan.fields) == 0 {
		return fmt.Errorf("dataset %s offers none of the fields raywatch needs on zone %s", o.Dataset, o.Zone)
	}
	fmt.Fprintf(out, "zone:        %s\n", o.Zone)
	fmt.Fprintf(out, "dataset:     %s\n", o.Dataset)
	fmt.Fprintf(out, "intake:      %s\n", o.Intake)
	fmt.Fprintf(out, "job name:    %s\n", o.Name)
	fmt.Fprintf(out, "destination: %s\n", maskDestination(plan.destination))
	fmt.Fprintf(out, "fields (%d): %s\n", len(plan.fields), strings.Join(plan.fields, ","))
	if missing := Unavailable(dp.Want, dp.Avail); len(missing) > 0 {
		fmt.Fprintf(out, "not offered on this zone, left out: %s\n", DescribeUnavailable(missing, dp.Want))
	}
	if err := c.validate(ctx, o.Zone, plan.destination); err != nil {
		return err
	}
	fmt.Fprintln(out, "Cloudflare validated the destination.")
	return c.apply(ctx, o, plan, out)
}

// validate asks Cloudflare to deliver a test batch to the destination.
func (c *Client) validate(ctx context.Context, zone, destination string) error {
	var vp logpush.ValidateDestinationParams
	vp.ZoneID.Value, vp.ZoneID.Present = zone, true
	vp.DestinationConf.Value, vp.DestinationConf.Present = destination, true
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
	return nil
}

// apply creates or updates the job of the plan's name.
func (c *Client) apply(ctx context.Context, o ConnectOptions, plan jobPlan, out io.Writer) error {
	jobs, err := c.jobs(ctx, o.Zone)
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
		return fmt.Errorf("%d Logpush jobs on zone %s are named %q (ids %s); delete the extra ones or choose another --name", len(existing), o.Zone, plan.name, strings.Join(ids, ", "))
	case len(existing) == 1 && string(existing[0].Dataset) != plan.dataset:
		return fmt.Errorf("job %d named %q exports dataset %s, not %s (a job's dataset cannot be changed); choose another --name", existing[0].ID, plan.name, existing[0].Dataset, plan.dataset)
	case len(existing) == 0:
		if o.DryRun {
			fmt.Fprintf(out, "dry run: would create Logpush job %q.\n", plan.name)
			return nil
		}
		// No retry: a create that timed out may have succeeded, and a
		// second one would make a duplicate job.
		job, err := c.logpush.Jobs.New(ctx, plan.newParams(o.Zone), option.WithMaxRetries(0))
		if err != nil {
			return explainAPI("create the Logpush job", err)
		}
		fmt.Fprintf(out, "created Logpush job %d %q.\n", job.ID, job.Name)
		return nil
	}
	job := existing[0]
	changes := plan.diff(job)
	if len(changes) == 0 {
		fmt.Fprintf(out, "Logpush job %d %q is up to date; nothing changed.\n", job.ID, job.Name)
		return nil
	}
	if o.DryRun {
		fmt.Fprintf(out, "dry run: would update Logpush job %d %q: %s.\n", job.ID, job.Name, strings.Join(changes, "; "))
		return nil
	}
	if _, err := c.logpush.Jobs.Update(ctx, job.ID, plan.updateParams(o.Zone, job)); err != nil {
		return explainAPI(fmt.Sprintf("update Logpush job %d", job.ID), err)
	}
	fmt.Fprintf(out, "updated Logpush job %d %q: %s.\n", job.ID, job.Name, strings.Join(changes, "; "))
	return nil
}
