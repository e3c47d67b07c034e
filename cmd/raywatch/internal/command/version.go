package command

import (
	"fmt"
	"io"
	"runtime/debug"
)

// versionCmd prints the module version and the VCS revision, time and
// state the binary was built from, as the Go toolchain recorded them.
func versionCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "raywatch version: unexpected argument %q\n", args[0])
		return errUsage
	}
	fmt.Fprint(stdout, versionText(debug.ReadBuildInfo()))
	return nil
}

// versionText renders the build information; "(devel)" stands in for
// what is unknown.
func versionText(bi *debug.BuildInfo, ok bool) string {
	version, goVersion := "(devel)", "unknown"
	rev, at, modified := "(devel)", "(devel)", ""
	if ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
	}
	return fmt.Sprintf("raywatch %s\n  revision %s%s\n  time     %s\n  go       %s\n", version, rev, modified, at, goVersion)
}
