package ioc

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// maxLineErrors bounds the line errors kept per file; the rest are counted.
const maxLineErrors = 100

// Formats of indicator files.
const (
	FormatText = "text"
	FormatCSV  = "csv"
	FormatSTIX = "stix"
)

// fileResult is what parsing one file gives.
type fileResult struct {
	format   string
	inds     []Indicator
	versions []version // STIX object versions, revoked ones included
	errs     []LineError
	badLines int  // lines or objects that are not indicators
	skipped  int  // entries of a type raywatch does not match
	comments int  // comment lines of a plain-text or a header-less CSV file
	header   bool // a CSV file's header was read
}

// explicitlyEmpty reports whether the file says it has no indicators: it
// has no entries at all, and has comment lines, or is a CSV file with its
// header, or a STIX bundle without objects. A file of zero bytes or blank
// lines does not say so.
func (res *fileResult) explicitlyEmpty() bool {
	return len(res.inds) == 0 && res.badLines == 0 && res.skipped == 0 &&
		(res.comments > 0 || res.header || res.format == FormatSTIX)
}

// suspect says why a new version of a file that has indicators should not
// replace them, or "" when it may: it yields none without saying it is
// empty (a truncated download), or most of its lines are not indicators
// (an HTML error page). The result's indicators must not have been moved
// out yet.
func (res *fileResult) suspect() string {
	good := len(res.inds) + res.skipped
	switch {
	case good == 0 && !res.explicitlyEmpty():
		if res.badLines > 0 {
			return fmt.Sprintf("no indicators: its %d entries are not indicators (first: line %d: %s)", res.badLines, res.errs[0].Line, res.errs[0].Msg)
		}
		return "no indicators, and no comment line saying the feed is empty"
	case float64(res.badLines) > maxBadShare*float64(good+res.badLines):
		return fmt.Sprintf("%d of %d entries are not indicators (first: line %d: %s)", res.badLines, good+res.badLines, res.errs[0].Line, res.errs[0].Msg)
	}
	return ""
}

// maxBadShare is the share of bad lines beyond which a new version of a
// file is taken for junk.
const maxBadShare = 0.5

// version is one STIX object version, for supersession across files.
type version struct {
	id       string
	modified time.Time
	revoked  bool
}

func (res *fileResult) lineError(file string, line int, msg string) {
	res.badLines++
	if len(res.errs) < maxLineErrors {
		res.errs = append(res.errs, LineError{File: file, Line: line, Msg: msg})
	}
}

// parseFile parses the content of the indicator file named name (relative
// to the folder), choosing the format by extension and content. A non-nil
// error means the file as a whole is unusable (broken JSON, a CSV without a
// value column); bad lines are reported in the result instead. Plain text
// given as a string, and STIX or CSV given as bytes, are not copied: the
// indicators' values point into data.
func parseFile[D bytesOrString](name string, data D) (*fileResult, error) {
	res := &fileResult{format: detectFormat(name, data[:min(len(data), 4096)])}
	var err error
	switch res.format {
	case FormatSTIX:
		err = parseSTIX(name, []byte(data), res)
	case FormatCSV:
		err = parseCSV(name, []byte(data), res)
	default:
		parseText(name, string(data), res)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// detectFormat tells STIX (JSON), CSV and plain text apart: by extension
// first, else JSON by its first byte and CSV by a header line that names a
// value column.
func detectFormat[D bytesOrString](name string, data D) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json", ".stix", ".stix2":
		return FormatSTIX
	case ".csv":
		return FormatCSV
	}
	s := string(data[:min(len(data), 4096)])
	s = strings.TrimLeft(s, " \t\r\n\ufeff")
	if strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") {
		return FormatSTIX
	}
	first, _, _ := strings.Cut(s, "\n")
	if strings.Contains(first, ",") {
		if _, err := csvColumns(splitHeader(first)); err == nil {
			return FormatCSV
		}
	}
	return FormatText
}

func splitHeader(line string) []string {
	f := strings.Split(strings.TrimSpace(line), ",")
	for i := range f {
		f[i] = strings.Trim(strings.TrimSpace(f[i]), `"`)
	}
	return f
}
