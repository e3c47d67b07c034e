package coverage

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File is where serve keeps the fields each intake's records carry, for
// `raywatch rules list` to report blind rules.
func File(dataDir string) string { return filepath.Join(dataDir, "field-coverage.json") }

// Save writes the fields seen per intake to path, atomically.
func Save(path string, cov *Tracker) error {
	snap := map[string][]string{}
	for _, rep := range cov.Reports(nil) {
		snap[rep.Intake], _ = cov.Fields(rep.Intake)
	}
	b, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save field coverage: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save field coverage: %w", err)
	}
	return nil
}

// Load reads what Save wrote; nil when there is none.
func Load(path string) *Tracker {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var snap map[string][]string
	if json.Unmarshal(b, &snap) != nil {
		return nil
	}
	cov := New(Options{})
	for intake, fields := range snap {
		cov.Observe(intake, slices.Values(fields))
	}
	return cov
}

// Keep saves the coverage to path every interval until ctx ends, and once
// more at the end. Failures are logged.
func Keep(ctx context.Context, path string, cov *Tracker, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := Save(path, cov); err != nil {
				log.Warn("save field coverage", "err", err)
			}
			return
		case <-t.C:
			if err := Save(path, cov); err != nil {
				log.Warn("save field coverage", "err", err)
			}
		}
	}
}
