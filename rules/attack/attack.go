// Package attack is a trimmed table of MITRE ATT&CK's enterprise matrix:
// for each technique, its id, its name and the tactics it belongs to. It
// lets raywatch place a rule's technique tags under their own tactics
// (T1041 is exfiltration only, whatever else the rule is tagged with) and
// name them.
//
// The table is generated from MITRE's STIX data by gen.go (see table.go's
// header for the exact source). To refresh it from a checkout of
// github.com/mitre/cti:
//
//	CTI=/path/to/cti ATTACK_VERSION=18.1 ATTACK_SOURCE="github.com/mitre/cti commit <sha>" go generate ./rules/attack
//
// The package imports only the standard library, so that any package (the
// web server included) may use it.
package attack

//go:generate go run gen.go -cti ${CTI}/enterprise-attack -version ${ATTACK_VERSION} -source ${ATTACK_SOURCE}

import (
	"sort"
	"strings"
)

// TacticInfo is one tactic of the enterprise matrix.
type TacticInfo struct {
	ID        string // TA0010
	Shortname string // exfiltration, as in Sigma tags (attack.exfiltration)
	Name      string // Exfiltration
}

// TechniqueInfo is one technique or sub-technique.
type TechniqueInfo struct {
	ID   string // T1041, T1055.011
	Name string
	// Tactics are the shortnames of the technique's tactics, in the order of
	// the matrix.
	Tactics []string
	// Deprecated techniques are kept because older rules still carry their
	// tags.
	Deprecated bool
}

type technique struct {
	id, name   string
	mask       uint32
	deprecated bool
}

// Lookup returns the technique with id, given with or without Sigma's tag
// prefix and in any case ("T1041", "t1055.011", "attack.t1041"). It is safe
// for concurrent use; the returned value is the caller's.
func Lookup(id string) (TechniqueInfo, bool) {
	id = strings.ToUpper(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(id)), "attack."))
	i := sort.Search(len(techniques), func(i int) bool { return techniques[i].id >= id })
	if i == len(techniques) || techniques[i].id != id {
		return TechniqueInfo{}, false
	}
	t := &techniques[i]
	info := TechniqueInfo{ID: t.id, Name: t.name, Deprecated: t.deprecated}
	for b := range tactics {
		if t.mask&(1<<b) != 0 {
			info.Tactics = append(info.Tactics, tactics[b].Shortname)
		}
	}
	return info, true
}

// Technique returns the name and the tactic shortnames of the technique
// with id (see [Lookup]); ok is false for an id the table does not hold.
func Technique(id string) (name string, tactics []string, ok bool) {
	t, ok := Lookup(id)
	return t.Name, t.Tactics, ok
}

// Tactic returns the tactic with the given shortname ("command-and-control";
// underscores are read as hyphens, case is ignored).
func Tactic(shortname string) (TacticInfo, bool) {
	s := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(shortname)), "_", "-")
	for _, t := range tactics {
		if t.Shortname == s {
			return t, true
		}
	}
	return TacticInfo{}, false
}

// Tactics returns the tactics of the enterprise matrix in its order.
func Tactics() []TacticInfo {
	return append([]TacticInfo(nil), tactics[:]...)
}
