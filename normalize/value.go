package normalize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unsafe"
)

// fieldKind is the type a field is cast to (rule R3 of the mapping spec).
type fieldKind uint8

const (
	kindText   fieldKind = iota + 1 // keyword/string: text; lists of text
	kindNumber                      // number/long/float: exact JSON number text
	kindBool                        // bool
	kindObject                      // object/array: kept as structure
)

// builder writes one record's fields into an Event. It is scratch space
// reused across records; the Event's strings live in arena chunks that are
// never written again once a string points into them.
type builder struct {
	ev    *Event
	ds    *dataset
	err   error // the first error of the record
	arena []byte
	jp    *jparser
	vals  []*jvalue   // the record's values by slot of its dataset
	rel   [3][]string // related.ip, related.hosts, related.hash
	ua    *uaCache
	// textsAt is the offset in arena where the record's strings start;
	// -1 once they spill into a new chunk (see coverTexts).
	textsAt int
	// start is the offset in arena where the record's strings start, 0
	// in a chunk started during the record (see Event.Reuse).
	start int
}

// str returns s as a string that points into the arena. Arena strings are
// followed by a zero byte, which keeps the record's texts apart for
// [Event.Texts].
func (b *builder) str(s string) string {
	if len(s) == 0 {
		return ""
	}
	if cap(b.arena)-len(b.arena) < len(s)+1 {
		if len(s) > arenaChunk/4 {
			return strings.Clone(s)
		}
		b.newChunk()
	}
	off := len(b.arena)
	b.arena = append(b.arena, s...)
	b.arena = append(b.arena, 0)
	return unsafe.String(&b.arena[off], len(s))
}

// newChunk starts a new arena chunk; the record's texts are then no longer
// in one piece.
func (b *builder) newChunk() {
	b.arena = make([]byte, 0, arenaChunk)
	b.textsAt, b.start = -1, 0
}

// strBytes is str for a byte slice.
func (b *builder) strBytes(s []byte) string {
	return b.str(unsafe.String(unsafe.SliceData(s), len(s)))
}

// own returns the text of string or number v as an arena string. The text
// of a parsed value points into the parser's buffer, which the next record
// overwrites; it is copied once, on first use.
func (b *builder) own(v *jvalue) string {
	if !v.owned {
		v.s, v.owned = b.str(v.s), true
	}
	return v.s
}

// concat returns a+"."+c in the arena.
func (b *builder) join(a, c string) string {
	n := len(a) + 1 + len(c)
	if cap(b.arena)-len(b.arena) < n+1 {
		if n > arenaChunk/4 {
			return a + "." + c
		}
		b.newChunk()
	}
	off := len(b.arena)
	b.arena = append(b.arena, a...)
	b.arena = append(b.arena, '.')
	b.arena = append(b.arena, c...)
	b.arena = append(b.arena, 0)
	return unsafe.String(&b.arena[off], n)
}

// top returns the live top-level entry of field id, or -1.
func (b *builder) top(id uint16) int { return int(b.ev.index[id]) - 1 }

// put appends a top-level entry for field id, replacing the one before.
func (b *builder) put(id uint16, kind uint8, text string) int {
	ev := b.ev
	if i := b.top(id); i >= 0 {
		x := &ev.ents[i]
		if x.kind != kObj && x.kind != kList && kind != kObj && kind != kList {
			x.kind, x.text = kind, text
			return i
		}
		x.dead = true
	}
	i := len(ev.ents)
	// Field by field: appending a composite literal copies it whole, with
	// a write barrier call per pointer while the GC runs.
	if i < cap(ev.ents) {
		ev.ents = ev.ents[:i+1]
	} else {
		ev.ents = append(ev.ents, entry{})
	}
	x := &ev.ents[i]
	x.name, x.key, x.text = fieldNames[id], "", text
	x.parent, x.end, x.id, x.kind, x.dead = -1, int32(i+1), id, kind, false
	ev.index[id] = int32(i + 1)
	return i
}

