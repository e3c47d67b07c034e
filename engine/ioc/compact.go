package ioc

import (
	"strings"
	"time"
)

// indGroup holds the indicators of one file without pointers per
// indicator: a million indicators as structs of strings and pointers were
// millions of pointers for the garbage collector to trace on every cycle,
// which showed as latency of the whole pipeline. Values are packed into
// one string; file names and metadata are shared through small tables.
type indGroup struct {
	vals  string
	recs  []indRec
	files []string
	metas []*Meta
}

// indRec is one indicator of a group.
type indRec struct {
	off, n uint32 // value: vals[off:off+n]
	line   int32
	file   uint32 // index in files
	meta   uint32 // 1 + index in metas; 0 for none
	typ    uint8  // index in typeIndex, or 255 for a type not indexed
}

const noType = 255

// compactGroup packs inds. The group does not refer to inds' memory
// except through the Meta pointers.
func compactGroup(inds []Indicator) *indGroup {
	g := &indGroup{recs: make([]indRec, len(inds))}
	size := 0
	for i := range inds {
		size += len(inds[i].Value)
	}
	var vals strings.Builder
	vals.Grow(size)
	fileIdx := map[string]uint32{}
	lastMeta := -1
	for i := range inds {
		ind := &inds[i]
		r := indRec{off: uint32(vals.Len()), n: uint32(len(ind.Value)), line: int32(ind.Line), typ: noType}
		vals.WriteString(ind.Value)
		if s := typeSlot(ind.Type); s >= 0 {
			r.typ = uint8(s)
		}
		f, ok := fileIdx[ind.File]
		if !ok {
			f = uint32(len(g.files))
			fileIdx[ind.File] = f
			g.files = append(g.files, ind.File)
		}
		r.file = f
		if m := ind.Meta; m != nil {
			// Indicators of one STIX pattern share their Meta, and
			// follow each other.
			if lastMeta < 0 || g.metas[lastMeta] != m {
				g.metas = append(g.metas, m)
				lastMeta = len(g.metas) - 1
			}
			r.meta = uint32(lastMeta) + 1
		}
		g.recs[i] = r
	}
	g.vals = vals.String()
	return g
}

func (g *indGroup) value(i uint32) string {
	r := &g.recs[i]
	return g.vals[r.off : r.off+r.n]
}

func (g *indGroup) metaOf(i uint32) *Meta {
	if m := g.recs[i].meta; m != 0 {
		return g.metas[m-1]
	}
	return nil
}

func (g *indGroup) typeOf(i uint32) Type {
	if t := g.recs[i].typ; t != noType {
		return typeIndex[t]
	}
	return ""
}

// indicator returns indicator i as an Indicator.
func (g *indGroup) indicator(i uint32) *Indicator {
	r := &g.recs[i]
	return &Indicator{Type: g.typeOf(i), Value: g.value(i), File: g.files[r.file], Line: int(r.line), Meta: g.metaOf(i)}
}

// expired reports whether indicator i is no longer valid at t.
func (g *indGroup) expired(i uint32, t time.Time) bool {
	m := g.metaOf(i)
	return m != nil && !m.ValidUntil.IsZero() && !t.Before(m.ValidUntil)
}
