// Package normalize turns Cloudflare Logpush records into ECS events the way
// SEKOIA.IO's Cloudflare intake formats do, plus a flat dotted-name view used
// for rule matching.
package normalize

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Event is one normalized Cloudflare record.
//
// An Event is immutable once returned by [Normalizer.Normalize] and may be read
// from any number of goroutines. Rule matching reads it through [Event.String],
// [Event.Each] and [Event.Range], which do not allocate; [Event.Doc] gives the
// nested ECS document, built on first use.
//
// An Event filled by [Normalizer.NormalizeInto] is rewritten by the next
// NormalizeInto call on it; what it returned before (strings, Doc, FlatMap)
// stays valid and unchanged.
type Event struct {
	// Dataset is the Logpush dataset id the record was decoded as, for
	// example "http_requests".
	Dataset string
	// Time is the event's own time in UTC (EdgeStartTimestamp for
	// http_requests, Datetime, Timestamp, CreatedAt or When for the other
	// datasets), or the zero Time when the record carries none.
	Time time.Time
	// Key identifies the record for de-duplication: the RayID for
	// http_requests and firewall_events (with the rule for the latter),
	// else a hash of the raw record.
	Key string

	// ents holds the fields in pre-order: top-level entries (parent -1)
	// whose name is their dotted ECS path, and below object and list
	// entries their members. Strings point into arenas that are never
	// written again, so they may be handed out freely.
	ents []entry
	// index maps a static field id (see fieldIDs) to 1 + its entry.
	index []int32
	// arena is the tail of the current arena chunk: bytes past its length
	// are free, bytes before it are never written again (unless Reuse
	// gives back those of the last record, from recStart on).
	arena    []byte
	recStart int
	// doc caches the nested document built by Doc.
	doc atomic.Pointer[map[string]any]
	// fieldErrs are the record's fields left out; nil when none.
	fieldErrs []FieldError
	// texts holds every scalar text of the entries, each followed by a
	// zero byte (see Texts): a piece of the arena, or spill.
	texts []byte
	// spill holds the texts when they are not in one piece of the arena;
	// it is rewritten by the next NormalizeInto.
	spill []byte
}

// FieldError is a field of a record that could not be normalized (a value
// of the wrong type, a number or timestamp that does not parse): the event
// fields that need the value's type go without it (a timestamp that does
// not parse sets no @timestamp; a cloudflare.* copy of type text still
// keeps its raw text), and the rest of the record is normalized.
type FieldError struct {
	// Field is the record's key, dotted for a key inside an object
	// ("Metadata.zone_tag").
	Field string `json:"field"`
	// Reason says what is wrong with the value, for example "want number,
	// got object".
	Reason string `json:"reason"`
}

func (e FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Reason) }

// fieldErr returns a *FieldError for field.
func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// FieldErrors returns the fields of the record that were left out because
// their values could not be normalized, in record order; nil when every
// field was. The slice is the caller's: a later NormalizeInto on the Event
// does not change it.
func (ev *Event) FieldErrors() []FieldError { return ev.fieldErrs }

// entry kinds.
const (
	kStr   uint8 = iota + 1 // text
	kNum                    // number, text is its exact JSON text
	kTrue                   // true
	kFalse                  // false
	kObj                    // object; members follow
	kList                   // list; elements follow
	kEmpty                  // the empty string: in the flat view, not in Doc
)

// entry is one value of an Event.
type entry struct {
	name   string // dotted flat name; "" when not in the flat view (inside a list)
	key    string // key in the parent object; "" at top level and in lists
	text   string // kStr and kNum
	parent int32  // index of the containing object or list, -1 at top level
	end    int32  // index just past this entry's members
	id     uint16 // static field id, 0 for names built at run time
	kind   uint8
	dead   bool // replaced by a later value of the same field
}

func (e *entry) scalar() (string, bool) {
	switch e.kind {
	case kStr, kNum, kEmpty:
		return e.text, true
	case kTrue:
		return "true", true
	case kFalse:
		return "false", true
	}
	return "", false
}

// Field is a dotted field name resolved by [FieldOf], so that reading it
// from many events ([Event.EachField], [Event.StringField]) does not look
// the name up each time. The zero Field is absent from every event.
type Field struct {
	name string
	id   uint16 // static id of name; 0 for a name built at run time
	// top is, for a name built at run time (a member of a copied object,
	// "cloudflare.RequestHeaders.cookie"), the static id of the object's
	// field: the member can only be below it. 0 when no prefix of the
	// name is a field, and then no event has the field.
	top uint16
}

// FieldOf resolves the dotted field name. It is safe for concurrent use.
func FieldOf(name string) Field {
	f := Field{name: name}
	if id, ok := fieldIDs[name]; ok {
		f.id = id
		return f
	}
	// No static name is a dotted prefix of another (TestFieldNames), so
	// the longest static prefix is the copied object the member is in.
	for i := len(name) - 1; i > 0; i-- {
		if name[i] != '.' {
			continue
		}
		if id, ok := fieldIDs[name[:i]]; ok {
			f.top = id
			break
		}
	}
	return f
}

// Name returns the dotted field name f was resolved from.
func (f Field) Name() string { return f.name }

// lookupField returns the entry index of field f, or -1.
func (e *Event) lookupField(f Field) int {
	if f.id != 0 {
		if int(f.id) < len(e.index) {
			return int(e.index[f.id]) - 1
		}
		return -1
	}
	if int(f.top) >= len(e.index) || f.top == 0 {
		return -1
	}
	// A name built at run time: a member of the object of field top (the
	// decoders copy each object field once), the last live one winning.
	t := int(e.index[f.top]) - 1
	if t < 0 {
		return -1
	}
	for i := int(e.ents[t].end) - 1; i > t; i-- {
		if x := &e.ents[i]; x.id == 0 && !x.dead && x.name == f.name {
			return i
		}
	}
	return -1
}

