package normalize

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson/fastfloat"
)

// The records are parsed by jparser, which accepts the same language as
// github.com/valyala/fastjson (numbers and strings are checked only when a
// decoder reads them; escapes are undone on a best-effort basis) and, like
// it, does not allocate once warm. Unlike fastjson it does not copy the
// record: strings without escapes point into it, the others into a scratch
// buffer. It keeps the values in one slice in pre-order, with the keys
// undone as it goes, so a decoder finds a record's fields with one pass
// over its members.

// jtype is the type of a JSON value.
type jtype uint8

const (
	jNull jtype = iota + 1
	jTrue
	jFalse
	jNumber
	jString
	jObject
	jArray
)

// String names t as fastjson does, for error messages.
func (t jtype) String() string {
	switch t {
	case jNull:
		return "null"
	case jTrue:
		return "true"
	case jFalse:
		return "false"
	case jNumber:
		return "number"
	case jString:
		return "string"
	case jObject:
		return "object"
	case jArray:
		return "array"
	}
	return "unknown"
}

// jvalue is one value of a parsed record. The members of an object and the
// elements of an array follow it in the parser's slice, up to end.
type jvalue struct {
	s   string // jString: the text, escapes undone; jNumber: the number's JSON text
	key string // the key in the containing object, escapes undone
	idx int32  // own index in the parser's slice
	end int32  // index just past the last descendant
	n   int32  // jObject, jArray: the number of members or elements
	t   jtype
	// owned is set once s has been copied to an Event's arena (builder.own).
	owned bool
}

// Type returns the type of v.
func (v *jvalue) Type() jtype { return v.t }

// float returns the number v as a float64, as fastjson's Float64 does.
func (v *jvalue) float() (float64, error) {
	if v.t != jNumber {
		return 0, fmt.Errorf("value doesn't contain number; it contains %s", v.t)
	}
	return fastfloat.Parse(v.s)
}

// jmaxDepth bounds the nesting of parsed values, as fastjson.MaxDepth does.
const jmaxDepth = 300

// jparser parses records. It is reused across records and is not safe for
// concurrent use.
type jparser struct {
	vals []jvalue
	buf  []byte // the text being parsed
	esc  []byte // the strings with escapes, undone; never reallocated during a parse
}

// parse parses raw and returns the root value. The values and their
// strings, which point into raw and the parser's buffer, stay valid until
// the next parse and as long as raw is not modified.
func (p *jparser) parse(raw []byte) (*jvalue, error) {
	p.buf = raw
	buf := raw
	p.vals = p.vals[:0]
	if cap(p.esc) < len(raw) {
		p.esc = make([]byte, 0, len(raw)) // undone escapes are never longer
	}
	p.esc = p.esc[:0]
	i := skipWS(buf, 0)
	i, err := p.value(i, 0, "")
	if err != nil {
		return nil, err
	}
	if i = skipWS(buf, i); i < len(buf) {
		return nil, fmt.Errorf("unexpected tail at offset %d: %q", i, snippet(buf[i:]))
	}
	return &p.vals[0], nil
}

// child returns the first member or element of v, or nil.
func (p *jparser) child(v *jvalue) *jvalue {
	if v.n == 0 {
		return nil
	}
	return &p.vals[v.idx+1]
}

// next returns the member or element of v that follows c, or nil.
func (p *jparser) next(v, c *jvalue) *jvalue {
	if c.end >= v.end {
		return nil
	}
	return &p.vals[c.end]
}

// get returns the first member of object v with key, or nil.
func (p *jparser) get(v *jvalue, key string) *jvalue {
	if v == nil || v.t != jObject {
		return nil
	}
	for c := p.child(v); c != nil; c = p.next(v, c) {
		if c.key == key {
			return c
		}
	}
	return nil
}

func snippet(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "..."
	}
	return string(b)
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\n', '\t', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

var errEmpty = errors.New("cannot parse empty string")

