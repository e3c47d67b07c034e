package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/valyala/fastjson"
	bolt "go.etcd.io/bbolt"
)

// maxOverviewScan bounds the alerts one [Store.Overview] call reads; beyond
// it the overview says Truncated.
const maxOverviewScan = 500_000

// Overview summarises the alerts of a time range for the dashboard.
type Overview struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// BucketSeconds is the width of each entry of Series.
	BucketSeconds int64            `json:"bucket_seconds"`
	Series        []SeriesBucket   `json:"series"`
	Alerts        int64            `json:"alerts"` // alerts active in the range
	Events        int64            `json:"events"` // records counted into them
	ByLevel       map[string]int64 `json:"by_level"`
	ByStatus      map[string]int64 `json:"by_status"`
	TopRules      []TopEntry       `json:"top_rules"`
	TopSources    []TopEntry       `json:"top_sources"`
	TopCountries  []TopEntry       `json:"top_countries"`
	// Truncated reports that the range held more alerts than one overview
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

// Newest returns the last-seen time of the newest alert (by id), or the
// zero time when the store is empty.
func (s *Store) Newest(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.db.View(func(tx *bolt.Tx) error {
		_, v := tx.Bucket(bucketAlerts).Cursor().Last()
		if v == nil {
			return nil
		}
		var p fastjson.Parser
		doc, err := p.ParseBytes(v)
		if err != nil {
			return err
		}
		t, _ = time.Parse(time.RFC3339Nano, string(doc.GetStringBytes("last_seen")))
		return nil
	})
	return t, err
}

// Overview counts the alerts whose events overlap [from, to]: a series of
// alerts first seen per bucket (the bucket width is rounded so that the
// range holds at most about 60 of them), totals by level and status, and the
// top rules, source IPs and countries (top entries each).
func (s *Store) Overview(ctx context.Context, from, to time.Time, top int) (Overview, error) {
	if !to.After(from) {
		return Overview{}, fmt.Errorf("overview: range [%s, %s] is empty", from, to)
	}
	bucket := bucketWidth(to.Sub(from))
	start := from.Truncate(bucket)
	n := int(to.Sub(start)/bucket) + 1
	ov := Overview{
		From: from.UTC(), To: to.UTC(), BucketSeconds: int64(bucket / time.Second),
		Series: make([]SeriesBucket, n), ByLevel: map[string]int64{}, ByStatus: map[string]int64{},
	}
	for i := range ov.Series {
		ov.Series[i].Start = start.Add(time.Duration(i) * bucket).UTC()
	}
	rules, sources, countries := map[string]*overviewAgg{}, map[string]*overviewAgg{}, map[string]*overviewAgg{}
	bump := func(m map[string]*overviewAgg, key, label string, events int64) {
		if key == "" {
			return
		}
		a := m[key]
		if a == nil {
			a = &overviewAgg{label: label}
			m[key] = a
		}
		a.alerts++
		a.events += events
	}
	window := s.opts.GroupWindow
	var p fastjson.Parser
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		k, _ := c.Seek([]byte(fmt.Sprintf("%012x", to.UnixMilli()+1)))
		var v []byte
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for scanned := 0; k != nil; k, v = c.Prev() {
			if t, ok := idTime(k); ok && t.Add(window).Before(from) {
				return nil
			}
			if scanned++; scanned > maxOverviewScan {
				ov.Truncated = true
				return nil
			}
			if scanned%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			doc, err := p.ParseBytes(v)
			if err != nil {
				return fmt.Errorf("decode alert %s: %w", k, err)
			}
			first, _ := time.Parse(time.RFC3339Nano, string(doc.GetStringBytes("first_seen")))
			last, _ := time.Parse(time.RFC3339Nano, string(doc.GetStringBytes("last_seen")))
			if last.Before(from) || first.After(to) {
				continue
			}
			events := int64(doc.GetInt("count"))
			level := string(doc.GetStringBytes("rule", "level"))
			ov.Alerts++
			ov.Events += events
			ov.ByLevel[level]++
			ov.ByStatus[string(doc.GetStringBytes("status"))]++
			if i := int(first.Sub(start) / bucket); !first.Before(start) && i < n {
				b := &ov.Series[i]
				b.Alerts++
				if b.ByLevel == nil {
					b.ByLevel = map[string]int64{}
				}
				b.ByLevel[level]++
			}
			bump(rules, string(doc.GetStringBytes("rule", "id")), string(doc.GetStringBytes("rule", "title")), events)
			ip, country := sourceOf(doc.Get("event"))
			bump(sources, ip, "", events)
			bump(countries, country, "", events)
		}
		return nil
	})
	if err != nil {
		return Overview{}, fmt.Errorf("overview: %w", err)
	}
	ov.TopRules, ov.TopSources, ov.TopCountries = topOf(rules, top), topOf(sources, top), topOf(countries, top)
	return ov, nil
}

// overviewAgg sums the alerts of one top-list entry.
type overviewAgg struct {
	label          string
	alerts, events int64
}

// topOf returns the top entries of m, most alerts first.
func topOf(m map[string]*overviewAgg, top int) []TopEntry {
	out := make([]TopEntry, 0, len(m))
	for k, a := range m {
		out = append(out, TopEntry{Key: k, Label: a.label, Alerts: a.alerts, Events: a.events})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Alerts != out[j].Alerts {
			return out[i].Alerts > out[j].Alerts
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > top {
		out = out[:top]
	}
	return out
}

// sourceOf returns the source IP and country of an alert's event.
func sourceOf(ev *fastjson.Value) (ip, country string) {
	ip = string(ev.GetStringBytes("source", "ip"))
	if ip == "" {
		ip = string(ev.GetStringBytes("cloudflare", "ClientIP"))
	}
	country = string(ev.GetStringBytes("source", "geo", "country_iso_code"))
	if country == "" {
		country = string(ev.GetStringBytes("source", "geo", "country_name"))
	}
	if country == "" {
		country = string(ev.GetStringBytes("cloudflare", "ClientCountry"))
	}
	return ip, country
}

// bucketWidth returns a round bucket width giving at most about 60 buckets
// over d.
func bucketWidth(d time.Duration) time.Duration {
	for _, w := range []time.Duration{
		time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	} {
		if d/w <= 60 {
			return w
		}
	}
	return d / 60
}
