package command

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
)

// serveCmd runs raywatch serve until ctx ends.
func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg app.Config
	fs := flag.NewFlagSet("raywatch serve", flag.ContinueOnError)
	cfg.ServeFlags(fs, getenv)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: raywatch [serve] [flags]   (every flag also has its RAYWATCH_* variable)")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	if err := cfg.LoadSecrets(getenv); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	a, err := app.New(cfg, newLogger(stderr, cfg.LogLevel), app.Options{Banner: stderr})
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}
