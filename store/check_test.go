package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
)

// damagedAlerts is the number of alerts of the databases the damage tests
// build: enough for a few levels of pages.
const damagedAlerts = 3000

var template struct {
	once sync.Once
	db   []byte
	ids  []string
	err  error
}

// buildDB writes a database of damagedAlerts alerts (over three rules) to
// a new folder. It returns the file's path and the alert ids.
func buildDB(t *testing.T) (string, []string) {
	t.Helper()
	template.once.Do(func() {
		dir, err := os.MkdirTemp("", "store-template")
		if err != nil {
			template.err = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "alerts.db")
		if template.ids, template.err = writeDB(path); template.err == nil {
			template.db, template.err = os.ReadFile(path)
		}
	})
	if template.err != nil {
		t.Fatal(template.err)
	}
	path := filepath.Join(t.TempDir(), "alerts.db")
	if err := os.WriteFile(path, template.db, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, template.ids
}

// writeDB writes damagedAlerts alerts into a new database at path.
func writeDB(path string) ([]string, error) {
	s, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	var as []alert.Alert
	var ids []string
	for i := range damagedAlerts {
		a := alertAt(int64(1000+i), fmt.Sprintf("r%d", i%3), fmt.Sprintf("k%d", i))
		a.Event["url"] = map[string]any{"original": strings.Repeat("/path", 20) + fmt.Sprint(i)}
		as = append(as, a)
		ids = append(ids, a.ID)
	}
	if _, err := s.Put(context.Background(), as); err != nil {
		s.Close()
		return nil, err
	}
	return ids, s.Close()
}

// alertPages returns the leaf and branch pages of the alerts bucket of the
// database at path, and the alerts each leaf page holds.
func alertPages(t *testing.T, path string) (leaves, branches []uint64, perLeaf map[uint64]int) {
	t.Helper()
	d, err := openDBFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	perLeaf = map[uint64]int{}
	var walk func(id uint64)
	walk = func(id uint64) {
		p, err := d.readPage(id)
		if err != nil {
			t.Fatal(err)
		}
		els, err := p.elements()
		if err != nil {
			t.Fatal(err)
		}
		if p.flags == branchPageFlag {
			branches = append(branches, id)
			for _, el := range els {
				walk(el.child)
			}
			return
		}
		leaves = append(leaves, id)
		perLeaf[id] = len(els)
	}
	root, err := d.readPage(d.meta.root)
	if err != nil {
		t.Fatal(err)
	}
	els, err := root.elements()
	if err != nil {
		t.Fatal(err)
	}
	for _, el := range els {
		if string(el.key) == string(bucketAlerts) {
			walk(le.Uint64(el.value))
		}
	}
	if len(branches) == 0 || len(leaves) < 10 {
		t.Fatalf("alerts bucket has %d branch and %d leaf pages; want a deeper tree", len(branches), len(leaves))
	}
	return leaves, branches, perLeaf
}

// overwrite writes junk over page id of the file at path.
func overwrite(t *testing.T, path string, id uint64, junk []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(junk, int64(id)*4096); err != nil {
		t.Fatal(err)
	}
}

func randomJunk(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// damage is one way a database file gets damaged. lost is the number of
// alerts Recover cannot bring back (-1: not known in advance); salvaged
// says whether some are found only on pages cut off from the tree
// (nil: it depends on the layout).
type damage struct {
	name     string
	apply    func(t *testing.T, path string) (lost int)
	salvaged *bool
}

var yes, no = new(true), new(false)

var damages = []damage{
	{"truncated", func(t *testing.T, path string) int {
		st, _ := os.Stat(path)
		if err := os.Truncate(path, st.Size()*6/10); err != nil {
			t.Fatal(err)
		}
		return -1
	}, nil},
	{"leaf page of junk", func(t *testing.T, path string) int {
		leaves, _, perLeaf := alertPages(t, path)
		id := leaves[len(leaves)/2]
		overwrite(t, path, id, randomJunk(4096))
		return perLeaf[id]
	}, no},
	{"branch page of zeros", func(t *testing.T, path string) int {
		_, branches, _ := alertPages(t, path)
		overwrite(t, path, branches[0], make([]byte, 4096))
		return 0 // its leaves are intact, only cut off
	}, yes},
	{"meta pages of junk", func(t *testing.T, path string) int {
		overwrite(t, path, 0, randomJunk(2*4096))
		return 0
	}, yes},
}

// TestOpenRefusesDamagedFile opens damaged files: Open fails with an error
// that matches ErrDamaged and names the file and the commands that fix it,
// instead of crashing on the first read (SIGBUS for a truncated file).
func TestOpenRefusesDamagedFile(t *testing.T) {
	for _, dm := range damages {
		t.Run(dm.name, func(t *testing.T) {
			path, _ := buildDB(t)
			dm.apply(t, path)
			s, err := Open(path, Options{Timeout: time.Second})
			if err == nil {
				s.Close()
				t.Fatal("Open of a damaged file succeeded; want an error")
			}
			dir := filepath.Dir(path)
			for _, want := range []string{path, "raywatch store check --data-dir " + dir, "raywatch store recover --data-dir " + dir} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error %q; want it to contain %q", err, want)
				}
			}
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("Open error %v does not match ErrDamaged", err)
			}
		})
	}
}