// value parses the value at buf[i:] with the given key and returns the
// offset past it.
func (p *jparser) value(i, depth int, key string) (int, error) {
	buf := p.buf
	if i >= len(buf) {
		return i, errEmpty
	}
	if depth++; depth > jmaxDepth {
		return i, fmt.Errorf("too big depth for the nested JSON; it exceeds %d", jmaxDepth)
	}
	idx := len(p.vals)
	// Field by field, as in builder.put.
	if idx < cap(p.vals) {
		p.vals = p.vals[:idx+1]
	} else {
		p.vals = append(p.vals, jvalue{})
	}
	v := &p.vals[idx] // valid until a member or element is appended
	v.s, v.key, v.idx, v.end, v.n, v.owned = "", key, int32(idx), int32(idx+1), 0, false
	switch c := buf[i]; c {
	case '{':
		return p.object(i+1, depth, idx)
	case '[':
		return p.array(i+1, depth, idx)
	case '"':
		s, j, err := p.str(i + 1)
		v.t, v.s = jString, s
		return j, err
	case 't':
		if !hasWord(buf[i:], "true") {
			return i, fmt.Errorf("unexpected value at offset %d: %q", i, snippet(buf[i:]))
		}
		v.t = jTrue
		return i + 4, nil
	case 'f':
		if !hasWord(buf[i:], "false") {
			return i, fmt.Errorf("unexpected value at offset %d: %q", i, snippet(buf[i:]))
		}
		v.t = jFalse
		return i + 5, nil
	case 'n':
		if hasWord(buf[i:], "null") {
			v.t = jNull
			return i + 4, nil
		}
		if len(buf)-i >= 3 && isNaN(buf[i:i+3]) {
			v.t, v.s = jNumber, p.text(i, i+3)
			return i + 3, nil
		}
		return i, fmt.Errorf("unexpected value at offset %d: %q", i, snippet(buf[i:]))
	}
	j, err := p.number(i)
	v.t, v.s = jNumber, p.text(i, j)
	return j, err
}

func hasWord(b []byte, w string) bool { return len(b) >= len(w) && string(b[:len(w)]) == w }

// text returns buf[i:j] as a string that points into buf.
func (p *jparser) text(i, j int) string {
	if i == j {
		return ""
	}
	return unsafe.String(&p.buf[i], j-i)
}

func lower(c byte) byte { return c | 0x20 }

func isNaN(b []byte) bool { return lower(b[0]) == 'n' && lower(b[1]) == 'a' && lower(b[2]) == 'n' }
func isInf(b []byte) bool { return lower(b[0]) == 'i' && lower(b[1]) == 'n' && lower(b[2]) == 'f' }

// number returns the offset past the number at buf[i:]: a run of digits,
// signs, dots and exponents, or a (signed) inf or nan, as fastjson takes it.
func (p *jparser) number(i int) (int, error) {
	buf := p.buf
	for j := i; j < len(buf); j++ {
		c := buf[j]
		if '0' <= c && c <= '9' || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+' {
			continue
		}
		if j == i || j == i+1 && (buf[i] == '-' || buf[i] == '+') {
			if len(buf)-j >= 3 && (isInf(buf[j:j+3]) || isNaN(buf[j:j+3])) {
				return j + 3, nil
			}
			return j, fmt.Errorf("unexpected char at offset %d: %q", j, buf[j:j+1])
		}
		return j, nil
	}
	return len(buf), nil
}

// object parses the members of the object at index idx, buf[i:] following
// its '{'.
func (p *jparser) object(i, depth, idx int) (int, error) {
	buf := p.buf
	n := int32(0)
	i = skipWS(buf, i)
	if i < len(buf) && buf[i] == '}' {
		i++
	} else {
		for {
			i = skipWS(buf, i)
			if i >= len(buf) || buf[i] != '"' {
				return i, fmt.Errorf(`cannot find opening '"' for object key at offset %d`, i)
			}
			key, j, err := p.str(i + 1)
			if err != nil {
				return j, err
			}
			if i = skipWS(buf, j); i >= len(buf) || buf[i] != ':' {
				return i, fmt.Errorf("missing ':' after object key at offset %d", i)
			}
			i = skipWS(buf, i+1)
			if i, err = p.value(i, depth, key); err != nil {
				return i, err
			}
			n++
			if i = skipWS(buf, i); i >= len(buf) {
				return i, errors.New("unexpected end of object")
			}
			if buf[i] == ',' {
				i++
				continue
			}
			if buf[i] == '}' {
				i++
				break
			}
			return i, fmt.Errorf("missing ',' after object value at offset %d", i)
		}
	}
	v := &p.vals[idx]
	v.t, v.n, v.end = jObject, n, int32(len(p.vals))
	return i, nil
}

