package ioc

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// FileStatus describes one file of the IOC folder as last loaded.
type FileStatus struct {
	// File is the file's name in the folder.
	File   string `json:"file"`
	Format string `json:"format,omitempty"`
	// Indicators counts, by type, the file's indicators in the current set.
	Indicators map[Type]int `json:"indicators"`
	// Total is the sum of Indicators.
	Total int `json:"total"`
	// Expired and Superseded count indicators left out of the set: past
	// their valid_until, or replaced by a newer version (or a revocation)
	// of the same STIX object.
	Expired    int `json:"expired"`
	Superseded int `json:"superseded"`
	// Skipped counts entries of types raywatch cannot match on Cloudflare
	// logs (file hashes, e-mail addresses, MISP rows with to_ids off,
	// non-STIX patterns).
	Skipped int `json:"skipped"`
	// BadLines counts lines (or STIX objects) that are not indicators;
	// LineErrors holds the first 100 of them.
	BadLines   int         `json:"bad_lines"`
	LineErrors []LineError `json:"line_errors,omitempty"`
	// LastLoad is when the file last loaded; zero if it never has.
	LastLoad time.Time `json:"last_load,omitzero"`
	// LastError is why the last attempt to load the file failed, with its
	// path and line where known; "" when it loaded. A file that fails keeps
	// the indicators of its last good load.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// Warning says why the file's current content was set aside although
	// it parses: a file that had indicators and now yields none without
	// saying it is empty (a feed with no indicators has only comment
	// lines), or whose entries are mostly not indicators (an error page
	// from a failed download). The file then keeps the indicators of its
	// last good load, which the counts above describe. "" when none.
	Warning     string    `json:"warning,omitempty"`
	WarningTime time.Time `json:"warning_time,omitzero"`
}

// fileState is what the loader remembers of one file.
type fileState struct {
	name      string
	res       *fileResult // last good parse (its indicators moved to group); nil if none
	group     *indGroup   // the indicators of res
	fp        fingerprint // of the last attempt
	lastLoad  time.Time
	lastErr   error
	lastErrAt time.Time
	warning   string // why the current content was set aside; "" if it was not
	warnAt    time.Time
	stats     buildStats // what the last build took from res
	dirty     bool       // group changed since the last build
}

// bigFile is the number of indicators from which a file gets a segment
// of its own in the Set; smaller files share one.
const bigFile = 1 << 12

// segState is a segment of the current set and what it was built from.
type segState struct {
	seg   *segment
	files []string // names, sorted
	// next is the earliest valid_until after the build among the
	// segment's indicators, zero for none: the segment is rebuilt then.
	next time.Time
	// versions digests the newest versions (across all files) of the
	// STIX objects of the segment's files: when it changes, indicators of
	// the segment may be superseded or restored.
	versions uint64
}

type fingerprint struct {
	size    int64
	modTime time.Time
}

// loader keeps the parsed files of a folder and builds sets from them. It is
// not safe for concurrent use.
type loader struct {
	dir        string
	files      map[string]*fileState
	segs       map[string]*segState // by the big file's name; "" for the small files
	nextExpiry time.Time            // the earliest valid_until after the last build, or zero
	seed       maphash.Seed
}

func newLoader(dir string) *loader {
	return &loader{dir: dir, files: make(map[string]*fileState), segs: make(map[string]*segState), seed: maphash.MakeSeed()}
}

// ignored reports whether a folder entry is not an indicator file: hidden
// files and editor or download leftovers.
func ignored(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") ||
		strings.HasPrefix(name, "#") ||
		strings.HasSuffix(name, ".swp") || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".part")
}

// scanResult says what one scan did.
type scanResult struct {
	parsed []string // files read and parsed successfully
	failed []string // files that failed (and kept their previous indicators)
	kept   []string // files set aside as suspect (and kept their previous indicators)
	gone   []string // files that disappeared
}

func (r scanResult) changed() bool { return len(r.parsed)+len(r.gone) > 0 }