// TestCheck checks a sound database (no problems, every alert read) and
// damaged ones (problems found, naming what is wrong).
func TestCheck(t *testing.T) {
	path, _ := buildDB(t)
	rep, err := Check(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Alerts != damagedAlerts || rep.Buckets["alerts"] != damagedAlerts || rep.Buckets["by_rule"] != damagedAlerts {
		t.Fatalf("Check of a sound database = %+v; want no problem and %d alerts", rep, damagedAlerts)
	}
	for _, dm := range damages {
		t.Run(dm.name, func(t *testing.T) {
			path, _ := buildDB(t)
			dm.apply(t, path)
			rep, err := Check(path, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatalf("Check of a damaged database = %+v; want problems", rep)
			}
			if !strings.Contains(strings.Join(rep.Problems, "\n"), "page") {
				t.Errorf("problems %q name no page", rep.Problems)
			}
			if text := rep.String(); !strings.Contains(text, "raywatch store recover --data-dir "+filepath.Dir(path)) {
				t.Errorf("report %q does not give the fix", text)
			}
		})
	}
}

// TestRecover recovers damaged files: the readable alerts (and those on
// pages cut off from the tree) are copied with their indexes, the damaged
// file is moved aside, and the new database opens, checks sound and lists
// what was copied.
func TestRecover(t *testing.T) {
	for _, dm := range damages {
		t.Run(dm.name, func(t *testing.T) {
			path, ids := buildDB(t)
			lost := dm.apply(t, path)
			now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
			rep, err := Recover(path, RecoverOptions{Timeout: time.Second, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", rep)
			if want := path + ".damaged-20260501T120000Z"; rep.DamagedPath != want {
				t.Errorf("damaged file moved to %q; want %q", rep.DamagedPath, want)
			}
			if _, err := os.Stat(rep.DamagedPath); err != nil {
				t.Errorf("damaged file: %v", err)
			}
			switch {
			case lost >= 0 && rep.Alerts != damagedAlerts-lost:
				t.Errorf("recovered %d alerts; want %d (%d lost)", rep.Alerts, damagedAlerts-lost, lost)
			case lost < 0 && (rep.Alerts == 0 || rep.Alerts >= damagedAlerts):
				t.Errorf("recovered %d alerts of a truncated file; want some, not all", rep.Alerts)
			}
			if dm.salvaged != nil && *dm.salvaged != (rep.Salvaged > 0) {
				t.Errorf("%d alerts salvaged from loose pages; want salvage %v", rep.Salvaged, *dm.salvaged)
			}
			if lost >= 0 && rep.AlertsLost != lost && !(lost == 0 && rep.AlertsLost == -1) {
				t.Errorf("report says %d alerts lost; want %d", rep.AlertsLost, lost)
			}
			chk, err := Check(path, time.Second)
			if err != nil || !chk.OK() || chk.Alerts != rep.Alerts {
				t.Fatalf("Check of the recovered database = %+v, %v; want sound with %d alerts", chk, err, rep.Alerts)
			}
			s, err := Open(path, Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			st, err := s.Stats(ctx)
			if err != nil || st.Alerts != int64(rep.Alerts) {
				t.Errorf("Stats = %d alerts, %v; want %d", st.Alerts, err, rep.Alerts)
			}
			listed := 0
			for _, rule := range []string{"r0", "r1", "r2"} {
				got, _, err := s.List(ctx, Query{Rule: rule, Limit: damagedAlerts})
				if err != nil {
					t.Fatal(err)
				}
				listed += len(got)
			}
			if listed != rep.Alerts {
				t.Errorf("List by rule finds %d alerts; want the %d recovered", listed, rep.Alerts)
			}
			if lost == 0 {
				for _, id := range []string{ids[0], ids[len(ids)/2], ids[len(ids)-1]} {
					if a, err := s.Get(ctx, id); err != nil || a.ID != id || a.Rule.Title == "" {
						t.Errorf("Get(%s) = %+v, %v; want the alert", id, a.ID, err)
					}
				}
			}
		})
	}
}

// TestDamageAtRunTime damages the file under an open store (pages
// overwritten, then the file truncated): reads fail with errors that
// match ErrDamaged and name the file, and the process goes on.
func TestDamageAtRunTime(t *testing.T) {
	path, ids := buildDB(t)
	leaves, branches, _ := alertPages(t, path)
	s, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, _, err := s.List(ctx, Query{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(branches, leaves...) {
		overwrite(t, path, id, randomJunk(4096))
	}
	reads := map[string]func() error{
		"List": func() error { _, _, err := s.List(ctx, Query{Limit: damagedAlerts}); return err },
		"Get":  func() error { _, err := s.Get(ctx, ids[len(ids)/2]); return err },
		"Overview": func() error {
			_, err := s.Overview(ctx, time.Unix(0, 0), time.Unix(1e10, 0), 10)
			return err
		},
	}
	check := func(stage string) {
		for name, read := range reads {
			err := read()
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s, %s = %v; want an error matching ErrDamaged naming %s", stage, name, err, path)
			}
		}
	}
	check("pages overwritten")
	if err := os.Truncate(path, 8192); err != nil {
		t.Fatal(err)
	}
	check("file truncated")
	if _, err := s.Put(ctx, []alert.Alert{alertAt(99999, "r9", "k")}); err == nil {
		t.Error("Put into a truncated file succeeded; want an error")
	}
}