// array parses the elements of the array at index idx, buf[i:] following
// its '['.
func (p *jparser) array(i, depth, idx int) (int, error) {
	buf := p.buf
	n := int32(0)
	i = skipWS(buf, i)
	if i < len(buf) && buf[i] == ']' {
		i++
	} else {
		for {
			var err error
			i = skipWS(buf, i)
			if i, err = p.value(i, depth, ""); err != nil {
				return i, err
			}
			n++
			if i = skipWS(buf, i); i >= len(buf) {
				return i, errors.New("unexpected end of array")
			}
			if buf[i] == ',' {
				i++
				continue
			}
			if buf[i] == ']' {
				i++
				break
			}
			return i, fmt.Errorf("missing ',' after array value at offset %d", i)
		}
	}
	v := &p.vals[idx]
	v.t, v.n, v.end = jArray, n, int32(len(p.vals))
	return i, nil
}

// str parses the string whose text starts at buf[i] and returns it, its
// escapes undone, and the offset past its closing quote.
func (p *jparser) str(i int) (string, int, error) {
	buf := p.buf
	esc := false
	for j := i; j < len(buf); j++ {
		// Skip eight bytes at a time while none is '"' or '\\'.
		for j+8 <= len(buf) {
			x := binary.LittleEndian.Uint64(buf[j:])
			q, bs := x^(lsb*'"'), x^(lsb*'\\')
			if m := ((q - lsb) &^ q) | ((bs - lsb) &^ bs); m&msb != 0 {
				j += bits.TrailingZeros64(m&msb) / 8
				break
			}
			j += 8
		}
		if j >= len(buf) {
			break
		}
		switch buf[j] {
		case '"':
			if !esc {
				return p.text(i, j), j + 1, nil
			}
			// Undo the escapes in a copy: raw is not ours to rewrite.
			off := len(p.esc)
			p.esc = append(p.esc, buf[i:j]...)
			n := unescape(p.esc[off:])
			p.esc = p.esc[:off+n]
			if n == 0 {
				return "", j + 1, nil
			}
			return unsafe.String(&p.esc[off], n), j + 1, nil
		case '\\':
			esc = true
			j++
		}
	}
	return "", len(buf), fmt.Errorf(`missing closing '"' for the string at offset %d`, i-1)
}

// lsb and msb have the lowest and the highest bit of each byte set.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// unescape undoes the escapes of b in place, on a best-effort basis as
// fastjson does (an invalid escape is kept as it is), and returns the
// length of the result, which is never longer.
func unescape(b []byte) int {
	w, r := 0, 0
	for r < len(b) {
		c := b[r]
		r++
		if c != '\\' {
			b[w] = c
			w++
			continue
		}
		if r == len(b) { // cannot happen: the closing quote would be escaped
			b[w] = c
			w++
			break
		}
		c = b[r]
		r++
		switch c {
		case '"', '\\', '/':
			b[w] = c
			w++
		case 'b':
			b[w] = '\b'
			w++
		case 'f':
			b[w] = '\f'
			w++
		case 'n':
			b[w] = '\n'
			w++
		case 'r':
			b[w] = '\r'
			w++
		case 't':
			b[w] = '\t'
			w++
		case 'u':
			x, ok := hex4(b[r:])
			if !ok {
				w += copy(b[w:], `\u`)
				break
			}
			r += 4
			if !utf16.IsSurrogate(rune(x)) {
				w += utf8.EncodeRune(b[w:], rune(x))
				break
			}
			x1, ok := uint64(0), len(b)-r >= 6 && b[r] == '\\' && b[r+1] == 'u'
			if ok {
				x1, ok = hex4(b[r+2:])
			}
			if !ok {
				w += copy(b[w:], `\u`)
				w += copy(b[w:], b[r-4:r])
				break
			}
			w += utf8.EncodeRune(b[w:], utf16.DecodeRune(rune(x), rune(x1)))
			r += 6
		default:
			b[w], b[w+1] = '\\', c
			w += 2
		}
	}
	return w
}

// hex4 parses the four hex digits at the start of b.
func hex4(b []byte) (uint64, bool) {
	if len(b) < 4 {
		return 0, false
	}
	x, err := strconv.ParseUint(unsafe.String(&b[0], 4), 16, 16)
	return x, err == nil
}
