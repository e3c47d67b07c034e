package ioc

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// csvCols are the positions of the columns raywatch reads; -1 when absent.
type csvCols struct {
	value, typ, name, desc, id, event, category, toIDs, confidence, validUntil int
}

// Column names accepted for each role, lower case. A MISP CSV export names
// its columns uuid, event_id, category, type, value, comment, to_ids, date,
// object_relation, ...
var csvNames = []struct {
	names []string
	col   func(*csvCols) *int
}{
	{[]string{"value", "indicator", "ioc", "ioc_value", "indicator_value", "observable", "observable_value"}, func(c *csvCols) *int { return &c.value }},
	{[]string{"type", "indicator_type", "ioc_type", "observable_type", "attribute_type"}, func(c *csvCols) *int { return &c.typ }},
	{[]string{"name", "comment", "title"}, func(c *csvCols) *int { return &c.name }},
	{[]string{"description", "desc"}, func(c *csvCols) *int { return &c.desc }},
	{[]string{"uuid", "id"}, func(c *csvCols) *int { return &c.id }},
	{[]string{"event_id"}, func(c *csvCols) *int { return &c.event }},
	{[]string{"category"}, func(c *csvCols) *int { return &c.category }},
	{[]string{"to_ids"}, func(c *csvCols) *int { return &c.toIDs }},
	{[]string{"confidence"}, func(c *csvCols) *int { return &c.confidence }},
	{[]string{"valid_until", "expires", "expiration", "expiry"}, func(c *csvCols) *int { return &c.validUntil }},
}

// csvColumns finds the columns of a header; it fails when no column holds
// the values.
func csvColumns(header []string) (csvCols, error) {
	c := csvCols{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		for _, role := range csvNames {
			for _, n := range role.names {
				if h == n && *role.col(&c) < 0 {
					*role.col(&c) = i
				}
			}
		}
	}
	if c.value < 0 {
		return c, fmt.Errorf("CSV header names no value column (value, indicator, ioc or observable)")
	}
	return c, nil
}

// parseCSV reads a CSV file whose first line is a header naming at least a
// value column and usually a type column (a MISP CSV export loads as is:
// rows with to_ids false and attribute types raywatch cannot match on
// Cloudflare logs are skipped). An empty type is inferred from the value.
func parseCSV(file string, data []byte, res *fileResult) error {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = true
	r.Comment = '#'
	header, err := r.Read()
	if err == io.EOF {
		for line := range bytes.Lines(data) {
			if line = bytes.TrimSpace(line); len(line) > 0 && line[0] == '#' {
				res.comments++
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("CSV header: %w", err)
	}
	cols, err := csvColumns(header)
	if err != nil {
		return err
	}
	res.header = true
	res.inds = make([]Indicator, 0, bytes.Count(data, []byte("\n")))
	lastLine := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			line := lastLine + 1
			if errors.As(err, &pe) {
				line = pe.StartLine
			}
			if line <= lastLine {
				return fmt.Errorf("CSV line %d: %w", line, err)
			}
			res.lineError(file, line, err.Error())
			lastLine = line
			continue
		}
		line, _ := r.FieldPos(0)
		lastLine = line
		col := func(i int) string {
			if i < 0 || i >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[i])
		}
		if cols.value >= len(rec) {
			res.lineError(file, line, fmt.Sprintf("%d columns; the value is column %d", len(rec), cols.value+1))
			continue
		}
		switch strings.ToLower(col(cols.toIDs)) {
		case "0", "false", "no":
			res.skipped++
			continue
		}
		var meta *Meta
		m := Meta{
			ID:          col(cols.id),
			Name:        col(cols.name),
			Description: col(cols.desc),
			Event:       col(cols.event),
			Category:    col(cols.category),
		}
		if s := col(cols.confidence); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				res.lineError(file, line, fmt.Sprintf("confidence %q is not an integer", s))
				continue
			}
			m.Confidence = n
		}
		if s := col(cols.validUntil); s != "" {
			t, err := parseTime(s)
			if err != nil {
				res.lineError(file, line, fmt.Sprintf("valid_until %q: want RFC 3339 or YYYY-MM-DD", s))
				continue
			}
			m.ValidUntil = t
		}
		if m.ID != "" || m.Name != "" || m.Description != "" || m.Event != "" || m.Category != "" ||
			m.Confidence != 0 || !m.ValidUntil.IsZero() {
			meta = &m
		}
		// The record's strings are reused by the next Read: copy the value.
		value := strings.Clone(col(cols.value))
		res.add(file, line, strings.ToLower(col(cols.typ)), value, meta)
	}
}

// parseTime reads an RFC 3339 time or a date.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse("2006-01-02", s)
}
