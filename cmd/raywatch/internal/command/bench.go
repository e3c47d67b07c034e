package command

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/app"
	"github.com/raywatch/raywatch/cmd/raywatch/internal/bench"
)

// benchCmd runs raywatch bench and prints its table (and --json).
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var bc bench.Config
	var jsonFile, phases string
	fs := flag.NewFlagSet("raywatch bench", flag.ContinueOnError)
	fs.IntVar(&bc.Records, "records", 200_000, "http_requests records generated (the whole-path run posts them all)")
	fs.Float64Var(&bc.AttackRate, "attack-rate", 0.001, "fraction of records that are attacks (built-in rules' traffic, IOC hits, SigmaHQ-style paths)")
	fs.StringVar(&bc.RulesDir, "rules-dir", "", "Sigma rules loaded on top of the built-in ones (for example SigmaHQ's)")
	fs.IntVar(&bc.IOCs, "iocs", 100_000, "indicators generated for the intelligence-feed rule (0 for none)")
	fs.IntVar(&bc.Clients, "clients", 4, "concurrent HTTP clients posting gzip'd 1,000-record batches")
	fs.IntVar(&bc.Rate, "rate", 50_000, "records/s offered in the latency phase")
	fs.DurationVar(&bc.Latency, "latency-duration", 10*time.Second, "length of the latency phase (RSS is reported at its start and end: run 10m for a soak) and of the webhook phase's measurement")
	fs.DurationVar(&bc.Outage, "outage", time.Minute, "how long the webhook phase's receiver is down (refusing connections) under the same load, after its latency measurement; 0 skips it")
	fs.StringVar(&jsonFile, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&bc.CPUProfile, "cpuprofile", "", "write a CPU profile from the first phase measured to the end (with --phases http alone it leaves out the server's start) to this file")
	fs.StringVar(&bc.Trace, "trace", "", "write an execution trace of the whole-path phase to this file (go tool trace FILE: where goroutines wait)")
	fs.StringVar(&bc.MemProfile, "memprofile", "", "write a heap profile (what is live, and what was allocated) to this file while the server still runs, after its last phase (and to FILE.1 to FILE.10 during the latency phase)")
	fs.StringVar(&phases, "phases", "normalize,engine,ioc,scan,http,latency", "phases to run; also webhook: 2xx to a signed webhook delivery at --rate, then --outage")
	fs.Uint64Var(&bc.Seed, "seed", 1, "seed of the generated traffic")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 || bc.Records < 1000 || bc.Clients < 1 || bc.Rate < 1000 {
		fmt.Fprintln(stderr, "raywatch bench: --records and --rate must be at least 1000, --clients at least 1, and no arguments")
		return errUsage
	}
	bc.Phases = app.SplitList(phases)
	rep, err := bench.Run(ctx, bc, stderr)
	if err != nil {
		return err
	}
	printBench(stdout, rep)
	if jsonFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonFile, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}

func printBench(w io.Writer, rep *bench.Report) {
	fmt.Fprintf(w, "raywatch bench: %d records of %d bytes, attack rate %g, %d rules, %d IOCs, GOMAXPROCS %d\n\n",
		rep.Records, rep.RecordSize, rep.AttackRate, rep.Rules, rep.IOCs, rep.GoMaxProcs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\trecords/s\tallocs/rec\tbaseline\tbaseline rec/s\tbaseline allocs/rec\tratio")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%s\t%.0f\t%.1f\t%.2fx\n", r.Name, r.RecordsPerSec, r.AllocsPerRecord, r.Baseline, r.BaselinePerSec, r.BaselineAllocs, r.Ratio)
	}
	tw.Flush()
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Name, r.Note)
		}
	}
	if l := rep.Latency; l != nil {
		fmt.Fprintf(w, "\n2xx -> alert on the websocket at %d records/s offered (%.0f achieved) over %.0fs: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d of %d batches seen)\n",
			l.OfferedPerSec, l.AchievedPerSec, l.Seconds, l.P50ms, l.P99ms, l.MaxMs, l.Seen, l.Batches)
		fmt.Fprintf(w, "RSS: %.0f MiB at the start of the latency phase, %.0f MiB at its end\n", l.RSSStartMiB, l.RSSEndMiB)
		fmt.Fprintf(w, "RSS every tenth of the phase (MiB): %s\n", joinFloats(l.RSSMiB))
		fmt.Fprintf(w, "  of which anonymous (heap, stacks): %s\n", joinFloats(l.RSSAnonMiB))
		fmt.Fprintf(w, "  of which mapped files (the bbolt database): %s\n", joinFloats(l.RSSFileMiB))
		fmt.Fprintf(w, "live heap at the last collection, same times (MiB): %s\n", joinFloats(l.HeapMiB))
	}
	if h := rep.Webhook; h != nil {
		printWebhook(w, h)
	}
}

func printWebhook(w io.Writer, h *bench.WebhookReport) {
	fmt.Fprintf(w, "\n2xx -> new alert at the webhook receiver at %d records/s offered (%.0f achieved) over %.0fs: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d of %d batches' alerts received)\n",
		h.OfferedPerSec, h.AchievedPerSec, h.Seconds, h.P50ms, h.P99ms, h.MaxMs, h.Received, h.Batches)
	if o := h.Outage; o != nil {
		fmt.Fprintf(w, "receiver down %.0fs: intake at %.0f records/s meanwhile (%d of %d batches refused); %d deliveries queued at the end, the oldest %.0fs old, %d retries\n",
			o.Seconds, o.AchievedPerSec, o.Refused, o.Batches, o.QueuedAtEnd, o.OldestAtEndSec, o.Retried)
		fmt.Fprintf(w, "receiver back: first delivery after %.1fs (backoff), every new alert of the outage after %.1fs (%d updates of grouped alerts still waiting for their 1-minute spacing); %d of %d alerts of the outage received, %d lost\n",
			o.FirstAfterUpSec, o.AllNewSec, o.QueuedAfter, o.Received, o.Batches-int(o.Refused), o.Lost)
	}
	fmt.Fprintf(w, "webhook deliveries: %d (%d whose signature did not verify); output %s: delivered %d, retried %d, queue %d, dropped %d\n",
		h.Deliveries, h.BadSignatures, h.Output.Name, h.Output.Delivered, h.Output.Retried, h.Output.Queue, h.Output.Dropped)
}

func joinFloats(fs []float64) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strings.Join(parts, " ")
}
