package ioc

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewOnly(t *testing.T) {
	now := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	old := NewSet([]Indicator{
		{Type: TypeIPv4, Value: "203.0.113.7", File: "a.txt", Line: 1},
		{Type: TypeDomain, Value: "Evil.Example", File: "a.txt", Line: 2},
		{Type: TypeURL, Value: "http://bad.example/x?y=1", File: "a.txt", Line: 3},
		{Type: TypeCIDR, Value: "198.51.100.0/24", File: "a.txt", Line: 4},
	}, now)
	cur := NewSet([]Indicator{
		{Type: TypeIPv4, Value: "203.0.113.7", File: "b.txt", Line: 9},                   // moved: not new
		{Type: TypeDomain, Value: "evil[.]example.", File: "a.txt", Line: 2},             // same key, defanged
		{Type: TypeURL, Value: "https://BAD.example:8443/x?y=1", File: "a.txt", Line: 3}, // same key
		{Type: TypeCIDR, Value: "198.51.100.9/24", File: "a.txt", Line: 4},               // same range
		{Type: TypeIPv4, Value: "192.0.2.44", File: "a.txt", Line: 5},                    // new
		{Type: TypeIPv4, Value: "192.0.2.44", File: "c.txt", Line: 1},                    // new, listed twice
		{Type: TypeDomain, Value: "sub.evil.example", File: "a.txt", Line: 6},            // new (a subdomain is its own key)
		{Type: TypeJA3, Value: "E7D705A3286E19EA42F587B344EE6865", File: "a.txt", Line: 7},
	}, now)
	got := cur.NewOnly(old)
	want := []Indicator{
		{Type: TypeIPv4, Value: "192.0.2.44", File: "a.txt", Line: 5},
		{Type: TypeDomain, Value: "sub.evil.example", File: "a.txt", Line: 6},
		{Type: TypeJA3, Value: "E7D705A3286E19EA42F587B344EE6865", File: "a.txt", Line: 7},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NewOnly (-want +got):\n%s", diff)
	}
	if got := old.NewOnly(old); len(got) != 0 {
		t.Errorf("a set's NewOnly of itself = %v; want none", got)
	}
	if got := cur.NewOnly(nil); len(got) != 7 {
		t.Errorf("NewOnly(nil) = %d indicators; want every distinct key (7)", len(got))
	}
}