// scan lists the folder and re-reads every file that is new, has changed
// size or modification time, or is named in force (every file if all). It
// fails only when the folder cannot be listed, and then changes nothing.
func (l *loader) scan(now time.Time, force map[string]bool, all bool) (scanResult, error) {
	var r scanResult
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return r, fmt.Errorf("read IOC folder: %w", err)
	}
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		name := e.Name()
		if ignored(name) {
			continue
		}
		path := filepath.Join(l.dir, name)
		fi, err := os.Stat(path) // follows symlinks
		if err != nil {
			if os.IsNotExist(err) {
				continue // removed meanwhile
			}
		} else if !fi.Mode().IsRegular() {
			continue
		}
		seen[name] = true
		st := l.files[name]
		if st == nil {
			st = &fileState{name: name}
			l.files[name] = st
		}
		var fp fingerprint
		if fi != nil {
			fp = fingerprint{fi.Size(), fi.ModTime()}
		}
		if err == nil && !all && !force[name] && st.fp == fp && (st.res != nil || st.lastErr != nil) {
			continue
		}
		st.fp = fp
		kept := false
		if err == nil {
			kept, err = l.load(st, path)
		}
		switch {
		case err != nil:
			st.lastErr, st.lastErrAt = err, now
			r.failed = append(r.failed, name)
		case kept:
			st.lastErr, st.warnAt = nil, now
			r.kept = append(r.kept, name)
		default:
			st.lastErr, st.lastLoad, st.dirty = nil, now, true
			if st.warning != "" {
				st.warnAt = now
			}
			r.parsed = append(r.parsed, name)
		}
	}
	for name := range l.files {
		if !seen[name] {
			delete(l.files, name)
			r.gone = append(r.gone, name)
		}
	}
	return r, nil
}