// Doc returns the nested ECS document: objects are map[string]any, lists
// []any, numbers json.Number (exact), strings string and booleans bool;
// empty strings and nulls are absent. It is built on the first call and the
// same map is returned afterwards. The caller must not modify it; it may
// keep it after the Event is gone or reused.
func (e *Event) Doc() map[string]any {
	if p := e.doc.Load(); p != nil {
		return *p
	}
	m := e.buildDoc()
	e.doc.CompareAndSwap(nil, &m)
	return *e.doc.Load()
}

func (e *Event) buildDoc() map[string]any {
	doc := make(map[string]any, 16)
	for i := 0; i < len(e.ents); i = int(e.ents[i].end) {
		x := &e.ents[i]
		if x.dead || x.kind == kEmpty || x.parent >= 0 {
			continue
		}
		m := doc
		path := x.name
		for {
			j := strings.IndexByte(path, '.')
			if j < 0 {
				break
			}
			child, ok := m[path[:j]].(map[string]any)
			if !ok {
				child = make(map[string]any, 4)
				m[path[:j]] = child
			}
			m = child
			path = path[j+1:]
		}
		m[path] = e.docValue(i)
	}
	return doc
}

// docValue returns the Doc form of entry i.
func (e *Event) docValue(i int) any {
	x := &e.ents[i]
	switch x.kind {
	case kStr:
		return x.text
	case kNum:
		return json.Number(x.text)
	case kTrue:
		return true
	case kFalse:
		return false
	case kObj:
		m := make(map[string]any)
		for j := i + 1; j < int(x.end); j = int(e.ents[j].end) {
			if c := &e.ents[j]; !c.dead && c.kind != kEmpty {
				m[c.key] = e.docValue(j)
			}
		}
		return m
	case kList:
		l := make([]any, 0, 4)
		for j := i + 1; j < int(x.end); j = int(e.ents[j].end) {
			if c := &e.ents[j]; !c.dead && c.kind != kEmpty {
				l = append(l, e.docValue(j))
			}
		}
		return l
	}
	return nil
}

// String returns the text of the scalar field at the dotted ECS name field
// ("url.path", "cloudflare.RayID") and whether it is present. Numbers are
// their JSON text, booleans "true"/"false". A field whose record value was
// the empty string is present with "". A list is not a scalar: use Each.
func (e *Event) String(field string) (string, bool) {
	return e.StringField(FieldOf(field))
}

// StringField is [Event.String] for a resolved field.
func (e *Event) StringField(f Field) (string, bool) {
	i := e.lookupField(f)
	if i < 0 {
		return "", false
	}
	return e.ents[i].scalar()
}

// Each calls fn with the text of each value of field: once for a scalar,
// once per scalar element for a list. It stops early when fn returns false,
// and reports whether the field is present.
func (e *Event) Each(field string, fn func(value string) bool) bool {
	return e.EachField(FieldOf(field), fn)
}

// EachField is [Event.Each] for a resolved field.
func (e *Event) EachField(f Field, fn func(value string) bool) bool {
	i := e.lookupField(f)
	if i < 0 {
		return false
	}
	x := &e.ents[i]
	if x.kind == kList {
		for j := i + 1; j < int(x.end); j = int(e.ents[j].end) {
			if c := &e.ents[j]; !c.dead {
				if s, ok := c.scalar(); ok && !fn(s) {
					break
				}
			}
		}
		return true
	}
	if s, ok := x.scalar(); ok {
		fn(s)
	}
	return true
}

// Range calls fn for every scalar value of the event (list elements
// included) with its dotted field name, until fn returns false. The order is
// unspecified. Keyword searches use it.
func (e *Event) Range(fn func(field, value string) bool) {
	for i := range e.ents {
		x := &e.ents[i]
		if x.dead || x.name == "" {
			continue
		}
		if x.kind == kList {
			for j := i + 1; j < int(x.end); j = int(e.ents[j].end) {
				if c := &e.ents[j]; !c.dead {
					if s, ok := c.scalar(); ok && !fn(x.name, s) {
						return
					}
				}
			}
			continue
		}
		if s, ok := x.scalar(); ok && !fn(x.name, s) {
			return
		}
	}
}

// flatLeaves calls fn for each live entry of the flat view: scalars and
// lists, by name.
func (e *Event) flatLeaves(fn func(i int)) {
	for i := range e.ents {
		x := &e.ents[i]
		if x.dead || x.name == "" || x.kind == kObj {
			continue
		}
		fn(i)
	}
}

// Fields returns the dotted names of the event's fields, sorted.
func (e *Event) Fields() []string {
	var names []string
	e.flatLeaves(func(i int) { names = append(names, e.ents[i].name) })
	sort.Strings(names)
	return names
}

// FlatMap returns the flat view as a new map from dotted names to values
// (string, json.Number, bool or []any). It allocates; it exists for tools and
// for evaluators that need a map, not for the hot path.
func (e *Event) FlatMap() map[string]any {
	m := make(map[string]any, len(e.ents))
	e.flatLeaves(func(i int) {
		if e.ents[i].kind == kEmpty {
			m[e.ents[i].name] = ""
			return
		}
		m[e.ents[i].name] = e.docValue(i)
	})
	return m
}
