package command

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/coverage"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/rules"
)

// rulesCmd is raywatch rules list|check.
func rulesCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "check") {
		fmt.Fprintln(stderr, "Usage: raywatch rules list [--json] [--rules-dir DIR] | raywatch rules check [--rules-dir DIR] | raywatch rules test [--rules-dir DIR] [--junit FILE] CASES_DIR")
		return errUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("raywatch rules "+sub, flag.ContinueOnError)
	var cfg app.Config
	fs.StringVar(&cfg.RulesDir, "rules-dir", getenv.Or("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	cfg.RuleFlags(fs, getenv)
	asJSON := false
	if sub == "list" {
		fs.BoolVar(&asJSON, "json", false, "print a JSON array")
		fs.StringVar(&cfg.DataDir, "data-dir", getenv.Or("RAYWATCH_DATA_DIR", "./raywatch-data"), "raywatch's data folder, to tell from the fields recent records carried whether each rule can fire (RAYWATCH_DATA_DIR)")
	}
	if err := parseFlags(fs, args[1:], stderr); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	eng, problems, err := app.NewEngine(cfg, nil)
	if err != nil {
		return err
	}
	if sub == "list" {
		return rulesList(eng, cfg.DataDir, asJSON, problems, stdout, stderr)
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "%v\n", p)
	}
	fmt.Fprintf(stdout, "%d rules loaded, %d errors\n", len(eng.Rules()), len(problems))
	if len(problems) > 0 {
		return errReported
	}
	return nil
}

// rulesList prints the rules, with the coverage serve last saved in
// dataDir.
func rulesList(eng *engine.Engine, dataDir string, asJSON bool, problems []*rules.LoadError, stdout, stderr io.Writer) error {
	statuses := eng.Rules()
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
		Coverage []coverage.RuleState `json:"coverage,omitempty"`
	}
	cov := coverage.Load(coverage.File(dataDir))
	var needs []coverage.RuleNeeds
	if cov != nil {
		needs, _ = coverage.Needs(app.EnabledRules(eng))
	}
	byRule := map[string][]coverage.RuleState{}
	var reports []coverage.Report
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
}

// coverageCell sums up a rule's coverage for the rules list table: "ok",
// "?" (nothing known), or the intakes on which it is blind and why.
func coverageCell(cs []coverage.RuleState) string {
	if len(cs) == 0 {
		return "?"
	}
	var blind []string
	for _, c := range cs {
		if c.State == coverage.Blind {
			blind = append(blind, fmt.Sprintf("blind on %s (no %s)", c.Intake, strings.Join(c.Missing, ", ")))
		}
	}
	if len(blind) == 0 {
		return "ok"
	}
	return strings.Join(blind, "; ")
}
