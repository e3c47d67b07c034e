package replay

import (
	"fmt"
	"time"
)

// Progress is a snapshot of a running replay.
type Progress struct {
	// Objects are the objects finished (read or failed) of ObjectsTotal;
	// Failed are those that failed.
	Objects, ObjectsTotal, Failed int
	// Bytes are the stored (gzip'd) bytes read so far of BytesTotal.
	Bytes, BytesTotal int64
	// Records are the records counted by [Plan.AddRecords].
	Records int64
	// Elapsed is the time since Run started.
	Elapsed time.Duration
}

// Progress returns the replay's progress now.
func (p *Plan) Progress() Progress {
	p.mu.Lock()
	failed := len(p.failures)
	p.mu.Unlock()
	var elapsed time.Duration
	if !p.start.IsZero() {
		elapsed = time.Since(p.start)
	}
	return Progress{
		Objects:      int(p.done.Load()),
		ObjectsTotal: len(p.objects),
		Failed:       failed,
		Bytes:        p.bytes.Load(),
		BytesTotal:   p.total,
		Records:      p.records.Load(),
		Elapsed:      elapsed,
	}
}

// RecordsPerSecond is the average record rate so far.
func (p Progress) RecordsPerSecond() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Records) / p.Elapsed.Seconds()
}

// ETA estimates the time left from the byte rate so far; ok is false
// before there is a rate to go by.
func (p Progress) ETA() (left time.Duration, ok bool) {
	if p.Bytes <= 0 || p.Elapsed <= 0 || p.BytesTotal <= 0 {
		return 0, false
	}
	rest := max(p.BytesTotal-p.Bytes, 0)
	return time.Duration(float64(p.Elapsed) * float64(rest) / float64(p.Bytes)).Round(time.Second), true
}

// String formats the progress as one line for stderr, for example
// "replay: 12/340 objects (1 failed), 1.2 MB/30.0 MB, 85123 records/s, 5m10s left".
func (p Progress) String() string {
	s := fmt.Sprintf("replay: %d/%d objects", p.Objects, p.ObjectsTotal)
	if p.Failed > 0 {
		s += fmt.Sprintf(" (%d failed)", p.Failed)
	}
	s += fmt.Sprintf(", %s/%s, %d records, %.0f records/s", humanBytes(p.Bytes), humanBytes(p.BytesTotal), p.Records, p.RecordsPerSecond())
	if left, ok := p.ETA(); ok && p.Objects < p.ObjectsTotal {
		s += fmt.Sprintf(", %s left", left)
	}
	return s
}

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
