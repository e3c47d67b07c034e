package engine_test

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// TestPrefilterDropsNoMatch matches the SigmaHQ rules' firing records, their
// near misses, mixed-case and non-ASCII variants and ordinary traffic with
// the prefilter as built (keyword literals searched for in Event.Texts),
// with the keyword literals searched for value by value (Event.Range) and
// with no prefilter at all: every engine must raise the same alerts. It
// does so with and without the keyword rules, whose prefilter scans every
// value.
func TestPrefilterDropsNoMatch(t *testing.T) {
	all := loadSigmaHQ(t)
	m := testMapping(t)
	recs := prefilterRecords(t, all, m)
	for _, tc := range []struct {
		name string
		rs   []rules.Rule
	}{{"all", all}, {"without-keywords", withoutKeywords(all)}} {
		t.Run(tc.name, func(t *testing.T) {
			newEngine := func() *engine.Engine {
				e, err := engine.NewWithOptions(tc.rs, engine.Options{Mapping: m})
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			texts, ranged, none := newEngine(), newEngine(), newEngine()
			engine.RangePrefilter(ranged)
			engine.WithoutPrefilter(none)
			comparePrefilters(t, recs, len(tc.rs), texts, ranged, none)
		})
	}
}

// prefilterRecords are the records of TestPrefilterDropsNoMatch.
func prefilterRecords(t *testing.T, rs []rules.Rule, m *rules.Mapping) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, r := range rs {
		p, err := planRule(r, m)
		if err != nil {
			t.Fatalf("%s: cannot build a record: %v", r.File, err)
		}
		recs = append(recs, p.record())
		recs = append(recs, p.nearMisses()...)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 200 {
		recs = append(recs, benignRecord(rng, i))
	}
	// Case and Unicode variants of every string field.
	n := len(recs)
	for _, rec := range recs[:n] {
		for _, f := range []func(string) string{strings.ToUpper, func(s string) string { return strings.ReplaceAll(strings.ToUpper(s), "K", "\u212a") }} {
			v := map[string]any{}
			for k, x := range rec {
				if s, ok := x.(string); ok && k != "ClientIP" && k != "RayID" {
					x = f(s)
				}
				v[k] = x
			}
			recs = append(recs, v)
		}
	}
	return recs
}

func comparePrefilters(t *testing.T, recs []map[string]any, nrules int, texts, ranged, none *engine.Engine) {
	t.Helper()
	norm := normalize.New(normalize.Options{})
	now := time.Now()
	ids := func(e *engine.Engine, ev *normalize.Event) []string {
		var out []string
		for _, a := range e.Match(ev, "test", now) {
			out = append(out, a.Rule.ID)
		}
		slices.Sort(out)
		return out
	}
	fired := 0
	for _, rec := range recs {
		b, _ := json.Marshal(rec)
		ev, err := norm.Normalize("http_requests", b)
		if err != nil {
			t.Fatalf("normalize %s: %v", b, err)
		}
		want := ids(none, ev)
		if got := ids(texts, ev); !slices.Equal(got, want) {
			t.Errorf("record %s: alerts with the Texts prefilter %v; without prefilter %v", b, got, want)
		}
		if got := ids(ranged, ev); !slices.Equal(got, want) {
			t.Errorf("record %s: alerts with the Range prefilter %v; without prefilter %v", b, got, want)
		}
		if len(want) > 0 {
			fired++
		}
	}
	if fired < nrules {
		t.Errorf("only %d of %d records fired a rule; want at least one per rule (%d)", fired, len(recs), nrules)
	}
}
