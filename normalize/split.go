package normalize

import (
	"bufio"
	"bytes"
	"encoding/binary"
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
// records), which may also hold JSON documents spread over several lines
// (pretty-printed) or several documents on one line (concatenated), unless
// its first non-space byte is '[', in which case it is one JSON array whose
// elements are the records. Split does not check that
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

// lines splits NDJSON, and also JSON documents spread over several lines
// (pretty-printed) or several on one line (concatenated): a record is a
// top-level JSON value, found by tracking brackets and strings. Text that
// does not start a JSON object or array runs to the end of its line and is
// passed on as one (bad) record.
func (s *splitter) lines(br *bufio.Reader) error {
	var buf, pending []byte
	var st scanState
	pendingLong := false // the pending record's first line held more than "{" or "["
	for {
		line, over, err := readLine(br, &buf, s.limit)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read record %d: %w", s.no+1, err)
		}
		line = trimSpace(line)
		if over {
			if len(pending) > 0 {
				pending, st = pending[:0], scanState{}
			}
			s.no++
			if err := s.tooLong(); err != nil {
				return err
			}
			line = nil
		}
		if len(pending) > 0 && len(line) > 0 && pendingLong && line[0] == '{' {
			if n, ok := (&scanState{}).feed(line); ok && n == len(line) {
				// A truncated NDJSON line followed by a whole one: the
				// truncated one is a bad record of its own.
				if err := s.emit(pending); err != nil {
					return err
				}
				pending, st = pending[:0], scanState{}
			}
		}
		for len(line) > 0 {
			if len(pending) > 0 {
				n, done := st.feed(line)
				if len(pending)+1+n > s.limit {
					pending, st = pending[:0], scanState{}
					s.no++
					if err := s.tooLong(); err != nil {
						return err
					}
					break
				}
				pending = append(append(pending, '\n'), line[:n]...)
				line = trimSpace(line[n:])
				if !done {
					break
				}
				if err := s.emit(pending); err != nil {
					return err
				}
				pending, st = pending[:0], scanState{}
				continue
			}
			if line[0] != '{' && line[0] != '[' {
				if err := s.emit(line); err != nil {
					return err
				}
				break
			}
			st = scanState{}
			n, done := st.feed(line)
			if done {
				if err := s.emit(line[:n]); err != nil {
					return err
				}
				line = trimSpace(line[n:])
				continue
			}
			pending = append(pending[:0], line...)
			pendingLong = len(line) > 1
			break
		}
		if err == io.EOF {
			if len(pending) > 0 {
				return s.emit(pending) // an unterminated record
			}
			return nil
		}
	}
}

// emit passes one record on.
func (s *splitter) emit(raw []byte) error {
	s.no++
	if len(raw) > s.limit {
		return s.tooLong()
	}
	return s.fn(s.no, raw)
}

// scanState follows the structure of a JSON value across calls.
type scanState struct {
	depth      int
	inStr, esc bool
	started    bool
}

// feed scans b and returns how many bytes it consumed and whether the value
// ended there.
func (st *scanState) feed(b []byte) (int, bool) {
	i := 0
	for i < len(b) {
		if st.inStr {
			if st.esc {
				st.esc = false
				i++
				continue
			}
			i = skipStringBytes(b, i)
			if i == len(b) {
				break
			}
			if b[i] == '\\' {
				st.esc = true
			} else {
				st.inStr = false
			}
			i++
			continue
		}
		for i < len(b) && !structStop[b[i]] {
			i++
		}
		if i == len(b) {
			break
		}
		switch b[i] {
		case '"':
			st.inStr = true
		case '{', '[':
			st.depth++
			st.started = true
		case '}', ']':
			st.depth--
			if st.depth <= 0 && st.started {
				return i + 1, true
			}
		}
		i++
	}
	return len(b), false
}

// skipStringBytes returns the index of the first quote or backslash in
// b[i:], or len(b): eight bytes at a time, then one at a time.
func skipStringBytes(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q := w ^ (ones * '"')
		bs := w ^ (ones * '\\')
		if ((q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
			break
		}
	}
	for i < len(b) && !inStringStop[b[i]] {
		i++
	}
	return i
}

// inStringStop and structStop mark the bytes that feed must look at inside
// and outside strings.
var inStringStop, structStop = func() (in, out [256]bool) {
	in['"'], in['\\'] = true, true
	for _, c := range `"{}[]` {
		out[c] = true
	}
	return in, out
}()

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
