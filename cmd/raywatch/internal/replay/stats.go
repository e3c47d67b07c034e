package replay

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
)

// DefaultTop is how many entities of each kind [Stats] lists when asked
// for 0.
const DefaultTop = 10

// Stats answers "how often would this rule have fired": for `raywatch
// replay --rule ID --stats`, it counts alerts per day (UTC, by the event's
// time) and per entity (source.ip, and the requested domain: url.domain,
// else destination.domain or destination.address, else
// dns.question.name), storing nothing else. Its methods are safe for
// concurrent use.
type Stats struct {
	top int

	mu      sync.Mutex
	total   int
	days    map[string]int
	ips     map[string]int
	domains map[string]int
	first   time.Time
	last    time.Time
}

// NewStats returns empty Stats listing the top entities of each kind (0
// means [DefaultTop]).
func NewStats(top int) *Stats {
	if top <= 0 {
		top = DefaultTop
	}
	return &Stats{top: top, days: map[string]int{}, ips: map[string]int{}, domains: map[string]int{}}
}

// Add counts one alert.
func (s *Stats) Add(a alert.Alert) {
	t := a.FirstSeen.UTC()
	ip := alert.Field(a.Event, "source.ip")
	domain := alert.Field(a.Event, "url.domain", "destination.domain", "destination.address", "dns.question.name")
	s.mu.Lock()
	defer s.mu.Unlock()
	n := max(a.Count, 1)
	s.total += n
	s.days[t.Format(time.DateOnly)] += n
	if ip != "" {
		s.ips[ip] += n
	}
	if domain != "" {
		s.domains[strings.ToLower(domain)] += n
	}
	if s.first.IsZero() || t.Before(s.first) {
		s.first = t
	}
	if t.After(s.last) {
		s.last = t
	}
}

// Count is a value and how many alerts it had.
type Count struct {
	Value  string `json:"value"`
	Alerts int    `json:"alerts"`
}

// StatsReport is what [Stats.Report] returns; its JSON form is what
// --stats --json prints.
type StatsReport struct {
	Alerts int       `json:"alerts"`
	First  time.Time `json:"first,omitzero"`
	Last   time.Time `json:"last,omitzero"`
	// PerDay lists every day from the first alert's to the last's, days
	// without alerts included, oldest first.
	PerDay     []Count `json:"per_day"`
	TopIPs     []Count `json:"top_source_ips"`
	TopDomains []Count `json:"top_domains"`
}

// Report returns the counts so far.
func (s *Stats) Report() StatsReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := StatsReport{Alerts: s.total, First: s.first, Last: s.last, PerDay: []Count{}}
	if s.total > 0 {
		for d := s.first.Truncate(24 * time.Hour); !d.After(s.last); d = d.Add(24 * time.Hour) {
			day := d.Format(time.DateOnly)
			r.PerDay = append(r.PerDay, Count{Value: day, Alerts: s.days[day]})
		}
	}
	r.TopIPs = topOf(s.ips, s.top)
	r.TopDomains = topOf(s.domains, s.top)
	return r
}

// topOf returns the n values with the most alerts, ties by value.
func topOf(m map[string]int, n int) []Count {
	out := make([]Count, 0, len(m))
	for v, c := range m {
		out = append(out, Count{Value: v, Alerts: c})
	}
	slices.SortFunc(out, func(a, b Count) int {
		if c := cmp.Compare(b.Alerts, a.Alerts); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	return out[:min(n, len(out))]
}

// WriteTable prints the report: the total, alerts per day, and the top
// source addresses and domains.
func (s *Stats) WriteTable(w io.Writer) error {
	r := s.Report()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%d alerts", r.Alerts)
	if r.Alerts > 0 {
		fmt.Fprintf(tw, " from %s to %s", r.First.Format(time.RFC3339), r.Last.Format(time.RFC3339))
	}
	fmt.Fprintln(tw)
	section := func(title string, cs []Count) {
		if len(cs) == 0 {
			return
		}
		fmt.Fprintf(tw, "\n%s\tALERTS\n", title)
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%d\n", c.Value, c.Alerts)
		}
	}
	section("DAY", r.PerDay)
	section("SOURCE IP", r.TopIPs)
	section("DOMAIN", r.TopDomains)
	return tw.Flush()
}
