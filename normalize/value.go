package normalize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unsafe"

	"github.com/valyala/fastjson"
)

// fieldKind is the type a field is cast to (rule R3 of the mapping spec).
type fieldKind uint8

const (
	kindText   fieldKind = iota + 1 // keyword/string: text; lists of text
	kindNumber                      // number/long/float: json.Number
	kindBool                        // bool
	kindObject                      // object/array: kept as structure
)

// builder accumulates one Event's Doc and Flat.
type builder struct {
	doc   map[string]any
	flat  map[string]any
	num   []byte // scratch space for number text
	arena []byte // backing store of the strings made by str
}

// newBuilder returns a builder for a record of size bytes with about fields
// top-level fields.
func newBuilder(size, fields int) *builder {
	return &builder{
		doc:   make(map[string]any, 16),
		flat:  make(map[string]any, fields+24),
		arena: make([]byte, 0, size),
	}
}

// str returns b as a string. The bytes are copied into one arena per record,
// so a record's strings cost one allocation instead of one each. This is
// safe because the arena is append-only: bytes behind a returned string are
// never written again, and a full arena is replaced, not grown in place.
func (b *builder) str(s []byte) string {
	if len(s) == 0 {
		return ""
	}
	if cap(b.arena)-len(b.arena) < len(s) {
		if len(s) > 1024 {
			return string(s)
		}
		b.arena = make([]byte, 0, 4096)
	}
	off := len(b.arena)
	b.arena = append(b.arena, s...)
	return unsafe.String(&b.arena[off], len(s))
}

// set stores v at the dotted path in Doc and Flat, creating the parent
// objects as needed. The path's parents must not be leaves.
func (b *builder) set(path string, v any) {
	m := b.doc
	rest := path
	for {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			break
		}
		child, ok := m[rest[:i]].(map[string]any)
		if !ok {
			child = make(map[string]any, 4)
			m[rest[:i]] = child
		}
		m = child
		rest = rest[i+1:]
	}
	m[rest] = v
	b.flat[path] = v
}

// setEmpty records in Flat that the field at path had the empty string,
// unless Flat already holds a value there.
func (b *builder) setEmpty(path string) {
	if _, ok := b.flat[path]; !ok {
		b.flat[path] = ""
	}
}

// isEmpty reports whether v is absent, null or the empty string, the values
// SEKOIA never sets (rule R2).
func isEmpty(v *fastjson.Value) bool {
	if v == nil {
		return true
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return true
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return len(b) == 0
	}
	return false
}

// isEmptyString reports whether v is the JSON string "".
func isEmptyString(v *fastjson.Value) bool {
	if v == nil || v.Type() != fastjson.TypeString {
		return false
	}
	b, _ := v.StringBytes()
	return len(b) == 0
}

// truthy reports Jinja truthiness: absent, null, "", 0, false, [] and {} are
// false (rule R12).
func truthy(v *fastjson.Value) bool {
	if v == nil {
		return false
	}
	switch v.Type() {
	case fastjson.TypeNull, fastjson.TypeFalse:
		return false
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return len(b) > 0
	case fastjson.TypeNumber:
		f, err := v.Float64()
		return err != nil || f != 0
	case fastjson.TypeArray:
		a, _ := v.Array()
		return len(a) > 0
	case fastjson.TypeObject:
		o, _ := v.Object()
		return o.Len() > 0
	}
	return true
}