func (b *builder) setText(id uint16, s string) { b.put(id, kStr, s) }
func (b *builder) setNum(id uint16, s string)  { b.put(id, kNum, s) }
func (b *builder) setBool(id uint16, v bool) {
	if v {
		b.put(id, kTrue, "")
	} else {
		b.put(id, kFalse, "")
	}
}

// setEmpty records that field id had the empty string, unless it holds a
// value already.
func (b *builder) setEmpty(id uint16) {
	if b.top(id) < 0 {
		b.put(id, kEmpty, "")
	}
}

// has reports whether field id holds a value (not the empty string).
func (b *builder) has(id uint16) bool {
	i := b.top(id)
	return i >= 0 && b.ev.ents[i].kind != kEmpty
}

// get returns the text of scalar field id.
func (b *builder) get(id uint16) (string, bool) {
	i := b.top(id)
	if i < 0 || b.ev.ents[i].kind == kEmpty {
		return "", false
	}
	return b.ev.ents[i].scalar()
}

// setList sets field id to a list of strings.
func (b *builder) setList(id uint16, items ...string) {
	i := b.put(id, kList, "")
	ev := b.ev
	for _, s := range items {
		ev.ents = append(ev.ents, entry{text: s, parent: int32(i), end: int32(len(ev.ents) + 1), kind: kStr})
	}
	ev.ents[i].end = int32(len(ev.ents))
}

// isEmpty reports whether v is absent, null or the empty string, the values
// SEKOIA never sets (rule R2).
func isEmpty(v *jvalue) bool {
	if v == nil {
		return true
	}
	switch v.t {
	case jNull:
		return true
	case jString:
		return len(v.s) == 0
	}
	return false
}

// isEmptyString reports whether v is the JSON string "".
func isEmptyString(v *jvalue) bool {
	return v != nil && v.t == jString && len(v.s) == 0
}

// truthy reports Jinja truthiness: absent, null, "", 0, false, [] and {} are
// false (rule R12).
func truthy(v *jvalue) bool {
	if v == nil {
		return false
	}
	switch v.Type() {
	case jNull, jFalse:
		return false
	case jString:
		return len(v.s) > 0
	case jNumber:
		f, err := v.float()
		return err != nil || f != 0
	case jArray, jObject:
		return v.n > 0
	}
	return true
}

