package ioc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// stixObject holds the properties of a STIX 2.x object that raywatch reads.
type stixObject struct {
	Type            string   `json:"type"`
	ID              string   `json:"id"`
	Name            string   `json:"name"`
	Description     string   `json:"description"`
	Pattern         string   `json:"pattern"`
	PatternType     string   `json:"pattern_type"`
	ValidFrom       string   `json:"valid_from"`
	ValidUntil      string   `json:"valid_until"`
	Created         string   `json:"created"`
	Modified        string   `json:"modified"`
	Revoked         bool     `json:"revoked"`
	Confidence      int      `json:"confidence"`
	IndicatorTypes  []string `json:"indicator_types"`
	Labels          []string `json:"labels"` // STIX 2.0's indicator_types
	KillChainPhases []struct {
		PhaseName string `json:"phase_name"`
	} `json:"kill_chain_phases"`
}

// parseSTIX reads a STIX 2.1 bundle (or a TAXII envelope, a JSON array of
// objects, or a single indicator object). Each indicator object whose
// pattern compares an address, domain, URL or user-agent path with '=' or
// IN gives one indicator per comparison; comparisons may be OR-joined, not
// AND-joined. Broken JSON fails the whole file; a bad indicator object is a
// line error.
func parseSTIX(file string, data []byte, res *fileResult) error {
	s := &stixReader{file: file, data: data, res: res, dec: json.NewDecoder(bytes.NewReader(data)), line: 1}
	tok, err := s.dec.Token()
	if err != nil {
		return jsonError(data, s.dec, err)
	}
	switch tok {
	case json.Delim('['):
		err = s.objects()
	case json.Delim('{'):
		err = s.top()
	default:
		return fmt.Errorf("JSON: want an object or an array, got %v", tok)
	}
	if err != nil {
		return jsonError(data, s.dec, err)
	}
	if _, err := s.dec.Token(); err != io.EOF {
		return fmt.Errorf("JSON: data after the top-level value")
	}
	return nil
}

// jsonError names the line of a JSON syntax error.
func jsonError(data []byte, dec *json.Decoder, err error) error {
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = io.ErrUnexpectedEOF
	}
	off = min(max(off, 0), int64(len(data)))
	return fmt.Errorf("JSON line %d: %w", 1+bytes.Count(data[:off], []byte("\n")), err)
}

type stixReader struct {
	file   string
	data   []byte
	res    *fileResult
	dec    *json.Decoder
	offset int64 // data[:offset] has been counted into line
	line   int
}

// top reads the members of the top-level object: its "objects" are read
// one at a time; an object without "objects" is itself an indicator.
func (s *stixReader) top() error {
	sawObjects := false
	for s.dec.More() {
		tok, err := s.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if key != "objects" {
			var skip json.RawMessage
			if err := s.dec.Decode(&skip); err != nil {
				return err
			}
			continue
		}
		tok, err = s.dec.Token()
		if err != nil {
			return err
		}
		if tok == nil {
			continue
		}
		if tok != json.Delim('[') {
			return fmt.Errorf(`"objects" is not an array`)
		}
		sawObjects = true
		if err := s.objects(); err != nil {
			return err
		}
	}
	if _, err := s.dec.Token(); err != nil { // the closing '}'
		return err
	}
	if !sawObjects {
		var obj stixObject
		if err := json.Unmarshal(s.data, &obj); err != nil {
			return err
		}
		s.object(1, &obj)
	}
	return nil
}

// objects reads the elements of an array of STIX objects up to its ']'.
func (s *stixReader) objects() error {
	for s.dec.More() {
		line := s.lineAt(s.dec.InputOffset())
		var obj stixObject
		if err := s.dec.Decode(&obj); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				s.res.lineError(s.file, line, fmt.Sprintf("STIX object: %s has type %s, want %s", te.Field, te.Value, te.Type))
				continue
			}
			return err
		}
		s.object(line, &obj)
	}
	_, err := s.dec.Token() // the closing ']'
	return err
}

// lineAt returns the line of the first byte after off that is not
// whitespace or a comma: where the next value starts.
func (s *stixReader) lineAt(off int64) int {
	for off < int64(len(s.data)) {
		c := s.data[off]
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != ',' {
			break
		}
		off++
	}
	if off > s.offset {
		s.line += bytes.Count(s.data[s.offset:off], []byte("\n"))
		s.offset = off
	}
	return s.line
}

