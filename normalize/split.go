package normalize

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLineBytes is the record size limit used when
// [SplitOptions.MaxLineBytes] is 0.
const DefaultMaxLineBytes = 4 << 20

// ErrRecordTooLong is wrapped by the error [Split] reports for a record over
// [SplitOptions.MaxLineBytes].
var ErrRecordTooLong = errors.New("record too long")

// SplitOptions configures [Split].
type SplitOptions struct {
	// MaxLineBytes is the largest record, without its line ending, that
	// Split passes on; 0 means [DefaultMaxLineBytes]. NDJSON lines over the
	// limit are skipped without being buffered whole.
	MaxLineBytes int
	// OnError, if not nil, is called for every record that is skipped
	// because it is too long (the error wraps [ErrRecordTooLong]), and Split
	// goes on with the next record. If OnError is nil, such a record stops
	// Split with that error.
	OnError func(recordNo int, err error)
}

// Split reads a Logpush body from r and calls fn for every record in it, in
// order, with recordNo counting records from 1. raw holds the record without
// surrounding white space and is only valid until fn returns.
//
// The body is NDJSON (one JSON object per line; "\r\n" line endings, blank
// lines and a missing final newline are fine; blank lines are not counted as
// records) unless its first non-space byte is '[', in which case it is one
// JSON array whose elements are the records. Split does not check that
// records are JSON objects; [Normalizer.Normalize] does.
//
// Split stops at the first error fn returns and returns it unchanged. It
// returns a read error from r, or a malformed JSON array, wrapped with the
// number of the record being read.
func Split(r io.Reader, opts SplitOptions, fn func(recordNo int, raw []byte) error) error {
	limit := opts.MaxLineBytes
	if limit <= 0 {
		limit = DefaultMaxLineBytes
	}
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := skipLeadingSpace(br)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read record 1: %w", err)
	}
	s := splitter{limit: limit, onError: opts.OnError, fn: fn}
	if first == '[' {
		return s.array(br)
	}
	return s.lines(br)
}

type splitter struct {
	limit   int
	onError func(int, error)
	fn      func(int, []byte) error
	no      int
}

// tooLong reports the current record as too long.
func (s *splitter) tooLong() error {
	err := fmt.Errorf("record %d: %w: over %d bytes", s.no, ErrRecordTooLong, s.limit)
	if s.onError == nil {
		return err
	}
	s.onError(s.no, err)
	return nil
}

func (s *splitter) lines(br *bufio.Reader) error {
	var buf []byte
	for {
		line, over, err := readLine(br, &buf, s.limit)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read record %d: %w", s.no+1, err)
		}
		line = trimSpace(line)
		if over || len(line) > 0 {
			s.no++
			if over || len(line) > s.limit {
				if err := s.tooLong(); err != nil {
					return err
				}
			} else if err := s.fn(s.no, line); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine returns the next line, with its line ending, or reports that it
// is longer than limit (plus a line ending) after reading past it without
// keeping it. The line may point into br's buffer or into *buf and is valid
// until the next call. err is io.EOF for the last line.
func readLine(br *bufio.Reader, buf *[]byte, limit int) (line []byte, over bool, err error) {
	*buf = (*buf)[:0]
	for {
		chunk, err := br.ReadSlice('\n')
		if err == nil && len(*buf) == 0 && !over {
			return chunk, false, nil
		}
		if !over {
			if len(*buf)+len(chunk) > limit+2 {
				over = true
				*buf = (*buf)[:0]
			} else {
				*buf = append(*buf, chunk...)
			}
		}
		if err != bufio.ErrBufferFull {
			return *buf, over, err
		}
	}
}

func (s *splitter) array(br *bufio.Reader) error {
	dec := json.NewDecoder(br)
	if _, err := dec.Token(); err != nil { // the '[' seen by Split
		return fmt.Errorf("read JSON array: %w", err)
	}
	var raw json.RawMessage
	for dec.More() {
		s.no++
		raw = raw[:0]
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("read record %d of JSON array: %w", s.no, err)
		}
		if len(raw) > s.limit {
			if err := s.tooLong(); err != nil {
				return err
			}
			continue
		}
		if err := s.fn(s.no, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return fmt.Errorf("read JSON array after record %d: %w", s.no, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the JSON array")
		}
		return fmt.Errorf("read JSON array after record %d: %w", s.no, err)
	}
	return nil
}

// skipLeadingSpace consumes white space and a UTF-8 byte order mark, and
// returns the next byte without consuming it.
func skipLeadingSpace(br *bufio.Reader) (byte, error) {
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if !isSpace(c) {
			return c, br.UnreadByte()
		}
	}
}

// IsValidationProbe reports whether a decompressed request body is the file
// Cloudflare uploads to validate a Logpush destination: {"content":"tests"}
// as documented, or {"content":"test","filename":"test.txt"} as seen in the
// wild. More precisely, one JSON object whose keys are "content" and
// optionally "filename", content being "tests" or "test" (logpush.md §2.5).
func IsValidationProbe(body []byte) bool {
	body = trimSpace(body)
	if len(body) == 0 || len(body) > 256 || body[0] != '{' {
		return false
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return false
	}
	var content, filename string
	for k, v := range probe {
		var err error
		switch k {
		case "content":
			err = json.Unmarshal(v, &content)
		case "filename":
			err = json.Unmarshal(v, &filename)
		default:
			return false
		}
		if err != nil {
			return false
		}
	}
	return content == "tests" || content == "test"
}