// validNumber reports whether s is a number in JSON's grammar. fastjson also
// accepts NaN, Inf and stray signs, which encoding/json cannot write back.
func validNumber[T string | []byte](s T) bool {
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
func (b *builder) number(v *jvalue, field string) (string, error) {
	if !validNumber(v.s) {
		return "", fieldErr(field, "invalid number %q", v.s)
	}
	return b.own(v), nil
}

// text returns a scalar value as text: strings as they are, numbers as their
// JSON text, booleans "true"/"false".
func (b *builder) text(v *jvalue, field string) (string, error) {
	switch v.Type() {
	case jString:
		return b.own(v), nil
	case jNumber:
		return b.number(v, field)
	case jTrue:
		return "true", nil
	case jFalse:
		return "false", nil
	}
	return "", fieldErr(field, "want text, got %s", typeName(v))
}

// set casts record value v to kind and stores it at top-level field id.
// null leaves the field as it is and "" records an empty value (rule R2);
// field names the record key in errors.
func (b *builder) set(id uint16, v *jvalue, kind fieldKind, field string) error {
	if v == nil || v.Type() == jNull {
		return nil
	}
	if isEmptyString(v) {
		b.setEmpty(id)
		return nil
	}
	switch kind {
	case kindText:
		switch v.Type() {
		case jArray:
			return b.undoOnError(id, func() error { return b.textList(id, v, field) })
		case jObject:
			s, err := b.compactJSON(v, field)
			if err != nil {
				return err
			}
			b.setText(id, s)
			return nil
		}
		s, err := b.text(v, field)
		if err != nil {
			return err
		}
		b.setText(id, s)
	case kindNumber:
		switch {
		case v.Type() == jString && validNumber(v.s):
			// A number in a string, as some tools write Cloudflare
			// records ("EdgeResponseBytes": "69045").
		case v.Type() != jNumber:
			return fieldErr(field, "want number, got %s", typeName(v))
		}
		s, err := b.number(v, field)
		if err != nil {
			return err
		}
		b.setNum(id, s)
	case kindBool:
		switch v.Type() {
		case jTrue:
			b.setBool(id, true)
		case jFalse:
			b.setBool(id, false)
		default:
			return fieldErr(field, "want bool, got %s", typeName(v))
		}
	case kindObject:
		t := v.Type()
		if t != jObject && t != jArray {
			return fieldErr(field, "want object or array, got %s", typeName(v))
		}
		return b.undoOnError(id, func() error {
			if i := b.top(id); i >= 0 {
				b.ev.ents[i].dead = true
			}
			i := len(b.ev.ents)
			if err := b.structure(v, -1, fieldNames[id], ""); err != nil {
				return wrapField(err, field)
			}
			b.ev.ents[i].id = id
			b.ev.index[id] = int32(i + 1)
			return nil
		})
	default:
		panic("normalize: bad field kind")
	}
	return nil
}

// undoOnError runs put, which appends the entries of top-level field id;
// if it fails, the entries go and the field's previous value (if any) is
// restored.
func (b *builder) undoOnError(id uint16, put func() error) error {
	ev := b.ev
	n, prev := len(ev.ents), b.top(id)
	err := put()
	if err == nil {
		return nil
	}
	ev.ents = ev.ents[:n]
	ev.index[id] = 0
	if prev >= 0 {
		ev.ents[prev].dead = false
		ev.index[id] = int32(prev + 1)
	}
	return err
}

// textList stores a list cast to text (addendum 1): each element becomes
// text, objects and lists compact JSON with sorted keys; empty elements are
// dropped.
func (b *builder) textList(id uint16, v *jvalue, field string) error {
	i := b.put(id, kList, "")
	ev := b.ev
	for e := b.jp.child(v); e != nil; e = b.jp.next(v, e) {
		if isEmpty(e) {
			continue
		}
		var s string
		var err error
		switch e.Type() {
		case jArray, jObject:
			s, err = b.compactJSON(e, field)
		default:
			s, err = b.text(e, field)
		}
		if err != nil {
			return err
		}
		ev.ents = append(ev.ents, entry{text: s, parent: int32(i), end: int32(len(ev.ents) + 1), kind: kStr})
	}
	ev.ents[i].end = int32(len(ev.ents))
	return nil
}

// compactJSON returns an object or list as compact JSON text with sorted keys
// and without empty values.
func (b *builder) compactJSON(v *jvalue, field string) (string, error) {
	x, err := toAny(b.jp, v, field)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return "", fieldErr(field, "%v", err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// toAny converts v to Go values, dropping null and "" at every level.
func toAny(p *jparser, v *jvalue, field string) (any, error) {
	switch v.t {
	case jObject:
		m := make(map[string]any, v.n)
		for e := p.child(v); e != nil; e = p.next(v, e) {
			if isEmpty(e) {
				delete(m, e.key)
				continue
			}
			x, err := toAny(p, e, field+"."+e.key)
			m[e.key] = x
			if err != nil {
				return m, err
			}
		}
		return m, nil
	case jArray:
		l := make([]any, 0, v.n)
		for e := p.child(v); e != nil; e = p.next(v, e) {
			if isEmpty(e) {
				continue
			}
			x, err := toAny(p, e, field)
			if err != nil {
				return nil, err
			}
			l = append(l, x)
		}
		return l, nil
	case jNumber:
		if !validNumber(v.s) {
			return nil, fieldErr(field, "invalid number %q", v.s)
		}
		return json.Number(v.s), nil
	case jString:
		return v.s, nil
	case jTrue:
		return true, nil
	case jFalse:
		return false, nil
	}
	return nil, nil
}

// maxDepth bounds the nesting of copied structures.
const maxDepth = 64

// structure appends v and its members as entries under parent. name is its
// flat name ("" inside lists), key its key in the parent object, field its
// path in the record for errors. null and "" are dropped at every level
// (objects and lists alike), but an object member that is "" stays in the
// flat view; empty objects and lists are kept.
func (b *builder) structure(v *jvalue, parent int, name, key string) error {
	ev := b.ev
	i := len(ev.ents)
	switch v.t {
	case jObject:
		if depth(ev, parent) >= maxDepth {
			return &fieldError{msg: "nested too deep"}
		}
		ev.ents = append(ev.ents, entry{name: name, key: key, parent: int32(parent), kind: kObj})
		var seen map[string]int // for large objects
		if v.n > 16 {
			seen = make(map[string]int, v.n)
		}
		for e := b.jp.child(v); e != nil; e = b.jp.next(v, e) {
			mkey := b.str(e.key)
			if prev := b.member(i, seen, mkey); prev >= 0 {
				ev.ents[prev].dead = true // a later duplicate key wins
			}
			if e.t == jNull {
				continue
			}
			var mname string
			if name != "" {
				mname = b.join(name, mkey)
			}
			j := len(ev.ents)
			if isEmptyString(e) {
				if mname == "" {
					continue
				}
				ev.ents = append(ev.ents, entry{name: mname, key: mkey, parent: int32(i), end: int32(j + 1), kind: kEmpty})
			} else if err := b.structure(e, i, mname, mkey); err != nil {
				if fe, ok := err.(*fieldError); ok {
					fe.path = append(fe.path, mkey)
				}
				return err
			}
			if seen != nil {
				seen[mkey] = j
			}
		}
	case jArray:
		if depth(ev, parent) >= maxDepth {
			return &fieldError{msg: "nested too deep"}
		}
		ev.ents = append(ev.ents, entry{name: name, key: key, parent: int32(parent), kind: kList})
		for e := b.jp.child(v); e != nil; e = b.jp.next(v, e) {
			if isEmpty(e) {
				continue
			}
			if err := b.structure(e, i, "", ""); err != nil {
				return err
			}
		}
	case jNumber:
		if !validNumber(v.s) {
			return &fieldError{msg: fmt.Sprintf("invalid number %q", v.s)}
		}
		ev.ents = append(ev.ents, entry{name: name, key: key, text: b.own(v), parent: int32(parent), kind: kNum})
	case jString:
		ev.ents = append(ev.ents, entry{name: name, key: key, text: b.own(v), parent: int32(parent), kind: kStr})
	case jTrue:
		ev.ents = append(ev.ents, entry{name: name, key: key, parent: int32(parent), kind: kTrue})
	case jFalse:
		ev.ents = append(ev.ents, entry{name: name, key: key, parent: int32(parent), kind: kFalse})
	default:
		return nil
	}
	ev.ents[i].end = int32(len(ev.ents))
	return nil
}

// member returns the live member of object entry obj with key k, or -1.
func (b *builder) member(obj int, seen map[string]int, k string) int {
	ev := b.ev
	if seen != nil {
		if j, ok := seen[k]; ok && !ev.ents[j].dead {
			return j
		}
		return -1
	}
	for j := obj + 1; j < len(ev.ents); j = int(ev.ents[j].end) {
		if x := &ev.ents[j]; !x.dead && x.key == k {
			return j
		}
	}
	return -1
}

// depth returns the nesting depth of entry i.
func depth(ev *Event, i int) int {
	d := 0
	for ; i >= 0; i = int(ev.ents[i].parent) {
		d++
	}
	return d
}

// typeName names a JSON value's type for error messages.
func typeName(v *jvalue) string {
	switch t := v.Type(); t {
	case jTrue, jFalse:
		return "bool"
	default:
		return t.String()
	}
}

// fieldError is an error inside a copied structure; path holds the keys
// leading to it, innermost first.
type fieldError struct {
	path []string
	msg  string
}

func (e *fieldError) Error() string { return e.msg }

// wrapField names the record field (and the keys below it) in err.
func wrapField(err error, field string) error {
	fe, ok := err.(*fieldError)
	if !ok {
		return err
	}
	p := field
	for i := len(fe.path) - 1; i >= 0; i-- {
		p += "." + fe.path[i]
	}
	return &FieldError{Field: p, Reason: fe.msg}
}
