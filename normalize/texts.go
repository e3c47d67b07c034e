package normalize

import "unsafe"

// Texts returns the texts of the event's values in one piece, each followed
// by a zero byte: every text [Event.Range] yields (list elements, the
// members of copied objects and "true"/"false" included) is one of them.
// The piece may also hold texts that are not values (the keys of copied
// objects, the record's key, values a later one replaced), each also
// followed by a zero byte, and a text may occur more than once; the order is
// unspecified. A literal search over Texts therefore finds every value that
// contains the literal, and may find more: it is the event's values read in
// one pass, without walking the flat view.
//
// The slice is nil for an Event that holds no fields. The caller must not
// modify it. It stays valid until the next NormalizeInto on the Event.
func (e *Event) Texts() []byte { return e.texts }

// coverTexts sets the event's texts: the strings of the record, which
// str and join wrote to the arena from textsAt on, plus the texts of
// entries that point elsewhere (constants, parsed user-agents, "true" and
// "false", long strings), copied to the arena after them. When the record
// did not fit in one arena chunk, every text is copied to the Event's
// spill buffer instead.
func (b *builder) coverTexts() {
	ev := b.ev
	if b.textsAt < 0 || !b.coverInArena() {
		b.spillTexts()
		return
	}
	ev.texts = b.arena[b.textsAt:len(b.arena):len(b.arena)]
}

// coverInArena appends to the arena the texts of entries that are not in
// the record's part of it, and reports whether they all fitted.
func (b *builder) coverInArena() bool {
	if len(b.arena) == b.textsAt && len(b.ev.ents) == 0 {
		return true
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b.arena))) + uintptr(b.textsAt)
	end := uintptr(unsafe.Pointer(unsafe.SliceData(b.arena))) + uintptr(len(b.arena))
	var bools uint8 // 1: "true" covered, 2: "false" covered
	for i := range b.ev.ents {
		x := &b.ev.ents[i]
		var s string
		switch x.kind {
		case kStr, kNum:
			s = x.text
			if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); len(s) == 0 || p >= lo && p+uintptr(len(s)) <= end {
				continue
			}
		case kTrue:
			if bools&1 != 0 {
				continue
			}
			bools |= 1
			s = "true"
		case kFalse:
			if bools&2 != 0 {
				continue
			}
			bools |= 2
			s = "false"
		default:
			continue
		}
		if cap(b.arena)-len(b.arena) < len(s)+1 {
			return false
		}
		b.arena = append(b.arena, s...)
		b.arena = append(b.arena, 0)
	}
	return true
}

// spillTexts copies every scalar text of the entries to the Event's spill
// buffer, each followed by a zero byte.
func (b *builder) spillTexts() {
	ev := b.ev
	buf := ev.spill[:0]
	for i := range ev.ents {
		if s, ok := ev.ents[i].scalar(); ok && s != "" {
			buf = append(buf, s...)
			buf = append(buf, 0)
		}
	}
	ev.spill, ev.texts = buf, buf
}
