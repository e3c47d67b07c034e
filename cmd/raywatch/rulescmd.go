package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

func rulesCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "check") {
		fmt.Fprintln(stderr, "Usage: raywatch rules list [--json] [--rules-dir DIR] | raywatch rules check [--rules-dir DIR]")
		return errUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("raywatch rules "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.RulesDir, "rules-dir", envOr("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	cfg.ruleFlags(fs)
	asJSON := false
	if sub == "list" {
		fs.BoolVar(&asJSON, "json", false, "print a JSON array")
		fs.StringVar(&cfg.DataDir, "data-dir", envOr("RAYWATCH_DATA_DIR", "./raywatch-data"), "raywatch's data folder, to tell from the fields recent records carried whether each rule can fire (RAYWATCH_DATA_DIR)")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	eng, problems, err := newEngine(cfg)
	if err != nil {
		return err
	}
	statuses := eng.Rules()
	switch sub {
	case "list":
		type entry struct {
			ID      string `json:"id"`
			Title   string `json:"title"`
			Level   string `json:"level"`
			Status  string `json:"status"`
			Source  string `json:"source"`
			File    string `json:"file"`
			Kind    string `json:"kind"`
			Enabled bool   `json:"enabled"`
			// Coverage says, per intake that has received records (as
			// raywatch serve last saved them), whether the fields the rule
			// needs are arriving.
			Coverage []RuleCoverage `json:"coverage,omitempty"`
		}
		cov := loadCoverage(coverageFile(cfg.DataDir))
		var needs []RuleNeeds
		if cov != nil {
			needs, _ = rulesNeeds(enabledRules(eng))
		}
		byRule := map[string][]RuleCoverage{}
		var reports []CoverageReport
		if cov != nil {
			reports = cov.Reports(needs)
			for _, rep := range reports {
				for _, rc := range cov.Rules(rep.Intake, needs) {
					byRule[rc.RuleID] = append(byRule[rc.RuleID], rc)
				}
			}
		}
		list := make([]entry, 0, len(statuses))
		for _, r := range statuses {
			list = append(list, entry{r.ID, r.Title, r.Level, r.Status, r.Source, r.File, r.Kind(), r.Enabled, byRule[r.ID]})
		}
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(list); err != nil {
				return err
			}
		} else {
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tLEVEL\tSTATUS\tENABLED\tFIELDS\tSOURCE\tTITLE")
			for _, e := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", e.ID, e.Level, e.Status, e.Enabled, coverageCell(e.Coverage), e.Source, e.Title)
			}
			tw.Flush()
			for _, rep := range reports {
				if len(rep.Blind) > 0 {
					fmt.Fprintf(stdout, "\n%s\nFix: %s\n", rep.Message(), rep.FixCommand("", ""))
				}
			}
		}
		for _, p := range problems {
			fmt.Fprintf(stderr, "raywatch rules: skipped %v\n", p)
		}
		return nil
	default: // check
		for _, p := range problems {
			fmt.Fprintf(stdout, "%v\n", p)
		}
		fmt.Fprintf(stdout, "%d rules loaded, %d errors\n", len(statuses), len(problems))
		if len(problems) > 0 {
			return errReported
		}
		return nil
	}
}

// coverageCell sums up a rule's coverage for the rules list table: "ok",
// "?" (nothing known), or the intakes on which it is blind and why.
func coverageCell(cs []RuleCoverage) string {
	if len(cs) == 0 {
		return "?"
	}
	var blind []string
	for _, c := range cs {
		if c.State == CoverageBlind {
			blind = append(blind, fmt.Sprintf("blind on %s (no %s)", c.Intake, strings.Join(c.Missing, ", ")))
		}
	}
	if len(blind) == 0 {
		return "ok"
	}
	return strings.Join(blind, "; ")
}
