package coverage

import (
	"slices"
	"strings"

	"github.com/raywatch/raywatch/rules"
)

// FieldUse says why raywatch wants a Logpush field.
type FieldUse struct {
	Rules   []string // titles of the enabled rules that need it
	IOC     bool     // the IOC matcher reads it
	Context bool     // recommended context for an analyst
}

// Wanted returns, for the dataset, the fields raywatch wants and why,
// given the rules' needs. Only http_requests has field knowledge; for
// other datasets the map is empty.
func Wanted(dataset string, needs []RuleNeeds) map[string]*FieldUse {
	want := map[string]*FieldUse{}
	if dataset != "http_requests" {
		return want
	}
	get := func(f string) *FieldUse {
		u := want[f]
		if u == nil {
			u = &FieldUse{}
			want[f] = u
		}
		return u
	}
	for _, rn := range needs {
		if rn.ID == rules.IntelligenceFeedID {
			continue // its fields are the IOC matcher's, marked below
		}
		for _, f := range logpushFieldsFor(rn.Needs) {
			u := get(f)
			if !slices.Contains(u.Rules, rn.Title) {
				u.Rules = append(u.Rules, rn.Title)
			}
		}
	}
	for _, f := range iocFields {
		get(f).IOC = true
	}
	for _, f := range contextFields {
		get(f).Context = true
	}
	return want
}

// String says who uses the field: the rules, the IOC matcher, or
// "context".
func (u *FieldUse) String() string {
	var parts []string
	parts = append(parts, u.Rules...)
	if u.IOC {
		parts = append(parts, "IOC matcher")
	}
	if len(parts) == 0 && u.Context {
		parts = append(parts, "context")
	}
	return strings.Join(parts, "; ")
}
