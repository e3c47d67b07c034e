// Command raywatch is a self-hosted detection engine for Cloudflare HTTP
// logs: Logpush batches in, Sigma rule matches out, as alerts in a bbolt
// store and on a live dashboard.
//
// Usage:
//
//	raywatch [serve] [flags]          run the intake, API and dashboard
//	raywatch scan [flags] FILE...     scan log files, print alerts as JSON lines
//	raywatch normalize [flags] FILE... print the ECS document of each record
//	raywatch rules list|check [flags] show or validate the rules
//	raywatch cloudflare fields|connect|status [flags]
//	                                  set up and watch the Logpush job
//	raywatch bench [flags]            measure throughput and latency
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `raywatch: detection engine for Cloudflare HTTP logs

Usage:
  raywatch [serve] [flags]            run the Logpush intake, the API and the dashboard
  raywatch scan [flags] FILE...        scan NDJSON log files (.gz or - for stdin); alerts as JSON lines on stdout
  raywatch normalize [flags] FILE...   print one ECS JSON document per record
  raywatch rules list [--json] [--rules-dir DIR]
  raywatch rules check [--rules-dir DIR]
  raywatch cloudflare fields --zone ZONE_ID
  raywatch cloudflare connect --zone ZONE_ID --url https://HOST[:PORT]
  raywatch cloudflare status [--zone ZONE_ID]
                                       set up the Logpush job and watch it (see "raywatch cloudflare help")
  raywatch bench [--records N] [--rules-dir DIR] [--iocs N] [--json FILE]
                                       measure normalize, engine, scan and the whole HTTP path
                                       against same-run baselines

Run "raywatch COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serveCmd(ctx, args, stderr)
	case "scan":
		err = scanCmd(ctx, args, stdin, stdout, stderr)
	case "normalize":
		err = normalizeCmd(ctx, args, stdin, stdout, stderr)
	case "rules":
		err = rulesCmd(args, stdout, stderr)
	case "cloudflare":
		err = cloudflareCmd(ctx, args, stdout, stderr)
	case "bench":
		err = benchCmd(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "raywatch: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		fmt.Fprintf(stderr, "raywatch %s: %v\n", cmd, err)
		return 1
	}
}

var (
	// errUsage means the command line was wrong; the flag package has said
	// why.
	errUsage = errors.New("usage")
	// errReported means the problems were already printed.
	errReported = errors.New("problems reported")
)

// parseFlags parses args into fs, mapping the flag package's errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
