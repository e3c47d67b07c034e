package app

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

// ArchiveConfig is the batch archive of retro-hunts: every batch, once
// processed, is kept gzip'd in Dir, pruned by age and size. An empty Dir
// turns it, and the retro-hunts, off.
type ArchiveConfig struct {
	// Dir is --archive-dir (RAYWATCH_ARCHIVE_DIR).
	Dir string
	// Retention is how long a batch is kept after it was received; 0
	// keeps batches until MaxBytes pushes them out.
	Retention time.Duration
	// MaxBytes bounds the archive's size on disk; 0 means no bound.
	MaxBytes int64
}

// DefaultArchiveMaxBytes is --archive-max-bytes's default: 10 GiB.
const DefaultArchiveMaxBytes = 10 << 30

// flags registers --archive-dir, --archive-retention and
// --archive-max-bytes.
func (c *ArchiveConfig) flags(fs *flag.FlagSet, env Env) {
	fs.StringVar(&c.Dir, "archive-dir", env.Or("RAYWATCH_ARCHIVE_DIR", ""), "keep every processed batch, gzip'd, in this folder, so that indicators added later (and rules, from the Rules page) are hunted over past traffic; off when empty (RAYWATCH_ARCHIVE_DIR)")
	fs.DurationVar(&c.Retention, "archive-retention", env.Duration("RAYWATCH_ARCHIVE_RETENTION", 168*time.Hour), "delete archived batches received longer ago; 0 keeps them until --archive-max-bytes (RAYWATCH_ARCHIVE_RETENTION)")
	fs.Int64Var(&c.MaxBytes, "archive-max-bytes", env.Int("RAYWATCH_ARCHIVE_MAX_BYTES", DefaultArchiveMaxBytes), "largest size of the archive on disk, the oldest batches going first; 0 means no bound (RAYWATCH_ARCHIVE_MAX_BYTES)")
}

// validate checks the archive flags; each error names its flag.
func (c *ArchiveConfig) validate() []error {
	var errs []error
	if c.Retention < 0 || c.MaxBytes < 0 {
		errs = append(errs, errors.New("--archive-retention and --archive-max-bytes cannot be negative"))
	}
	if c.Dir == "" {
		return errs
	}
	if c.Retention == 0 && c.MaxBytes == 0 {
		errs = append(errs, errors.New("--archive-dir with neither --archive-retention nor --archive-max-bytes would grow without bound: set one"))
	}
	if st, err := os.Stat(c.Dir); err == nil && !st.IsDir() {
		errs = append(errs, fmt.Errorf("--archive-dir %q is not a folder", c.Dir))
	}
	return errs
}
