package replay

import (
	"path"
	"strings"
	"time"
)

// nameLayout is the layout of the times in a Logpush object name, for
// example 20260105T120000Z.
const nameLayout = "20060102T150405Z"

// dayLayout is the layout of the daily folders that the {DATE} placeholder
// of a Logpush destination path creates, for example 20260105.
const dayLayout = "20060102"

// ParseName returns the time range that the name of a Logpush object
// carries. Logpush names the objects it writes to a storage destination
// (S3, R2, GCS, Azure) <start>_<end>_<id>.log.gz, for example
// 20260105T120000Z_20260105T120500Z_abc123.log.gz, the start and end
// bounding the processing time of the batch. name may be a path: only its
// last element is read. ok is false when the name does not start with two
// such times, or when end is before start.
func ParseName(name string) (start, end time.Time, ok bool) {
	base := path.Base(strings.ReplaceAll(name, "\\", "/"))
	s, rest, found := strings.Cut(base, "_")
	if !found {
		return time.Time{}, time.Time{}, false
	}
	e, _, found := strings.Cut(rest, "_")
	if !found {
		// <start>_<end>.log.gz: no id.
		e, _, _ = strings.Cut(rest, ".")
	}
	if len(s) != len(nameLayout) || len(e) != len(nameLayout) {
		return time.Time{}, time.Time{}, false
	}
	st, err1 := time.Parse(nameLayout, s)
	en, err2 := time.Parse(nameLayout, e)
	if err1 != nil || err2 != nil || en.Before(st) {
		return time.Time{}, time.Time{}, false
	}
	return st, en, true
}

// parseDay returns the day that a folder named YYYYMMDD stands for.
func parseDay(name string) (time.Time, bool) {
	if len(name) != len(dayLayout) {
		return time.Time{}, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return time.Time{}, false
		}
	}
	d, err := time.Parse(dayLayout, name)
	return d, err == nil
}

// Range is a closed interval of event times, [From, To]. A zero From or
// To leaves that side open; the zero Range holds every time.
type Range struct {
	From, To time.Time
}

// Contains reports whether t is in the range. A zero t (a record without a
// time of its own) is in every range: nothing says it is not.
//
// Replay applies the range to objects through their names only; the
// caller applies Contains to each record's own time (the normalized
// event's Time, from EdgeStartTimestamp, Datetime, ...) and drops the
// records outside.
func (r Range) Contains(t time.Time) bool {
	if t.IsZero() {
		return true
	}
	if !r.From.IsZero() && t.Before(r.From) {
		return false
	}
	if !r.To.IsZero() && t.After(r.To) {
		return false
	}
	return true
}

// overlaps reports whether [start, end] meets the range.
func (r Range) overlaps(start, end time.Time) bool {
	if !r.From.IsZero() && end.Before(r.From) {
		return false
	}
	if !r.To.IsZero() && start.After(r.To) {
		return false
	}
	return true
}

// skipDay reports whether a daily folder can hold no object of the range.
// The folder's day is widened by a day on each side: Logpush may file an
// object that spans midnight under either day.
func (r Range) skipDay(day time.Time) bool {
	return !r.overlaps(day.Add(-24*time.Hour), day.Add(48*time.Hour-time.Nanosecond))
}

// Validate reports a range whose To is before its From.
func (r Range) Validate() error {
	if !r.From.IsZero() && !r.To.IsZero() && r.To.Before(r.From) {
		return errRangeOrder
	}
	return nil
}