// object turns one decoded STIX object into indicators.
func (s *stixReader) object(line int, o *stixObject) {
	if o.Type != "indicator" {
		return
	}
	lineErr := func(format string, args ...any) {
		s.res.lineError(s.file, line, fmt.Sprintf("indicator %s: ", o.ID)+fmt.Sprintf(format, args...))
	}
	if o.PatternType != "" && o.PatternType != "stix" {
		s.res.skipped++
		return
	}
	m := &Meta{
		ID:             o.ID,
		Name:           o.Name,
		Description:    o.Description,
		Confidence:     o.Confidence,
		IndicatorTypes: o.IndicatorTypes,
	}
	if m.IndicatorTypes == nil {
		m.IndicatorTypes = o.Labels
	}
	for _, k := range o.KillChainPhases {
		m.KillChainPhases = append(m.KillChainPhases, k.PhaseName)
	}
	for _, f := range []struct {
		name string
		s    string
		t    *time.Time
	}{{"valid_from", o.ValidFrom, &m.ValidFrom}, {"valid_until", o.ValidUntil, &m.ValidUntil}, {"modified", o.Modified, &m.Modified}} {
		if f.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.s)
		if err != nil {
			lineErr("%s %q is not an RFC 3339 time", f.name, f.s)
			return
		}
		*f.t = t.UTC()
	}
	if m.Modified.IsZero() && o.Created != "" {
		if t, err := time.Parse(time.RFC3339Nano, o.Created); err == nil {
			m.Modified = t.UTC()
		}
	}
	if o.ID != "" {
		s.res.versions = append(s.res.versions, version{id: o.ID, modified: m.Modified, revoked: o.Revoked})
	}
	if o.Revoked {
		return
	}
	if o.Pattern == "" {
		lineErr("no pattern")
		return
	}
	cmps, err := parsePattern(o.Pattern)
	if err != nil {
		lineErr("pattern %q: %v", o.Pattern, err)
		return
	}
	n := 0
	for _, c := range cmps {
		typeName, ok := stixPaths[c.path]
		if !ok {
			continue
		}
		if c.op != "=" && c.op != "IN" {
			lineErr("pattern %q: operator %s on %s is not supported (only = and IN)", o.Pattern, c.op, c.path)
			return
		}
		if c.and {
			lineErr("pattern %q: AND-joined comparisons are not supported (only OR)", o.Pattern)
			return
		}
		for _, v := range c.values {
			t, v, err := classify(typeName, v)
			if err != nil {
				lineErr("pattern %q: %v", o.Pattern, err)
				continue
			}
			s.res.inds = append(s.res.inds, Indicator{Type: t, Value: v, File: s.file, Line: line, Meta: m})
			n++
		}
	}
	if n == 0 {
		s.res.skipped++
	}
}

// stixPaths maps the object paths raywatch matches, without quotes and in
// lower case, to a type word of [classify].
var stixPaths = map[string]string{
	"ipv4-addr:value":   "ip",
	"ipv6-addr:value":   "ip",
	"domain-name:value": "domain",
	"url:value":         "url",
	"network-traffic:extensions.http-request-ext.request_header.user-agent": "ua",
}

// comparison is one comparison expression of a STIX pattern.
type comparison struct {
	path   string   // object path, unquoted, lower case
	op     string   // "=", "IN", "!=", "LIKE", "MATCHES", ... ("NOT x" for negations)
	values []string // the string operands
	and    bool     // joined to another comparison or observation by AND or FOLLOWEDBY
}

// parsePattern parses a STIX pattern into its comparisons. It understands
// the whole grammar's shape (observation brackets, parentheses, AND, OR,
// FOLLOWEDBY, qualifiers) well enough to tell which comparisons stand alone
// (joined only by OR) from those that do not.
func parsePattern(p string) ([]comparison, error) {
	toks, err := lexPattern(p)
	if err != nil {
		return nil, err
	}
	ps := &patternParser{toks: toks}
	if err := ps.expr(0); err != nil {
		return nil, err
	}
	if ps.i != len(ps.toks) {
		return nil, fmt.Errorf("unexpected %q", ps.toks[ps.i].text)
	}
	if ps.sawAnd {
		for i := range ps.cmps {
			ps.cmps[i].and = true
		}
	}
	return ps.cmps, nil
}

type tokKind int

const (
	tokWord tokKind = iota
	tokString
	tokPunct
	tokOther // numbers, booleans, t'...', h'...', b'...'
)

type token struct {
	kind tokKind
	text string
}

