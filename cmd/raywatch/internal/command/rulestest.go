package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/backtest"
	"github.com/raywatch/raywatch/rules"
)

const rulesTestUsage = `Usage: raywatch rules test [--rules-dir DIR] [--junit FILE] CASES_DIR

Checks the rules (the built-in ones and those of --rules-dir) against
example records: each CASES_DIR/<rule id>/match/*.ndjson file must raise
that rule's alert, each nomatch/*.ndjson file must not. Cases of the
intelligence-feed rule take their indicators from <rule id>/iocs/, else
from --ioc-dir. Prints one line per case and a summary; --junit writes
JUnit XML for CI.

Exit status: 0 every case passed, 1 some failed, 2 usage.

Flags:
`

// rulesTestCmd is raywatch rules test.
func rulesTestCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("raywatch rules test", flag.ContinueOnError)
	var cfg app.Config
	fs.StringVar(&cfg.RulesDir, "rules-dir", getenv.Or("RAYWATCH_RULES_DIR", ""), "folder of Sigma rules loaded on top of the built-in ones (RAYWATCH_RULES_DIR)")
	fs.StringVar(&cfg.IOCDir, "ioc-dir", getenv.Or("RAYWATCH_IOC_DIR", ""), "indicators for the intelligence-feed rule's cases that have no iocs/ folder (RAYWATCH_IOC_DIR)")
	fs.StringVar(&cfg.Dataset, "dataset", "auto", "Logpush dataset of the case records, or auto to recognise it")
	cfg.RuleFlags(fs, getenv)
	junit := fs.String("junit", "", "also write the results as JUnit XML to this file")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), rulesTestUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "raywatch rules test: give one CASES_DIR\nrun 'raywatch rules test -h' for its flags")
		return errUsage
	}
	eng, problems, err := app.NewEngine(cfg, nil)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "raywatch rules test: rule skipped: %v\n", p)
	}
	opts, err := cfg.EngineOptions(nil)
	if err != nil {
		return err
	}
	var rs []rules.Rule
	for _, st := range eng.Rules() {
		rs = append(rs, st.Rule)
	}
	rep, err := backtest.Run(ctx, fs.Arg(0), backtest.Options{Rules: rs, Mapping: opts.Mapping, IOCDir: cfg.IOCDir, Dataset: cfg.Dataset})
	if err != nil {
		return err
	}
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if *junit != "" {
		if err := writeJUnit(*junit, rep); err != nil {
			return err
		}
	}
	if !rep.OK() {
		return errReported
	}
	return nil
}

func writeJUnit(path string, rep *backtest.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	if err := rep.WriteJUnit(f); err != nil {
		f.Close()
		return fmt.Errorf("--junit %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--junit %s: %w", path, err)
	}
	return nil
}
