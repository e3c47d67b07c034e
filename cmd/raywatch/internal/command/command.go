// Package command is raywatch's command line: one file per command, each
// parsing its flags, calling the package that does the work and printing
// the outcome. [Run] is main without the process: tests call it.
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
)

var (
	// errUsage means the command line was wrong and the user was told
	// why: exit 2.
	errUsage = errors.New("usage")
	// errReported means the problems were already printed: exit 1.
	errReported = errors.New("problems reported")
)

// exitError carries an exit status whose reason was already printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// getenv reads the environment; every command reads it through here.
var getenv app.Env = os.Getenv

// Run executes the command line args (without the program name) and
// returns the exit status. With no command (no argument, or a flag first)
// it runs serve. It reads stdin only for `scan -` and `normalize -`.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "-help" || a == "--help":
			cmd, args = "help", args[1:]
		case a == "-version" || a == "--version":
			cmd, args = "version", args[1:]
		case !strings.HasPrefix(a, "-"):
			cmd, args = a, args[1:]
		}
	}
	var err error
	switch cmd {
	case "serve":
		err = serveCmd(ctx, args, stderr)
	case "scan":
		err = scanCmd(ctx, args, stdin, stdout, stderr)
	case "replay":
		err = replayCmd(ctx, args, stdout, stderr)
	case "normalize":
		err = normalizeCmd(ctx, args, stdin, stdout, stderr)
	case "rules":
		if len(args) > 0 && args[0] == "test" {
			err = rulesTestCmd(ctx, args[1:], stdout, stderr)
		} else {
			err = rulesCmd(args, stdout, stderr)
		}
	case "cloudflare":
		err = cloudflareCmd(ctx, args, stdout, stderr)
	case "bench":
		err = benchCmd(ctx, args, stdout, stderr)
	case "store":
		err = storeCmd(args, stdout, stderr)
	case "version":
		err = versionCmd(args, stdout, stderr)
	case "help":
		err = helpCmd(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "raywatch: unknown command %q\nrun 'raywatch help' for the commands\n", cmd)
		return 2
	}
	var code exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		fmt.Fprintf(stderr, "raywatch %s: %v\n", cmd, err)
		return 1
	}
}

// parseFlags parses args into fs. A wrong flag is one line on stderr and a
// hint at -h (errUsage), not the whole usage; -h prints the usage
// (flag.ErrHelp).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\nrun '%s -h' for its flags\n", fs.Name(), err, fs.Name())
		return errUsage
	}
	return nil
}

// noArgs refuses arguments after the flags.
func noArgs(fs *flag.FlagSet, stderr io.Writer) error {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\nrun '%s -h' for its flags\n", fs.Name(), fs.Arg(0), fs.Name())
		return errUsage
	}
	return nil
}

// newLogger is the one logger of a command: text on w at level.
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
