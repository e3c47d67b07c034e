package command

import (
	"testing"
	"time"
)

func TestParseReplayTime(t *testing.T) {
	now := time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		end  bool
		want time.Time
		ok   bool
	}{
		{"", false, time.Time{}, true},
		{"2026-01-05T12:00:00Z", false, time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC), true},
		{"2026-01-05T13:00:00+01:00", true, time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC), true},
		{"2026-01-05", false, time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), true},
		{"2026-01-05", true, time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond), true},
		{"7d", false, now.Add(-7 * 24 * time.Hour), true},
		{"36h", false, now.Add(-36 * time.Hour), true},
		{"yesterday", false, time.Time{}, false},
		{"-3d", false, time.Time{}, false},
		{"2026-13-01", false, time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseReplayTime(tt.in, now, tt.end)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseReplayTime(%q, end %v) = %v, %v; want %v (ok %v)", tt.in, tt.end, got, err, tt.want, tt.ok)
		}
	}
}
