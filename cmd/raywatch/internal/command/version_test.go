package command

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	got := versionText(nil, false)
	if !strings.HasPrefix(got, "raywatch (devel)\n") || !strings.Contains(got, "revision (devel)") {
		t.Errorf("versionText without build info = %q; want (devel) throughout", got)
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-11-24T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	want := "raywatch v1.2.3\n  revision 0123abcd (modified)\n  time     2026-11-24T10:00:00Z\n  go       go1.26.8\n"
	if got := versionText(bi, true); got != want {
		t.Errorf("versionText = %q; want %q", got, want)
	}
}
