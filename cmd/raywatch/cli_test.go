package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runBin runs the built raywatch with args and returns its exit status
// and outputs.
func runBin(t *testing.T, stdin []byte, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code = exitCode(cmd.Run())
	if code < 0 {
		t.Fatalf("raywatch %v did not run", args)
	}
	return code, out.String(), errb.String()
}

// TestHelpAndVersion checks that --help, -h and help list the commands
// (not serve's flags), and that version and --version print the version.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, errOut := runBin(t, nil, args...)
		if code != 0 || !strings.Contains(out, "raywatch scan [flags] FILE...") || !strings.Contains(out, "raywatch version") {
			t.Errorf("raywatch %v = %d\n%s%s; want the list of commands", args, code, out, errOut)
		}
		if strings.Contains(out+errOut, "-max-body-bytes") {
			t.Errorf("raywatch %v prints serve's flags:\n%s", args, out)
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := runBin(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "raywatch ") || !strings.Contains(out, "revision ") || !strings.Contains(out, "go ") {
			t.Errorf("raywatch %v = %d, %q; want the version, revision and Go version", args, code, out)
		}
	}
	code, _, errOut := runBin(t, nil, "serve", "-h")
	if code != 0 || !strings.Contains(errOut, "-listen") || !strings.Contains(errOut, "RAYWATCH_LISTEN") {
		t.Errorf("raywatch serve -h = %d\n%s; want serve's flags", code, errOut)
	}
}

// TestUnknownFlag checks that a wrong flag is one error line and a hint,
// exit status 2, for every command.
func TestUnknownFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		cmd  string
	}{
		{[]string{"--nope"}, "raywatch serve"},
		{[]string{"serve", "--nope"}, "raywatch serve"},
		{[]string{"scan", "--nope", "x"}, "raywatch scan"},
		{[]string{"normalize", "--nope", "x"}, "raywatch normalize"},
		{[]string{"rules", "list", "--nope"}, "raywatch rules list"},
		{[]string{"rules", "test", "--nope", "x"}, "raywatch rules test"},
		{[]string{"replay", "--nope", "x"}, "raywatch replay"},
		{[]string{"cloudflare", "status", "--nope"}, "raywatch cloudflare status"},
		{[]string{"bench", "--nope"}, "raywatch bench"},
	} {
		code, out, errOut := runBin(t, nil, tc.args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		want := []string{tc.cmd + ": flag provided but not defined: -nope", "run '" + tc.cmd + " -h' for its flags"}
		if code != 2 || out != "" || len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
			t.Errorf("raywatch %v = %d\nstdout %q\nstderr %q\nwant exit 2 and %q", tc.args, code, out, errOut, want)
		}
	}
	code, _, errOut := runBin(t, nil, "frobnicate")
	if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 1 || !strings.Contains(errOut, "raywatch help") {
		t.Errorf("raywatch frobnicate = %d\n%s; want exit 2, one line and a hint", code, errOut)
	}
}

// TestScanExitStatus checks scan's documented exit status and its
// reports: a missing file is named where it is met and the other files
// are still scanned; a folder and a # line get clear reasons.
func TestScanExitStatus(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.ndjson", genBatch(1, 14, 0))
	foreign := write("foreign.json", []byte(`{"user":"alice","action":"login"}`+"\n"+`{"user":"bob"}`+"\n"))
	blob := make([]byte, 1<<16)
	for i := range blob {
		blob[i] = byte(i*31 + i>>7)
	}
	binary := write("blob.bin", blob)
	comment := write("comment.ndjson", append([]byte("# exported from the Logpush bucket\n"), genBatch(2, 3, 0)...))
	missing := filepath.Join(dir, "missing.ndjson")

	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"good", []string{good}, 0},
		{"not Cloudflare JSON", []string{foreign}, 2},
		{"binary", []string{binary}, 2},
		{"nothing readable", []string{missing}, 2},
		{"a comment line", []string{comment}, 1},
	} {
		code, _, errOut := runBin(t, nil, append([]string{"scan"}, tc.args...)...)
		if code != tc.want {
			t.Errorf("scan %s = %d; want %d\n%s", tc.name, code, tc.want, errOut)
		}
		if tc.name == "a comment line" && !strings.Contains(errOut, "comment.ndjson: record 1: comment line") {
			t.Errorf("scan of a # line: stderr does not give the reason:\n%s", errOut)
		}
	}

	code, out, errOut := runBin(t, nil, "scan", missing, dir, good)
	if code != 1 {
		t.Errorf("scan missing, folder, good = %d; want 1\n%s", code, errOut)
	}
	iMissing := strings.Index(errOut, "missing.ndjson: stat ")
	iDir := strings.Index(errOut, dir+" is a directory")
	iSummary := strings.Index(errOut, "14 records in 3 files")
	if iMissing < 0 || iDir < 0 || iSummary < 0 || iMissing > iSummary || iDir > iSummary {
		t.Errorf("stderr does not name the missing file and the folder before the summary of the other file:\n%s", errOut)
	}
	if strings.Count(out, "\n") != 3 {
		t.Errorf("the good file after the bad inputs gave %d alerts; want 3\n%s", strings.Count(out, "\n"), out)
	}
	if !strings.Contains(runHelp(t, "scan"), "Exit status:") {
		t.Error("raywatch scan -h does not document the exit status")
	}
}

func runHelp(t *testing.T, cmd string) string {
	_, _, errOut := runBin(t, nil, cmd, "-h")
	return errOut
}

// TestServeBusyPort checks that serve checks its port first: a taken port
// is one error, and nothing is created (no data folder, no key banner).
func TestServeBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	code, _, errOut := runBin(t, nil, "serve", "--listen", ln.Addr().String(), "--data-dir", dataDir)
	if code != 1 || !strings.Contains(errOut, "listen on "+ln.Addr().String()) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("serve on a taken port = %d\n%s; want exit 1 and one line naming the address", code, errOut)
	}
	if strings.Contains(errOut, "intake key") {
		t.Errorf("serve printed the key banner before failing:\n%s", errOut)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("serve on a taken port created the data folder (stat: %v)", err)
	}
}

// TestSecondServeSameDataDir checks that a second raywatch on the same
// data folder says at once that another raywatch holds it, with the path.
func TestSecondServeSameDataDir(t *testing.T) {
	dataDir := t.TempDir()
	first := startServe(t, dataDir, "RAYWATCH_INTAKE_KEY=second-instance-key-0123456789")
	code, _, errOut := runBin(t, nil, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	db := filepath.Join(dataDir, "alerts.db")
	if code != 1 || !strings.Contains(errOut, "another raywatch holds") || !strings.Contains(errOut, db) {
		t.Errorf("second serve = %d\n%s; want exit 1 and %q with %s", code, errOut, "another raywatch holds", db)
	}
	if code := first.stop(); code != 0 {
		t.Errorf("first serve exit = %d", code)
	}
}
