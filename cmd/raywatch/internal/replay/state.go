package replay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// StateKey returns the key of a replay's resume state: a hash of the
// arguments that decide what it reads and produces: the sources in order,
// the range, and extra, which the caller fills with whatever else changes
// the output (rules folder, IOC folder, dataset, rule id, output mode).
// --resume itself must not be part of it.
func StateKey(sources []string, rng Range, extra ...string) string {
	h := sha256.New()
	w := func(s string) {
		fmt.Fprintf(h, "%d:%s\n", len(s), s)
	}
	w("raywatch replay state v1")
	for _, s := range sources {
		w("source")
		w(s)
	}
	w(rng.From.UTC().Format(time.RFC3339Nano))
	w(rng.To.UTC().Format(time.RFC3339Nano))
	for _, s := range extra {
		w("extra")
		w(s)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// StatePath is where a replay keeps the state of key in dir:
// dir/replay-<key>.state.
func StatePath(dir, key string) string {
	return filepath.Join(dir, "replay-"+key+".state")
}

// stateHeader is the first line of a state file.
type stateHeader struct {
	Replay  int       `json:"raywatch_replay_state"`
	Key     string    `json:"key"`
	Created time.Time `json:"created"`
}

// stateEntry is a line per finished object.
type stateEntry struct {
	Object string `json:"object"`
	Error  string `json:"error,omitempty"`
}

// state records the objects a replay has finished, one JSON line each,
// appended and fsync'd as each object finishes, so that an interrupted
// replay loses at most the object it was reading.
type state struct {
	path string
	f    *os.File
	done map[string]bool
	// valid is the length of the file's complete lines, or -1 when there
	// is no file to continue.
	valid int64
}

// openState opens the state file at path for key. With resume, the objects
// it lists as finished are loaded (a missing file is an empty state);
// without, the file starts over. A file written for another key is an
// error: the arguments differ.
func openState(path, key string, resume bool) (*state, error) {
	st := &state{path: path, done: map[string]bool{}, valid: -1}
	if resume {
		if err := st.load(key); err != nil {
			return nil, err
		}
	} else if err := checkOverwrite(path); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state folder: %w", err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if st.valid < 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open replay state: %w", err)
	}
	st.f = f
	if st.valid >= 0 {
		// Drop a line cut short by a kill, so the next one starts clean.
		if err := f.Truncate(st.valid); err != nil {
			f.Close()
			return nil, fmt.Errorf("repair replay state: %w", err)
		}
	} else {
		if err := st.append(stateHeader{Replay: 1, Key: key, Created: time.Now().UTC()}); err != nil {
			f.Close()
			return nil, err
		}
	}
	return st, nil
}

// checkOverwrite refuses to start over in a file that exists and is not a
// replay state file: --state may name the wrong file.
func checkOverwrite(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open replay state: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := io.ReadFull(f, buf)
	if n == 0 {
		return nil
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	if !strings.HasPrefix(line, `{"raywatch_replay_state":1,`) {
		return fmt.Errorf("%s exists and is not a raywatch replay state file; not overwriting it", path)
	}
	return nil
}

func (st *state) load(key string) error {
	data, err := os.ReadFile(st.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read replay state: %w", err)
	}
	text := string(data)
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i+1]
	} else {
		text = ""
	}
	if text == "" {
		return nil // not even a header: start over
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	var h stateHeader
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h.Replay != 1 {
		return fmt.Errorf("%s:1: not a raywatch replay state file", st.path)
	}
	if h.Key != key {
		return fmt.Errorf("%s: written by a replay with other arguments (key %s, want %s); run without --resume to start over", st.path, h.Key, key)
	}
	for i, l := range lines[1:] {
		var e stateEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			return fmt.Errorf("%s:%d: %v", st.path, i+2, err)
		}
		st.done[e.Object] = true
	}
	st.valid = int64(len(text))
	return nil
}

// finish records obj as finished.
func (st *state) finish(obj Object, objErr error) error {
	e := stateEntry{Object: obj.Name}
	if objErr != nil {
		e.Error = objErr.Error()
	}
	st.done[obj.Name] = true
	return st.append(e)
}

func (st *state) append(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := st.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write replay state %s: %w", st.path, err)
	}
	if err := st.f.Sync(); err != nil {
		return fmt.Errorf("sync replay state %s: %w", st.path, err)
	}
	return nil
}

func (st *state) close() error {
	if st == nil || st.f == nil {
		return nil
	}
	err := st.f.Close()
	st.f = nil
	return err
}