// validNumber reports whether s is a number in JSON's grammar. fastjson also
// accepts NaN, Inf and stray signs, which encoding/json cannot write back.
func validNumber(s []byte) bool {
	i, n := 0, len(s)
	if i < n && s[i] == '-' {
		i++
	}
	switch {
	case i < n && s[i] == '0':
		i++
	case i < n && s[i] >= '1' && s[i] <= '9':
		for i < n && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < n && s[i] == '.' {
		i++
		if i == n || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < n && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < n && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == n || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < n && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == n
}

// number returns the number value v as text, checked against JSON's grammar.
func (b *builder) number(v *fastjson.Value, field string) (string, error) {
	b.num = v.MarshalTo(b.num[:0])
	if !validNumber(b.num) {
		return "", fmt.Errorf("field %q: invalid number %q", field, b.num)
	}
	return b.str(b.num), nil
}

// cast converts v to kind for field (named in errors). It returns nil for the
// values SEKOIA drops: null and "".
func (b *builder) cast(v *fastjson.Value, kind fieldKind, field, flatName string) (any, error) {
	if isEmpty(v) {
		return nil, nil
	}
	switch kind {
	case kindText:
		return b.text(v, field)
	case kindNumber:
		if v.Type() != fastjson.TypeNumber {
			return nil, fmt.Errorf("field %q: want number, got %s", field, typeName(v))
		}
		s, err := b.number(v, field)
		if err != nil {
			return nil, err
		}
		return json.Number(s), nil
	case kindBool:
		switch v.Type() {
		case fastjson.TypeTrue:
			return true, nil
		case fastjson.TypeFalse:
			return false, nil
		}
		return nil, fmt.Errorf("field %q: want bool, got %s", field, typeName(v))
	case kindObject:
		switch v.Type() {
		case fastjson.TypeObject, fastjson.TypeArray:
			return b.structure(v, field, flatName)
		}
		return nil, fmt.Errorf("field %q: want object or array, got %s", field, typeName(v))
	}
	panic("normalize: bad field kind")
}

// text casts a non-empty value to text (keyword): strings stay, numbers keep
// their JSON text, booleans become "true"/"false", a list becomes a list of
// text (empty elements dropped) and an object becomes compact JSON with
// sorted keys.
func (b *builder) text(v *fastjson.Value, field string) (any, error) {
	switch v.Type() {
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return b.str(s), nil
	case fastjson.TypeArray:
		a, _ := v.Array()
		list := make([]any, 0, len(a))
		for _, e := range a {
			if isEmpty(e) {
				continue
			}
			if t := e.Type(); t == fastjson.TypeArray || t == fastjson.TypeObject {
				s, err := b.compactJSON(e, field)
				if err != nil {
					return nil, err
				}
				list = append(list, s)
				continue
			}
			s, err := b.text(e, field)
			if err != nil {
				return nil, err
			}
			list = append(list, s)
		}
		return list, nil
	case fastjson.TypeObject:
		return b.compactJSON(v, field)
	}
	return b.scalarText(v, field)
}

// scalarText returns a number or boolean as text.
func (b *builder) scalarText(v *fastjson.Value, field string) (string, error) {
	switch v.Type() {
	case fastjson.TypeNumber:
		return b.number(v, field)
	case fastjson.TypeTrue:
		return "true", nil
	case fastjson.TypeFalse:
		return "false", nil
	}
	s, _ := v.StringBytes()
	return b.str(s), nil
}

// compactJSON returns an object or list as compact JSON text with sorted keys
// and without empty values.
func (b *builder) compactJSON(v *fastjson.Value, field string) (string, error) {
	x, err := b.structure(v, field, "")
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return "", fmt.Errorf("field %q: %w", field, err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// structure copies an object or list, dropping null and "" at every level
// (objects and lists alike) but keeping empty objects and lists. When flatName
// is not empty, the leaves of objects are added to Flat under it, with the
// empty strings; a list is a leaf of its own.
func (b *builder) structure(v *fastjson.Value, field, flatName string) (any, error) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		var err error
		o.Visit(func(k []byte, e *fastjson.Value) {
			if err != nil {
				return
			}
			key := b.str(k)
			var sub string
			if flatName != "" {
				sub = flatName + "." + key
			}
			if isEmpty(e) {
				delete(m, key) // a later duplicate key wins
				if sub != "" && isEmptyString(e) {
					b.flat[sub] = ""
				}
				return
			}
			name := field // only numbers, objects and lists can fail
			if t := e.Type(); t == fastjson.TypeNumber || t == fastjson.TypeObject || t == fastjson.TypeArray {
				name = field + "." + key
			}
			var x any
			x, err = b.structure(e, name, sub)
			if err != nil {
				return
			}
			m[key] = x
		})
		if err != nil {
			return nil, err
		}
		return m, nil
	case fastjson.TypeArray:
		a, _ := v.Array()
		list := make([]any, 0, len(a))
		for _, e := range a {
			if isEmpty(e) {
				continue
			}
			x, err := b.structure(e, field, "")
			if err != nil {
				return nil, err
			}
			list = append(list, x)
		}
		if flatName != "" {
			b.flat[flatName] = list
		}
		return list, nil
	case fastjson.TypeNumber:
		s, err := b.number(v, field)
		if err != nil {
			return nil, err
		}
		var x any = json.Number(s)
		if flatName != "" {
			b.flat[flatName] = x
		}
		return x, nil
	}
	s, err := b.scalarText(v, field)
	if err != nil {
		return nil, err
	}
	var x any = s
	switch v.Type() {
	case fastjson.TypeTrue:
		x = true
	case fastjson.TypeFalse:
		x = false
	}
	if flatName != "" {
		b.flat[flatName] = x
	}
	return x, nil
}