func lexPattern(p string) ([]token, error) {
	var toks []token
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '[' || c == ']' || c == '(' || c == ')' || c == ',':
			toks = append(toks, token{tokPunct, p[i : i+1]})
			i++
		case c == '=' || c == '!' || c == '<' || c == '>':
			j := i + 1
			if j < len(p) && p[j] == '=' {
				j++
			}
			toks = append(toks, token{tokWord, p[i:j]})
			i = j
		case c == '\'':
			s, n, err := lexString(p[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tokString, s})
			i += n
		case (c == 't' || c == 'h' || c == 'b') && i+1 < len(p) && p[i+1] == '\'':
			_, n, err := lexString(p[i+1:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tokOther, p[i : i+1+n]})
			i += 1 + n
		case isWordByte(c):
			j := i
			for j < len(p) {
				d := p[j]
				if d == '\'' { // a quoted path component
					_, n, err := lexString(p[j:])
					if err != nil {
						return nil, err
					}
					j += n
					continue
				}
				if d == '[' && j+2 < len(p) && (p[j+1] == '*' || '0' <= p[j+1] && p[j+1] <= '9') {
					k := strings.IndexByte(p[j:], ']')
					if k < 0 {
						return nil, fmt.Errorf("unclosed list index")
					}
					j += k + 1
					continue
				}
				if !isWordByte(d) && d != ':' && d != '.' {
					break
				}
				j++
			}
			toks = append(toks, token{tokWord, p[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return toks, nil
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '+'
}

// lexString reads a quoted string at the start of s ('...' with \' and \\
// escapes) and returns its value and length.
func lexString(s string) (string, int, error) {
	var b []byte
	escaped := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			if !escaped {
				b = append(b, s[1:i]...)
				escaped = true
			}
			b = append(b, s[i+1])
			i++
		case '\'':
			if !escaped {
				return s[1:i], i + 1, nil
			}
			return string(b), i + 1, nil
		default:
			if escaped {
				b = append(b, c)
			}
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

type patternParser struct {
	toks   []token
	i      int
	cmps   []comparison
	sawAnd bool
}

func (ps *patternParser) peek() (token, bool) {
	if ps.i < len(ps.toks) {
		return ps.toks[ps.i], true
	}
	return token{}, false
}

func (ps *patternParser) next() (token, error) {
	t, ok := ps.peek()
	if !ok {
		return t, fmt.Errorf("unexpected end of pattern")
	}
	ps.i++
	return t, nil
}

func (ps *patternParser) expect(text string) error {
	t, err := ps.next()
	if err != nil {
		return err
	}
	if t.text != text {
		return fmt.Errorf("want %q, got %q", text, t.text)
	}
	return nil
}

// expr parses terms joined by AND, OR and FOLLOWEDBY, inside brackets
// (depth > 0, comparisons) or outside (observations).
func (ps *patternParser) expr(depth int) error {
	if depth > 50 {
		return fmt.Errorf("nested too deep")
	}
	for {
		if err := ps.term(depth); err != nil {
			return err
		}
		t, ok := ps.peek()
		if !ok || t.kind != tokWord {
			return nil
		}
		switch strings.ToUpper(t.text) {
		case "OR":
		case "AND", "FOLLOWEDBY":
			ps.sawAnd = true
		default:
			return nil
		}
		ps.i++
	}
}

// term parses a parenthesised expression, an observation [ ... ] with its
// qualifiers, or (inside brackets) one comparison.
func (ps *patternParser) term(depth int) error {
	t, err := ps.next()
	if err != nil {
		return err
	}
	switch {
	case t.text == "(":
		if err := ps.expr(depth + 1); err != nil {
			return err
		}
		if err := ps.expect(")"); err != nil {
			return err
		}
	case t.text == "[" && t.kind == tokPunct:
		if err := ps.expr(depth + 1); err != nil {
			return err
		}
		if err := ps.expect("]"); err != nil {
			return err
		}
		return ps.qualifiers()
	case t.kind == tokWord && depth > 0 && strings.Contains(t.text, ":"):
		return ps.comparison(t.text)
	default:
		return fmt.Errorf("unexpected %q", t.text)
	}
	if depth == 0 {
		return ps.qualifiers()
	}
	return nil
}

// qualifiers skips WITHIN n SECONDS, REPEATS n TIMES and START t STOP t
// after an observation; they make a pattern more than a single match.
func (ps *patternParser) qualifiers() error {
	for {
		t, ok := ps.peek()
		if !ok || t.kind != tokWord {
			return nil
		}
		var n int
		switch strings.ToUpper(t.text) {
		case "WITHIN", "REPEATS":
			n = 3
		case "START", "STOP":
			n = 2
		default:
			return nil
		}
		ps.sawAnd = true
		for range n {
			if _, err := ps.next(); err != nil {
				return err
			}
		}
	}
}

// comparison parses "path [NOT] op value".
func (ps *patternParser) comparison(path string) error {
	c := comparison{path: strings.ToLower(strings.ReplaceAll(path, "'", ""))}
	op, err := ps.next()
	if err != nil {
		return err
	}
	c.op = strings.ToUpper(op.text)
	if c.op == "NOT" {
		op, err = ps.next()
		if err != nil {
			return err
		}
		c.op = "NOT " + strings.ToUpper(op.text)
	}
	switch c.op {
	case "=", "!=", "<", ">", "<=", ">=", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET",
		"NOT =", "NOT !=", "NOT <", "NOT >", "NOT <=", "NOT >=", "NOT LIKE", "NOT MATCHES", "NOT ISSUBSET", "NOT ISSUPERSET":
		v, err := ps.next()
		if err != nil {
			return err
		}
		if v.kind == tokString {
			c.values = []string{v.text}
		} else if v.kind != tokOther && v.kind != tokWord {
			return fmt.Errorf("unexpected %q after %s", v.text, c.op)
		}
	case "IN", "NOT IN":
		if err := ps.expect("("); err != nil {
			return err
		}
		for {
			v, err := ps.next()
			if err != nil {
				return err
			}
			if v.kind == tokString {
				c.values = append(c.values, v.text)
			}
			sep, err := ps.next()
			if err != nil {
				return err
			}
			if sep.text == ")" {
				break
			}
			if sep.text != "," {
				return fmt.Errorf("want , or ) in IN list, got %q", sep.text)
			}
		}
	default:
		return fmt.Errorf("unknown operator %q", op.text)
	}
	ps.cmps = append(ps.cmps, c)
	return nil
}
