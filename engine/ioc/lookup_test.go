package ioc

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLookup(t *testing.T) {
	inds := []Indicator{
		{Type: TypeIPv4, Value: "198.51.100.7", File: "a.txt", Line: 1},
		{Type: TypeCIDR, Value: "198.51.100.0/24", File: "a.txt", Line: 2},
		{Type: TypeDomain, Value: "evil.example", File: "b.csv", Line: 3},
		{Type: TypeURL, Value: "http://files.evil.example/drop.exe", File: "b.csv", Line: 4},
		{Type: TypeUA, Value: "Nessus SOAP", File: "c.txt", Line: 5},
		{Type: TypeIPv6, Value: "2001:db8::1", File: "c.txt", Line: 6},
	}
	set := NewSet(inds, time.Now())
	type hit struct {
		Value, How, Where string
	}
	for _, tc := range []struct {
		q     string
		limit int
		want  []hit
		more  bool
	}{
		{q: "198.51.100.7", want: []hit{{"198.51.100.7", FoundEqual, "a.txt:1"}, {"198.51.100.0/24", FoundCovers, "a.txt:2"}}},
		{q: "198.51.100.9", want: []hit{{"198.51.100.0/24", FoundCovers, "a.txt:2"}}},
		{q: "www.evil[.]example", want: []hit{{"evil.example", FoundCovers, "b.csv:3"}}},
		{q: "EVIL.example", want: []hit{{"evil.example", FoundEqual, "b.csv:3"}, {"http://files.evil.example/drop.exe", FoundContains, "b.csv:4"}}},
		{q: "nessus", want: []hit{{"Nessus SOAP", FoundContains, "c.txt:5"}}},
		{q: "2001:DB8::1", want: []hit{{"2001:db8::1", FoundEqual, "c.txt:6"}}},
		{q: "198.51.100", limit: 1, want: []hit{{"198.51.100.7", FoundContains, "a.txt:1"}}, more: true},
		{q: "nothing-here"},
		{q: "  "},
	} {
		found, more := set.Lookup(tc.q, tc.limit)
		var got []hit
		for _, f := range found {
			got = append(got, hit{f.Value, f.How, f.File + ":" + itoa(f.Line)})
		}
		if diff := cmp.Diff(tc.want, got); diff != "" || more != tc.more {
			t.Errorf("Lookup(%q) more=%v; want %v; (-want +got):\n%s", tc.q, more, tc.more, diff)
		}
	}
	if found, more := (*Set)(nil).Lookup("x", 0); found != nil || more {
		t.Errorf("nil Set Lookup = %v, %v", found, more)
	}
}

// BenchmarkLookup searches a set of a million indicators (the dashboard's
// IOC search reads them all).
func BenchmarkLookup(b *testing.B) {
	inds := make([]Indicator, 0, 1_000_000)
	for i := range 1_000_000 {
		switch i % 4 {
		case 0:
			inds = append(inds, Indicator{Type: TypeIPv4, Value: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), File: "a.txt", Line: i})
		case 1:
			inds = append(inds, Indicator{Type: TypeDomain, Value: fmt.Sprintf("host%d.example.net", i), File: "b.txt", Line: i})
		case 2:
			inds = append(inds, Indicator{Type: TypeURL, Value: fmt.Sprintf("http://files%d.example.org/p/%d.exe", i, i), File: "c.txt", Line: i})
		default:
			inds = append(inds, Indicator{Type: TypeCIDR, Value: fmt.Sprintf("172.%d.%d.0/24", i>>8&15|16, i&255), File: "d.txt", Line: i})
		}
	}
	set := NewSet(inds, time.Now())
	b.ResetTimer()
	for b.Loop() {
		if found, _ := set.Lookup("www.host999997.example.net", 100); len(found) != 1 {
			b.Fatalf("found %d", len(found))
		}
	}
}
