package ioc

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"strconv"
	"testing"
)

func TestStrTable(t *testing.T) {
	seed := maphash.MakeSeed()
	tab := newStrTable(seed, 1) // too small: put must grow it
	const n = 1000
	for i := range n {
		k := "k" + strconv.Itoa(i)
		if _, replaced := tab.put(maphash.String(seed, k), k, uint32(i)); replaced {
			t.Fatalf("put(%q) replaced a value", k)
		}
	}
	if old, replaced := tab.put(maphash.String(seed, "k7"), "k7", 70); !replaced || old != 7 {
		t.Errorf("put(k7) = %d, %v; want 7, true", old, replaced)
	}
	for i := range n {
		k := "k" + strconv.Itoa(i)
		want := uint32(i)
		if i == 7 {
			want = 70
		}
		if got, ok := get(tab, maphash.String(seed, k), []byte(k)); !ok || got != want {
			t.Errorf("get(%q) = %d, %v; want %d, true", k, got, ok, want)
		}
	}
	if _, ok := get(tab, maphash.String(seed, "k1000"), "k1000"); ok {
		t.Errorf("get(k1000) found a value")
	}
}

func TestU32Table(t *testing.T) {
	tab := newU32Table(0)
	for i := range uint32(1000) {
		tab.put(i*7919, i)
	}
	for i := range uint32(1000) {
		if got, ok := tab.get(i * 7919); !ok || got != i {
			t.Errorf("get(%d) = %d, %v; want %d, true", i*7919, got, ok, i)
		}
	}
	if _, ok := tab.get(1); ok {
		t.Errorf("get(1) found a value")
	}
}

// FuzzParseIPv4 checks the fast IPv4 parser against net/netip: whatever it
// accepts, netip reads as the same IPv4 address.
func FuzzParseIPv4(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3", "256.1.1.1", "1.2.3.4.", "::1", "1..2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseIPv4(s)
		if !ok {
			return
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			t.Fatalf("parseIPv4(%q) = %d, true; netip: %v, %v", s, n, a, err)
		}
		if b := a.As4(); binary.BigEndian.Uint32(b[:]) != n {
			t.Fatalf("parseIPv4(%q) = %d; want %v", s, n, a)
		}
	})
}
