package command

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/raywatch/raywatch/store"
)

const storeUsage = `Usage: raywatch store check|recover [--data-dir DIR] [--json]

  check    verify every page of DIR/alerts.db without changing it: the
           meta pages, every bucket's tree, the freelist, every stored
           alert. Exit status 0 when it is sound, 1 when it is damaged
           (each problem is listed), 2 when it cannot be checked (missing,
           or held by a running raywatch).
  recover  copy everything readable from a damaged DIR/alerts.db into a
           new database, move the damaged file aside
           (alerts.db.damaged-TIME) and report what was lost. Stop
           raywatch first. Exit status 0 when the new database is in
           place, 1 otherwise (the damaged file is then left where it was).
`

// storeLockWait is how long check and recover wait for the database's
// lock before saying that a running raywatch holds it.
const storeLockWait = 5 * time.Second

// storeCmd is raywatch store check|recover.
func storeCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, storeUsage)
		return nil
	}
	if len(args) == 0 || (args[0] != "check" && args[0] != "recover") {
		fmt.Fprint(stderr, storeUsage)
		return errUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("raywatch store "+sub, flag.ContinueOnError)
	dataDir := fs.String("data-dir", getenv.Or("RAYWATCH_DATA_DIR", "./raywatch-data"), "raywatch's data folder, which holds alerts.db (RAYWATCH_DATA_DIR)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), storeUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args[1:], stderr); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	path := filepath.Join(*dataDir, "alerts.db")
	if sub == "check" {
		return storeCheck(path, *asJSON, stdout, stderr)
	}
	return storeRecover(path, *asJSON, stdout, stderr)
}

// storeCheck checks the database at path and prints the report: exit 0
// when sound, 1 when damaged, 2 when it cannot be checked.
func storeCheck(path string, asJSON bool, stdout, stderr io.Writer) error {
	rep, err := store.Check(path, storeLockWait)
	if err != nil {
		fmt.Fprintf(stderr, "raywatch store check: %v\n", err)
		return exitError(2)
	}
	if err := printReport(stdout, asJSON, rep, rep.String()); err != nil {
		return err
	}
	if !rep.OK() {
		return errReported
	}
	return nil
}

// storeRecover recovers the database at path and prints what was copied
// and what was lost.
func storeRecover(path string, asJSON bool, stdout, stderr io.Writer) error {
	rep, err := store.Recover(path, store.RecoverOptions{Timeout: storeLockWait})
	if err != nil {
		fmt.Fprintf(stderr, "raywatch store recover: %v\n", err)
		return errReported
	}
	return printReport(stdout, asJSON, rep, rep.String())
}

// printReport prints v as indented JSON, or text.
func printReport(w io.Writer, asJSON bool, v any, text string) error {
	if !asJSON {
		_, err := io.WriteString(w, text)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
