package retro

import (
	"testing"

	"github.com/raywatch/raywatch/engine/ioc"
)

func TestBytesContainsFold(t *testing.T) {
	tests := []struct {
		hay, needle string
		want        bool
	}{
		{`{"ClientRequestHost":"Shop.EXAMPLE.com"}`, "example.com", true},
		{`{"h":"exampl"}`, "example", false},
		{`{"ip":"192.0.2.44"}`, "192.0.2.44", true},
		{`{"ip":"192.0.2.4"}`, "192.0.2.44", false},
		{`EeEeExample`, "example", true},
		{"", "x", false},
		{"abc", "", true},
	}
	for _, tt := range tests {
		if got := bytesContainsFold([]byte(tt.hay), []byte(tt.needle)); got != tt.want {
			t.Errorf("bytesContainsFold(%q, %q) = %v; want %v", tt.hay, tt.needle, got, tt.want)
		}
	}
}

func TestNeedle(t *testing.T) {
	tests := []struct {
		ind  ioc.Indicator
		want string
		ok   bool
	}{
		{ioc.Indicator{Type: ioc.TypeIPv4, Value: "192.0.2.44"}, "192.0.2.44", true},
		{ioc.Indicator{Type: ioc.TypeDomain, Value: "Evil[.]Example."}, "evil.example", true},
		{ioc.Indicator{Type: ioc.TypeURL, Value: "hxxps://Bad.example/x?y"}, "bad.example", true},
		{ioc.Indicator{Type: ioc.TypeJA3, Value: "E7D705A3286E19EA42F587B344EE6865"}, "e7d705a3286e19ea42f587b344ee6865", true},
		{ioc.Indicator{Type: ioc.TypeCIDR, Value: "192.0.2.0/24"}, "", false},
		{ioc.Indicator{Type: ioc.TypeIPv6, Value: "2001:db8::1"}, "", false},
		{ioc.Indicator{Type: ioc.TypeUA, Value: "curl/8"}, "", false},
	}
	for _, tt := range tests {
		got, ok := needle(tt.ind)
		if got != tt.want || ok != tt.ok {
			t.Errorf("needle(%v) = %q, %v; want %q, %v", tt.ind, got, ok, tt.want, tt.ok)
		}
	}
}
