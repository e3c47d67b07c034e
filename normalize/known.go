package normalize

import (
	"strings"
	"sync"
)

// knownFields are the dotted names the decoders may set, and the subset of
// them whose values are objects (any key below them may be present).
var knownFields = sync.OnceValues(func() (map[string]bool, map[string]bool) {
	all := make(map[string]bool, len(fieldNames))
	for _, n := range fieldNames[1:] {
		all[n] = true
	}
	objects := map[string]bool{}
	for _, id := range []uint16{fCFMetadata, fCFFileList, fCFRequestNetworks} {
		objects[fieldNames[id]] = true
	}
	for _, ds := range datasetsByName {
		for _, c := range ds.copies {
			if c.kind == kindObject {
				objects[fieldNames[c.id]] = true
			}
		}
	}
	return all, objects
})

// HasField reports whether some decoder can set the dotted ECS field name
// ("url.path", "cloudflare.RayID"), or name is a key below a field whose
// value is an object ("cloudflare.RequestHeaders.cookie"). Rules and
// exceptions that test any other field can never match. It is safe for
// concurrent use.
func HasField(name string) bool {
	all, objects := knownFields()
	if all[name] {
		return true
	}
	for i := strings.IndexByte(name, '.'); i >= 0; {
		if objects[name[:i]] {
			return true
		}
		j := strings.IndexByte(name[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}
