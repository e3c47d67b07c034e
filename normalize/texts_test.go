package normalize

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestTextsHoldEveryValue checks the contract of Event.Texts that the
// engine's keyword prefilter relies on: every value the flat view yields
// is in the texts, whichever way the Event was filled (a new Event, or one
// reused record after record).
func TestTextsHoldEveryValue(t *testing.T) {
	n := New(Options{})
	var reused Event
	recs := varietyRecords(t)
	for pass := range 2 {
		for _, rec := range recs {
			fresh, err := n.Normalize(rec.dataset, []byte(rec.raw))
			if err != nil {
				continue // malformed golden inputs
			}
			if err := n.NormalizeInto(&reused, rec.dataset, []byte(rec.raw)); err != nil {
				t.Fatalf("NormalizeInto(%s) = %v; Normalize succeeded", rec.raw, err)
			}
			for _, ev := range []*Event{fresh, &reused} {
				texts := ev.Texts()
				ev.Range(func(field, value string) bool {
					if !bytes.Contains(texts, []byte(value)) {
						t.Errorf("pass %d, record %.200s: value %q of %s is not in Texts", pass, rec.raw, value, field)
					}
					return true
				})
			}
		}
	}
}

// TestFieldNames checks what FieldOf relies on to find a member of a copied
// object below that object only: no field name a decoder sets is a dotted
// prefix of another.
func TestFieldNames(t *testing.T) {
	for _, a := range fieldNames[1:] {
		for _, b := range fieldNames[1:] {
			if strings.HasPrefix(b, a+".") {
				t.Errorf("field %q is a prefix of field %q", a, b)
			}
		}
	}
}

// TestFieldOf reads every field of the test records, and names no record
// has, through resolved fields: each must give what a walk of the flat
// view gives.
func TestFieldOf(t *testing.T) {
	n := New(Options{})
	for _, rec := range varietyRecords(t) {
		ev, err := n.Normalize(rec.dataset, []byte(rec.raw))
		if err != nil {
			continue
		}
		want := map[string][]string{}
		ev.Range(func(field, value string) bool {
			want[field] = append(want[field], value)
			return true
		})
		names := append(ev.Fields(), "cloudflare.RequestHeaders.absent", "cloudflare.absent", "absent", "url", "")
		for _, name := range names {
			var got []string
			present := ev.EachField(FieldOf(name), func(v string) bool { got = append(got, v); return true })
			if present != slices.Contains(ev.Fields(), name) {
				t.Errorf("record %.100s: EachField(%q) present = %v", rec.raw, name, present)
			}
			if !slices.Equal(got, want[name]) {
				t.Errorf("record %.100s: EachField(%q) = %q; Range gives %q", rec.raw, name, got, want[name])
			}
			s1, ok1 := ev.StringField(FieldOf(name))
			s2, ok2 := ev.String(name)
			if s1 != s2 || ok1 != ok2 {
				t.Errorf("record %.100s: StringField(%q) = %q, %v; String gives %q, %v", rec.raw, name, s1, ok1, s2, ok2)
			}
		}
	}
}
