package web

import (
	"context"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
)

// The typed results of the API's reports. web declares them and the
// program that wires the server fills them from the store, the IOC
// watcher, the field coverage and the Logpush job poller; web imports
// none of those.

// Stats is GET /api/v1/stats: the store's counters and the spool's.
type Stats struct {
	Alerts   int64            `json:"alerts"` // alerts stored now
	ByStatus map[string]int64 `json:"by_status"`
	Rules    []RuleStats      `json:"rules"`
	Bytes    int64            `json:"bytes"` // size of the alert database
	Spool    SpoolStats       `json:"spool"`
}

// RuleStats are the counters of one rule since the store was created.
type RuleStats struct {
	Rule     string    `json:"rule"`
	Title    string    `json:"title,omitempty"`
	Alerts   int64     `json:"alerts"` // alerts created (grouped)
	Events   int64     `json:"events"` // records counted into them
	LastSeen time.Time `json:"last_seen"`
}

// SpoolStats are the batches acknowledged and not yet processed.
type SpoolStats struct {
	Batches int   `json:"batches"`
	Bytes   int64 `json:"bytes"`
}

// RejectedRecord is a malformed record kept for inspection, as GET
// /api/v1/rejects lists it under "records".
type RejectedRecord struct {
	Time   time.Time `json:"time"`
	Intake string    `json:"intake"`
	Batch  string    `json:"batch"`
	Record int       `json:"record"`
	Reason string    `json:"reason"`
	// Line is the start of the record as received.
	Line string `json:"line"`
}

// Overview is GET /api/v1/overview: a summary of the alerts active in a
// span of time.
type Overview struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// BucketSeconds is the width of each entry of Series.
	BucketSeconds int64            `json:"bucket_seconds"`
	Series        []SeriesBucket   `json:"series"`
	Alerts        int64            `json:"alerts"`
	Events        int64            `json:"events"`
	ByLevel       map[string]int64 `json:"by_level"`
	ByStatus      map[string]int64 `json:"by_status"`
	TopRules      []TopEntry       `json:"top_rules"`
	TopSources    []TopEntry       `json:"top_sources"`
	TopCountries  []TopEntry       `json:"top_countries"`
	// Truncated reports that the span held more alerts than one overview
	// reads; the figures cover the newest of them.
	Truncated bool `json:"truncated,omitempty"`
}

// SeriesBucket counts the alerts first seen in [Start, Start+bucket).
type SeriesBucket struct {
	Start   time.Time        `json:"start"`
	Alerts  int64            `json:"alerts"`
	ByLevel map[string]int64 `json:"by_level,omitempty"`
}

// TopEntry is one line of a top list: a rule, a source IP or a country.
type TopEntry struct {
	Key    string `json:"key"`
	Label  string `json:"label,omitempty"`
	Alerts int64  `json:"alerts"`
	Events int64  `json:"events"`
}

// IOCReport is GET /api/v1/iocs: the indicator files and the set in use.
type IOCReport struct {
	Enabled bool `json:"enabled"`
	// Dir is the IOC folder (--ioc-dir).
	Dir    string                      `json:"dir,omitempty"`
	Files  []IOCFile                   `json:"files"`
	Counts map[alert.IndicatorType]int `json:"counts"`
	Total  int                         `json:"total"`
}

// IOCFile is the state of one indicator file.
type IOCFile struct {
	File       string                      `json:"file"`
	Format     string                      `json:"format,omitempty"`
	Indicators map[alert.IndicatorType]int `json:"indicators"`
	Total      int                         `json:"total"`
	Expired    int                         `json:"expired"`
	Superseded int                         `json:"superseded"`
	Skipped    int                         `json:"skipped"`
	BadLines   int                         `json:"bad_lines"`
	LineErrors []IOCLineError              `json:"line_errors,omitempty"`
	LastLoad   time.Time                   `json:"last_load,omitzero"`
	LastError  string                      `json:"last_error,omitempty"`
	// LastErrorTime is when LastError happened.
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// Warning says why the file's current content was set aside although
	// it parses (emptied, or mostly not indicators, as a failed download
	// leaves it): the file keeps the indicators of its last good load.
	// "" when none; WarningTime is when it was seen.
	Warning     string    `json:"warning,omitempty"`
	WarningTime time.Time `json:"warning_time,omitzero"`
}

// IOCLineError is a line of an indicator file that is not an indicator.
type IOCLineError struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Msg  string `json:"error"`
}

// IntakeCoverage is one intake's entry of GET /api/v1/coverage: which
// rules cannot fire because their fields are not in the records.
type IntakeCoverage struct {
	Intake string `json:"intake"`
	// Sampled is the number of records looked at.
	Sampled uint64 `json:"sampled_records"`
	// Blind are the rules that cannot fire on the intake.
	Blind []RuleCoverage `json:"blind_rules"`
	// Missing are the fields the blind rules miss, most needed first.
	Missing []string `json:"missing_fields"`
	// Fields are the fields recent records carried.
	Fields  []string `json:"fields"`
	Message string   `json:"message,omitempty"`
	Fix     string   `json:"fix,omitempty"`
}

// RuleCoverage says whether one rule can fire on one intake: its "state"
// is "ok", "blind" or "unknown".
type RuleCoverage struct {
	Intake  string   `json:"intake"`
	RuleID  string   `json:"rule_id"`
	Title   string   `json:"title"`
	State   string   `json:"state"`
	Missing []string `json:"missing,omitempty"`
}

// JobsReport is GET /api/v1/jobs: the Logpush jobs that deliver to this
// raywatch, as last polled.
type JobsReport struct {
	Enabled bool      `json:"enabled"`
	Checked time.Time `json:"checked"`
	Error   string    `json:"error"`
	Jobs    []Job     `json:"jobs"`
}

// Job is one Logpush job and what is wrong with it.
type Job struct {
	Zone         string    `json:"zone"`
	ZoneName     string    `json:"zone_name"`
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	Dataset      string    `json:"dataset"`
	Host         string    `json:"host"`
	Intake       string    `json:"intake"`
	Enabled      bool      `json:"enabled"`
	LastComplete time.Time `json:"last_complete"`
	LastError    time.Time `json:"last_error"`
	ErrorMessage string    `json:"error_message,omitempty"`
	// MaxUploadInterval is the job's longest gap between batches while
	// traffic flows, in nanoseconds (0: Logpush's default).
	MaxUploadInterval time.Duration `json:"max_upload_interval"`
	LastBatch         time.Time     `json:"last_batch,omitzero"`
	Warning           string        `json:"warning,omitempty"`
}

// Reports are the typed reports of the API, each served as JSON at GET
// /api/v1/{iocs,coverage,jobs,outputs,throttled} behind the dashboard token. Each
// may be nil (no route), and must be safe for concurrent use.
type Reports struct {
	IOCs     func(ctx context.Context) (IOCReport, error)
	Coverage func(ctx context.Context) ([]IntakeCoverage, error)
	Jobs     func(ctx context.Context) (JobsReport, error)
	Outputs  func(ctx context.Context) (OutputsReport, error)
	// Throttled is served at GET /api/v1/throttled.
	Throttled func(ctx context.Context) (ThrottleReport, error)
}
