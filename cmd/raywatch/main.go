// Command raywatch is a self-hosted detection engine for Cloudflare HTTP
// logs: Logpush batches in, Sigma rule matches out, as alerts in a bbolt
// store and on a live dashboard. `raywatch help` lists its commands; the
// commands live in internal/command, serve itself in internal/app.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := command.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
