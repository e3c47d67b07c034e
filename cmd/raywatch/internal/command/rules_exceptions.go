package command

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/raywatch/raywatch/rules/exception"
	"github.com/raywatch/raywatch/store"
)

// rulesExceptionsCmd is raywatch rules exceptions: the alert exceptions,
// as a table, JSON or Sigma filters, read from the data folder or, while
// raywatch serve holds it, from the running raywatch's API.
func rulesExceptionsCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("raywatch rules exceptions", flag.ContinueOnError)
	asSigma := fs.Bool("sigma", false, "print the exceptions as Sigma filters (YAML), to keep in git and load from a rules folder")
	asJSON := fs.Bool("json", false, "print a JSON array")
	dataDir := fs.String("data-dir", getenv.Or("RAYWATCH_DATA_DIR", "./raywatch-data"), "raywatch's data folder (RAYWATCH_DATA_DIR)")
	url := fs.String("url", "", "read the exceptions from the raywatch serving at this URL (http://HOST:PORT) instead of the data folder, which it holds; RAYWATCH_DASHBOARD_TOKEN (or _FILE) is sent when set")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	if *asSigma && *asJSON {
		fmt.Fprintln(stderr, "raywatch rules exceptions: --sigma and --json do not go together")
		return errUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var xs []exception.Exception
	var err error
	if *url != "" {
		xs, err = exceptionsFromAPI(ctx, *url)
	} else {
		xs, err = exceptionsFromStore(ctx, *dataDir)
	}
	if err != nil {
		return err
	}
	switch {
	case *asSigma:
		_, err = stdout.Write(exception.ExportSigma(xs))
		return err
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(xs)
	}
	printExceptions(xs, stdout)
	return nil
}

// exceptionsFromStore reads the exceptions of the store of dataDir.
func exceptionsFromStore(ctx context.Context, dataDir string) ([]exception.Exception, error) {
	path := filepath.Join(dataDir, "alerts.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no alert store in --data-dir %s: %w", dataDir, err)
	}
	st, err := store.Open(path, store.Options{Timeout: 200 * time.Millisecond})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w\nwhile raywatch serve runs, read its exceptions with --url http://HOST:PORT", err)
	}
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.ListExceptions(ctx)
}

// exceptionsFromAPI reads GET /api/v1/exceptions of the raywatch at base.
func exceptionsFromAPI(ctx context.Context, base string) ([]exception.Exception, error) {
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("--url %q: want http://HOST:PORT or https://HOST:PORT", base)
	}
	token := getenv("RAYWATCH_DASHBOARD_TOKEN")
	if f := getenv("RAYWATCH_DASHBOARD_TOKEN_FILE"); f != "" && token == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("RAYWATCH_DASHBOARD_TOKEN_FILE: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/v1/exceptions", nil)
	if err != nil {
		return nil, fmt.Errorf("--url %q: %w", base, err)
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read exceptions: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("read exceptions from %s: %s: %s", base, resp.Status, strings.TrimSpace(string(msg)))
	}
	var body struct {
		Exceptions []exception.Exception `json:"exceptions"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("read exceptions from %s: %w", base, err)
	}
	return body.Exceptions, nil
}

// printExceptions prints xs as a table.
func printExceptions(xs []exception.Exception, stdout io.Writer) {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRULE\tMATCH\tEXPIRES\tSUPPRESSED\tLAST SUPPRESSED\tBY\tCOMMENT")
	for _, x := range xs {
		var match []string
		for _, k := range x.Keys() {
			match = append(match, k+"="+strings.Join(x.Match[k], ","))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", x.ID, x.Rule, strings.Join(match, " "), timeOr(x.Expires, "never"),
			x.Suppressed, timeOr(x.LastSuppressed, "-"), x.CreatedBy, strings.ReplaceAll(x.Comment, "\n", " "))
	}
	tw.Flush()
}

// timeOr is t in RFC 3339, or none when t is zero.
func timeOr(t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}
