package normalize

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

type splitResult struct {
	Records []string // "n:raw"
	Errors  []string // "n:error"
	Err     string
}

func runSplit(r io.Reader, limit int) splitResult {
	var res splitResult
	opts := SplitOptions{
		MaxLineBytes: limit,
		OnError: func(n int, err error) {
			if !errors.Is(err, ErrRecordTooLong) {
				panic(err)
			}
			res.Errors = append(res.Errors, fmt.Sprintf("%d:%v", n, err))
		},
	}
	err := Split(r, opts, func(n int, raw []byte) error {
		res.Records = append(res.Records, fmt.Sprintf("%d:%s", n, raw))
		return nil
	})
	if err != nil {
		res.Err = err.Error()
	}
	return res
}

func TestSplit(t *testing.T) {
	long := `{"a":"` + strings.Repeat("x", 100<<10) + `"}` // over bufio's buffer
	tests := []struct {
		name  string
		body  string
		limit int
		want  splitResult
	}{
		{"empty", "", 0, splitResult{}},
		{"white space", " \r\n\n\t", 0, splitResult{}},
		{"ndjson", "{\"a\":1}\n{\"a\":2}\n", 0, splitResult{Records: []string{`1:{"a":1}`, `2:{"a":2}`}}},
		{"no final newline", "{\"a\":1}\n{\"a\":2}", 0, splitResult{Records: []string{`1:{"a":1}`, `2:{"a":2}`}}},
		{"crlf and blank lines", "\r\n{\"a\":1}\r\n\r\n  \r\n{\"a\":2}\r\n\r\n\n", 0,
			splitResult{Records: []string{`1:{"a":1}`, `2:{"a":2}`}}},
		{"bom", "\xef\xbb\xbf{\"a\":1}\n", 0, splitResult{Records: []string{`1:{"a":1}`}}},
		{"bad line passed on", "{\"a\":1}\nnot json\n{\"a\":3}\n", 0,
			splitResult{Records: []string{`1:{"a":1}`, `2:not json`, `3:{"a":3}`}}},
		{"pretty-printed document", "{\r\n\"a\": 1,\r\n  \"b\": {\"c\": \"}\\\"{\"}\r\n}\r\n\r\n", 0,
			splitResult{Records: []string{"1:{\n\"a\": 1,\n\"b\": {\"c\": \"}\\\"{\"}\n}"}}},
		{"concatenated pretty-printed documents", "{\n  \"a\": 1\n}\n{\n  \"a\": [\n    2\n  ]\n}{\"a\":3}\n", 0,
			splitResult{Records: []string{"1:{\n\"a\": 1\n}", "2:{\n\"a\": [\n2\n]\n}", `3:{"a":3}`}}},
		{"concatenated on one line", `{"a":1}{"a":2} {"a":3}` + "\n", 0,
			splitResult{Records: []string{`1:{"a":1}`, `2:{"a":2}`, `3:{"a":3}`}}},
		{"truncated line then a whole one", "{\"a\":1\n{\"a\":2}\n{\"a\":3}\n", 0,
			splitResult{Records: []string{`1:{"a":1`, `2:{"a":2}`, `3:{"a":3}`}}},
		{"unterminated last document", "{\"a\":1}\n{\n\"a\":", 0,
			splitResult{Records: []string{`1:{"a":1}`, "2:{\n\"a\":"}}},
		{"garbage after a record", `{"a":1} trailing` + "\n{\"a\":2}", 0,
			splitResult{Records: []string{`1:{"a":1}`, `2:trailing`, `3:{"a":2}`}}},
		{"json array", " [ {\"a\":1},\n {\"a\":[2]} ]\n", 0, splitResult{Records: []string{`1:{"a":1}`, `2:{"a":[2]}`}}},
		{"empty json array", "[]", 0, splitResult{}},
		{"overlong line", "{\"a\":1}\n{\"a\":\"0123456789\"}\r\n{\"a\":3}", 12, splitResult{
			Records: []string{`1:{"a":1}`, `3:{"a":3}`},
			Errors:  []string{"2:record 2: record too long: over 12 bytes"},
		}},
		{"overlong line over the read buffer", "{\"a\":1}\n" + long + "\n" + long + "\n{\"a\":4}\n", 1000, splitResult{
			Records: []string{`1:{"a":1}`, `4:{"a":4}`},
			Errors:  []string{"2:record 2: record too long: over 1000 bytes", "3:record 3: record too long: over 1000 bytes"},
		}},
		{"overlong last line", "{\"a\":1}\n" + long, 1000, splitResult{
			Records: []string{`1:{"a":1}`},
			Errors:  []string{"2:record 2: record too long: over 1000 bytes"},
		}},
		{"line at the limit", "{\"a\":\"0123\"}\r\n", 12, splitResult{Records: []string{`1:{"a":"0123"}`}}},
		{"overlong array element", `[{"a":1},{"a":"0123456789"},{"a":3}]`, 12, splitResult{
			Records: []string{`1:{"a":1}`, `3:{"a":3}`},
			Errors:  []string{"2:record 2: record too long: over 12 bytes"},
		}},
		{"broken json array", `[{"a":1},{"a":`, 0, splitResult{
			Records: []string{`1:{"a":1}`},
			Err:     "read record 2 of JSON array: unexpected EOF",
		}},
		{"data after json array", `[{"a":1}] {"b":2}`, 0, splitResult{
			Records: []string{`1:{"a":1}`},
			Err:     "read JSON array after record 1: data after the JSON array",
		}},
	}
	for _, tt := range tests {
		got := runSplit(strings.NewReader(tt.body), tt.limit)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Split(%s) (-want +got):\n%s", tt.name, diff)
		}
		// The same with one byte per Read.
		got = runSplit(iotest.OneByteReader(strings.NewReader(tt.body)), tt.limit)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Split(%s) one byte at a time (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestSplitStops(t *testing.T) {
	stop := errors.New("stop")
	var seen []int
	err := Split(strings.NewReader("{}\n{}\n{}\n"), SplitOptions{}, func(n int, _ []byte) error {
		seen = append(seen, n)
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || !cmp.Equal(seen, []int{1, 2}) {
		t.Errorf("Split with fn failing at 2 = %v, saw %v; want %v, [1 2]", err, seen, stop)
	}

	// Without OnError, an overlong record stops Split.
	err = Split(strings.NewReader("{}\n{\"a\":123456}\n{}\n"), SplitOptions{MaxLineBytes: 4}, func(int, []byte) error { return nil })
	if !errors.Is(err, ErrRecordTooLong) {
		t.Errorf("Split without OnError = %v; want ErrRecordTooLong", err)
	}

	// A read error is returned wrapped, after the records before it.
	boom := errors.New("boom")
	seen = nil
	r := io.MultiReader(strings.NewReader("{}\n{}\n{\"partial"), iotest.ErrReader(boom))
	err = Split(r, SplitOptions{}, func(n int, _ []byte) error { seen = append(seen, n); return nil })
	if !errors.Is(err, boom) || err.Error() != "read record 3: boom" || !cmp.Equal(seen, []int{1, 2}) {
		t.Errorf("Split with a read error = %v, saw %v; want read record 3: boom, [1 2]", err, seen)
	}
	err = Split(iotest.ErrReader(boom), SplitOptions{}, func(int, []byte) error { return nil })
	if !errors.Is(err, boom) {
		t.Errorf("Split of a failing reader = %v; want %v wrapped", err, boom)
	}
}

func TestIsValidationProbe(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"content":"tests"}`, true},
		{"{\"content\":\"tests\"}\n", true},
		{" { \"content\" : \"tests\" }\r\n", true},
		{`{"content": "test", "filename": "test.txt"}`, true},
		{`{"content":"test"}`, true},
		{`{"content":"tests","RayID":"x"}`, false},
		{`{"content":"other"}`, false},
		{`{"content":1}`, false},
		{`{"filename":"test.txt"}`, false},
		{`{"content":"tests"}{"content":"tests"}`, false},
		{`["content"]`, false},
		{``, false},
		{`{"RayID":"72d807ffeba5753d"}`, false},
	}
	for _, tt := range tests {
		if got := IsValidationProbe([]byte(tt.body)); got != tt.want {
			t.Errorf("IsValidationProbe(%q) = %v; want %v", tt.body, got, tt.want)
		}
	}
}

// feedBytewise is the byte-at-a-time definition of scanState.feed, which
// skips through strings with IndexByte.
func feedBytewise(st *scanState, b []byte) (int, bool) {
	for i, c := range b {
		switch {
		case st.inStr:
			switch {
			case st.esc:
				st.esc = false
			case c == '\\':
				st.esc = true
			case c == '"':
				st.inStr = false
			}
		case c == '"':
			st.inStr = true
		case c == '{' || c == '[':
			st.depth++
			st.started = true
		case c == '}' || c == ']':
			st.depth--
			if st.depth <= 0 && st.started {
				return i + 1, true
			}
		}
	}
	return len(b), false
}

func TestScanStateFeedMatchesBytewise(t *testing.T) {
	const alphabet = `"\{}[]a `
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 200000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		var got, want scanState
		// Feed in random pieces, as lines arrive.
		for rest := b; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			gn, gd := got.feed(rest[:n])
			wn, wd := feedBytewise(&want, rest[:n])
			if gn != wn || gd != wd || got != want {
				t.Fatalf("case %d %q piece %q: feed = %d, %v, %+v; bytewise %d, %v, %+v", iter, b, rest[:n], gn, gd, got, wn, wd, want)
			}
			if gd {
				break
			}
			rest = rest[n:]
		}
	}
}

func BenchmarkScanStateFeed(b *testing.B) {
	line := []byte(`{"ClientIP":"203.0.113.7","ClientRequestHost":"www.example.com","ClientRequestMethod":"GET","ClientRequestURI":"/path/to/a/page?with=query&and=\"escapes\"","ClientRequestUserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","EdgeResponseStatus":200,"EdgeStartTimestamp":1700000000000000000,"RayID":"8a1b2c3d4e5f6a7b","Headers":{"a":["x","y"]}}`)
	b.Run("feed", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			var st scanState
			if _, done := st.feed(line); !done {
				b.Fatal("not done")
			}
		}
	})
	b.Run("bytewise", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			var st scanState
			if _, done := feedBytewise(&st, line); !done {
				b.Fatal("not done")
			}
		}
	})
}
