package command

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/pipeline"
	"github.com/raywatch/raywatch/normalize"
)

const normalizeUsage = `Usage: raywatch normalize [--dataset NAME] FILE...   (NDJSON, .gz, or - for stdin)

Prints the ECS document of each record, one JSON object a line, in input
order; malformed records on stderr. Exit status as raywatch scan's: 0
every record read, 1 some malformed, 2 nothing readable.

Flags:
`

// normalizeCmd prints one ECS document per record, through the same
// pipeline as scan, without matching.
func normalizeCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("raywatch normalize", flag.ContinueOnError)
	dataset := fs.String("dataset", getenv.Or("RAYWATCH_DATASET", "auto"), "Logpush dataset id, or auto to recognise it (RAYWATCH_DATASET)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), normalizeUsage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "raywatch normalize: no FILE given (- reads stdin)\nrun 'raywatch normalize -h' for its flags")
		return errUsage
	}
	if err := pipeline.ValidDataset(*dataset); err != nil {
		return err
	}
	p := pipeline.New(pipeline.Options{
		Detector: &pipeline.Detector{Normalizer: normalize.New(normalize.Options{}), Dataset: *dataset},
		OnEvent: func(c *pipeline.Chunk, ev *normalize.Event) error {
			enc := json.NewEncoder(&c.Out)
			enc.SetEscapeHTML(false)
			return enc.Encode(ev.Doc())
		},
	})
	src := &pipeline.Files{Names: fs.Args(), Stdin: stdin, Intake: "normalize", Received: time.Now()}
	res, err := p.Scan(ctx, src, stdout, scanReport("raywatch normalize", stderr, 0))
	if err != nil {
		return err
	}
	if code := res.ExitCode(); code != 0 {
		return exitError(code)
	}
	return nil
}
