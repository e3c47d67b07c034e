package command

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/coverage"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/rules"
)

// rulesUsage is the usage line of raywatch rules.
const rulesUsage = `Usage: raywatch rules list [--json] [--rules-dir DIR]
       raywatch rules check [--rules-dir DIR] [--allow-skipped] [--allow-unable]
       raywatch rules exceptions [--sigma | --json] [--data-dir DIR | --url URL]
       raywatch rules test [--rules-dir DIR] [--ioc-dir DIR] [--junit FILE] CASES_DIR`

// rulesCmd is raywatch rules list|check|exceptions.
func rulesCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "exceptions" {
		return rulesExceptionsCmd(args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "check") {
		fmt.Fprintln(stderr, rulesUsage)
		return errUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("raywatch rules "+sub, flag.ContinueOnError)
	var cfg app.Config
	fs.StringVar(&cfg.RulesDir, "rules-dir", getenv.Or("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	cfg.RuleFlags(fs, getenv)
	asJSON := false
	var allow checkAllow
	if sub == "list" {
		fs.BoolVar(&asJSON, "json", false, "print a JSON array")
		fs.StringVar(&cfg.DataDir, "data-dir", getenv.Or("RAYWATCH_DATA_DIR", "./raywatch-data"), "raywatch's data folder, to tell from the fields recent records carried whether each rule can fire (RAYWATCH_DATA_DIR)")
	} else {
		fs.BoolVar(&allow.skipped, "allow-skipped", false, "exit 0 even when rules are skipped (deprecated or unsupported status)")
		fs.BoolVar(&allow.unable, "allow-unable", false, "exit 0 even when rules are unable to fire (a logsource that is not web traffic, or a field no Cloudflare record carries)")
	}
	if err := parseFlags(fs, args[1:], stderr); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	eng, rep, err := app.LoadEngine(cfg, nil)
	if err != nil {
		return err
	}
	if sub == "list" {
		return rulesList(eng, cfg.DataDir, asJSON, rep, stdout, stderr)
	}
	return rulesCheck(eng, rep, allow, stdout)
}

// checkAllow are the problems that rules check accepts.
type checkAllow struct{ skipped, unable bool }

// rulesCheck prints every problem of the rules, with file and line: load
// errors, skipped rules, rules disabled by --disable-rules and rules
// unable to fire; then the counts. It fails (exit 1) on a load error, and
// on a skipped rule or one unable to fire unless allow says otherwise.
func rulesCheck(eng *engine.Engine, rep app.RuleReport, allow checkAllow, stdout io.Writer) error {
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "%v\n", p)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(stdout, "%s: skipped: %q (%s)\n", fileLine(s.File, s.Line), s.Title, s.Reason)
	}
	statuses := eng.Rules()
	disabled := 0
	for _, r := range statuses {
		if !r.Enabled {
			disabled++
			fmt.Fprintf(stdout, "%s: skipped: %q (disabled by --disable-rules)\n", ruleFile(r), r.Title)
		}
	}
	unable := app.Unable(eng)
	for _, r := range unable {
		h := r.Health
		fmt.Fprintf(stdout, "%s: unable to fire: %q: %s\n", fileLine(h.File, h.Line), r.Title, h.Reason)
	}
	fmt.Fprintf(stdout, "%d rules loaded, %d errors, %d skipped, %d unable to fire", len(statuses), len(rep.Problems), len(rep.Skipped), len(unable))
	if disabled > 0 {
		fmt.Fprintf(stdout, ", %d disabled", disabled)
	}
	fmt.Fprintln(stdout)
	fail := len(rep.Problems) > 0
	var hints []string
	if len(rep.Skipped) > 0 && !allow.skipped {
		fail = true
		hints = append(hints, "--allow-skipped")
	}
	if len(unable) > 0 && !allow.unable {
		fail = true
		hints = append(hints, "--allow-unable")
	}
	if len(hints) > 0 && len(rep.Problems) == 0 {
		fmt.Fprintf(stdout, "(%s to accept these)\n", strings.Join(hints, " and "))
	}
	if fail {
		return errReported
	}
	return nil
}

// fileLine is FILE:LINE, or FILE when the line is unknown.
func fileLine(file string, line int) string {
	if line > 0 {
		return fmt.Sprintf("%s:%d", file, line)
	}
	return file
}

// ruleFile is the path of a rule's file as problems name it.
func ruleFile(r engine.RuleStatus) string {
	if r.Source != "" && r.Source != rules.SourceBuiltin {
		return filepath.Join(r.Source, r.File)
	}
	return r.File
}

// rulesList prints the rules, with the coverage serve last saved in
// dataDir, then (on stderr) the files that failed and the rules skipped.
func rulesList(eng *engine.Engine, dataDir string, asJSON bool, rep app.RuleReport, stdout, stderr io.Writer) error {
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
		// Health says whether the rule can fire on raywatch's events at
		// all.
		Health engine.Health `json:"health"`
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
		list = append(list, entry{r.ID, r.Title, r.Level, r.Status, r.Source, r.File, r.Kind(), r.Enabled, r.Health, byRule[r.ID]})
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tLEVEL\tSTATUS\tENABLED\tHEALTH\tFIELDS\tSOURCE\tTITLE")
		for _, e := range list {
			health, fields := "ok", coverageCell(e.Coverage)
			if e.Health.State == engine.HealthUnable {
				health, fields = "unable", "-"
			}
			if e.Kind == rules.KindFilter {
				fields = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\t%s\n", e.ID, e.Kind, e.Level, e.Status, e.Enabled, health, fields, e.Source, e.Title)
		}
		tw.Flush()
		for _, e := range list {
			if h := e.Health; h.State == engine.HealthUnable {
				fmt.Fprintf(stdout, "unable to fire (not evaluated): %s: %q: %s\n", fileLine(h.File, h.Line), e.Title, h.Reason)
			}
		}
		for _, rep := range reports {
			if len(rep.Blind) > 0 {
				fmt.Fprintf(stdout, "\n%s\nFix: %s\n", rep.Message(), rep.FixCommand("", ""))
			}
		}
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stderr, "raywatch rules: skipped %v\n", p)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(stderr, "raywatch rules: skipped %s: %q (%s)\n", fileLine(s.File, s.Line), s.Title, s.Reason)
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