// load reads and parses one file into st. A file that is not STIX or CSV
// by its name is read into a string, which its indicators then share. A
// file that had indicators and whose new content is suspect (see
// [fileResult.suspect]) keeps them: kept is then true and st.warning says
// why.
func (l *loader) load(st *fileState, path string) (kept bool, err error) {
	var res *fileResult
	switch strings.ToLower(filepath.Ext(st.name)) {
	case ".json", ".stix", ".stix2", ".csv":
		data, rerr := os.ReadFile(path)
		if rerr != nil {
			return false, rerr
		}
		res, err = parseFile(st.name, data)
	default:
		text, rerr := readString(path)
		if rerr != nil {
			return false, rerr
		}
		res, err = parseFile(st.name, text)
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	st.warning = res.suspect()
	if st.warning != "" && st.group != nil && len(st.group.recs) > 0 {
		st.warning = fmt.Sprintf("%s: %s; keeping the %d indicators of its last good load", path, st.warning, len(st.group.recs))
		return true, nil
	}
	if st.warning != "" {
		st.warning = path + ": " + st.warning
	}
	// The indicators are kept packed, without a pointer each; the
	// parsed slice (and for plain text the file's text) can go.
	st.group = compactGroup(res.inds)
	res.inds = nil
	st.res = res
	return false, nil
}

// readString reads a file into a string without the copy that converting
// the bytes of [os.ReadFile] makes.
func readString(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	if fi, err := f.Stat(); err == nil {
		b.Grow(int(fi.Size()) + 512)
	}
	if _, err := io.Copy(&b, f); err != nil {
		return "", err
	}
	return b.String(), nil
}

// build returns the set of the indicators of every file that has loaded,
// as valid at now, and remembers per file what went into it. It rebuilds
// only the segments whose files changed (or moved between segments),
// whose indicators' supersession changed, or that hold an indicator that
// has expired since their last build; the others are reused as they are.
func (l *loader) build(now time.Time) *Set {
	names := l.names()
	newest := make(map[string]version)
	want := make(map[string][]string) // segment key -> files
	for _, name := range names {
		st := l.files[name]
		if st.res == nil {
			continue
		}
		key := ""
		if len(st.group.recs) >= bigFile {
			key = name
		}
		want[key] = append(want[key], name)
		for _, v := range st.res.versions {
			old, ok := newest[v.id]
			if !ok || v.modified.After(old.modified) || v.modified.Equal(old.modified) && v.revoked {
				newest[v.id] = v
			}
		}
	}
	segs := make(map[string]*segState, len(want))
	keys := make([]string, 0, len(want))
	l.nextExpiry = time.Time{}
	for key, files := range want {
		keys = append(keys, key)
		versions := l.versionsDigest(files, newest)
		old := l.segs[key]
		if old == nil || !slices.Equal(old.files, files) || old.versions != versions ||
			!old.next.IsZero() && !old.next.After(now) || l.anyDirty(files) {
			old = l.buildSegment(files, newest, now)
			old.versions = versions
		}
		segs[key] = old
		if u := old.next; !u.IsZero() && (l.nextExpiry.IsZero() || u.Before(l.nextExpiry)) {
			l.nextExpiry = u
		}
	}
	for _, st := range l.files {
		st.dirty = false
	}
	l.segs = segs
	sort.Strings(keys)
	out := make([]*segment, len(keys))
	for i, k := range keys {
		out[i] = segs[k].seg
	}
	return newSetOf(out)
}

// buildSegment indexes the indicators of files.
func (l *loader) buildSegment(files []string, newest map[string]version, now time.Time) *segState {
	groups := make([]*indGroup, len(files))
	for i, name := range files {
		groups[i] = l.files[name].group
	}
	seg, stats := build(groups, newest, now)
	for i, name := range files {
		l.files[name].stats = stats[i]
	}
	ss := &segState{seg: seg, files: files}
	for _, ref := range seg.refs {
		if m := seg.group(ref).metaOf(ref.i); m != nil {
			if u := m.ValidUntil; !u.IsZero() && (ss.next.IsZero() || u.Before(ss.next)) {
				ss.next = u
			}
		}
	}
	return ss
}

func (l *loader) anyDirty(files []string) bool {
	for _, name := range files {
		if l.files[name].dirty {
			return true
		}
	}
	return false
}

// versionsDigest digests the newest version of each STIX object of files.
func (l *loader) versionsDigest(files []string, newest map[string]version) uint64 {
	var h maphash.Hash
	h.SetSeed(l.seed)
	var b [8]byte
	for _, name := range files {
		for _, v := range l.files[name].res.versions {
			n := newest[v.id]
			h.WriteString(n.id)
			binary.LittleEndian.PutUint64(b[:], uint64(n.modified.UnixNano()))
			h.Write(b[:])
			if n.revoked {
				h.WriteByte(1)
			} else {
				h.WriteByte(0)
			}
		}
	}
	return h.Sum64()
}

func (l *loader) names() []string {
	names := make([]string, 0, len(l.files))
	for name := range l.files {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// status reports on every file of the folder, sorted by name. The counts
// are those of the last build.
func (l *loader) status() []FileStatus {
	names := l.names()
	status := make([]FileStatus, len(names))
	for i, name := range names {
		st := l.files[name]
		fs := FileStatus{File: name, Indicators: make(map[Type]int, len(typeIndex)), LastLoad: st.lastLoad}
		for j, t := range typeIndex {
			fs.Indicators[t] = st.stats.byType[j]
			fs.Total += st.stats.byType[j]
		}
		fs.Expired, fs.Superseded = st.stats.expired, st.stats.superseded
		if res := st.res; res != nil {
			fs.Format, fs.Skipped, fs.BadLines, fs.LineErrors = res.format, res.skipped, res.badLines, res.errs
		}
		if st.lastErr != nil {
			fs.LastError, fs.LastErrorTime = st.lastErr.Error(), st.lastErrAt
		}
		if st.warning != "" {
			fs.Warning, fs.WarningTime = st.warning, st.warnAt
		}
		status[i] = fs
	}
	return status
}

// LoadDir loads every indicator file of dir once, as valid at now. Files
// whose names start with '.' or '#', or end in '~', ".swp", ".tmp" or
// ".part", and subfolders are ignored. A file that cannot be read or parsed
// contributes nothing and says why in its status. The error is non-nil only
// when dir cannot be listed.
func LoadDir(dir string, now time.Time) (*Set, []FileStatus, error) {
	l := newLoader(dir)
	if _, err := l.scan(now, nil, false); err != nil {
		return nil, nil, err
	}
	set := l.build(now)
	return set, l.status(), nil
}
