package rules

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed mapping.yml
var defaultMappingYAML []byte

// Mapping is the field-mapping pipeline: it turns the field names of Sigma
// rules into the ECS fields of raywatch events and tells which datasets a
// rule's logsource applies to. A Mapping is immutable once built and safe
// for concurrent use.
type Mapping struct {
	fields       map[string][]string
	derived      map[string]Derived
	logsources   []logsourceEntry
	placeholders map[string][]string
}

// Derived is a field computed from another field of the event.
type Derived struct {
	From string `yaml:"from"`
	// Func is "extension".
	Func string `yaml:"func"`
}

type logsourceEntry struct {
	Category string   `yaml:"category"`
	Product  string   `yaml:"product"`
	Service  string   `yaml:"service"`
	Datasets []string `yaml:"datasets"`
}

type mappingFile struct {
	Fields       map[string]yaml.Node `yaml:"fields"`
	Derived      map[string]Derived   `yaml:"derived"`
	Logsources   []logsourceEntry     `yaml:"logsources"`
	Placeholders map[string][]string  `yaml:"placeholders"`
}

// DefaultMapping returns the embedded mapping of the SigmaHQ proxy and
// webserver taxonomies onto raywatch's ECS fields.
func DefaultMapping() *Mapping {
	m, err := parseMapping("mapping.yml", defaultMappingYAML, nil)
	if err != nil {
		panic("rules: embedded mapping: " + err.Error())
	}
	return m
}

// LoadMapping returns the default mapping with the file at path merged over
// it. Errors name the file and line.
func LoadMapping(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read field mapping: %w", err)
	}
	return parseMapping(path, data, DefaultMapping())
}

func parseMapping(file string, data []byte, base *Mapping) (*Mapping, error) {
	var f mappingFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, yamlError(file, err)
	}
	m := &Mapping{fields: map[string][]string{}, derived: map[string]Derived{}, placeholders: map[string][]string{}}
	if base != nil {
		for k, v := range base.fields {
			m.fields[k] = v
		}
		for k, v := range base.derived {
			m.derived[k] = v
		}
		for k, v := range base.placeholders {
			m.placeholders[k] = v
		}
		m.logsources = base.logsources
	}
	for name, n := range f.Fields {
		var targets []string
		switch n.Kind {
		case yaml.ScalarNode:
			targets = []string{n.Value}
		case yaml.SequenceNode:
			if err := n.Decode(&targets); err != nil {
				return nil, &LoadError{File: file, Line: n.Line, Err: fmt.Errorf("field %s: %w", name, err)}
			}
		default:
			return nil, &LoadError{File: file, Line: n.Line, Err: fmt.Errorf("field %s: want a field name or a list of them", name)}
		}
		if len(targets) == 0 || slices.Contains(targets, "") {
			return nil, &LoadError{File: file, Line: n.Line, Err: fmt.Errorf("field %s: empty target", name)}
		}
		m.fields[name] = targets
	}
	for name, d := range f.Derived {
		if d.Func != "extension" || d.From == "" {
			return nil, &LoadError{File: file, Err: fmt.Errorf("derived field %s: want from: FIELD and func: extension", name)}
		}
		m.derived[name] = d
	}
	if f.Logsources != nil {
		for _, l := range f.Logsources {
			if len(l.Datasets) == 0 {
				return nil, &LoadError{File: file, Err: errors.New("logsources: an entry has no datasets")}
			}
		}
		m.logsources = f.Logsources
	}
	for k, v := range f.Placeholders {
		m.placeholders[k] = v
	}
	return m, nil
}

// Fields returns the event fields that the rule field name stands for.
func (m *Mapping) Fields(name string) []string {
	if t, ok := m.fields[name]; ok {
		return t
	}
	return []string{name}
}

// Derived returns how the event field name is computed, if it is derived.
func (m *Mapping) Derived(name string) (Derived, bool) {
	d, ok := m.derived[name]
	return d, ok
}

// Placeholder returns the values of the expand placeholder name (without
// its % signs).
func (m *Mapping) Placeholder(name string) ([]string, bool) {
	v, ok := m.placeholders[name]
	return v, ok
}

// Datasets returns the datasets a rule with logsource ls applies to, or nil
// for every dataset.
func (m *Mapping) Datasets(ls Logsource) []string {
	var out []string
	matched := false
	for _, e := range m.logsources {
		if (e.Category == "" || strings.EqualFold(e.Category, ls.Category)) &&
			(e.Product == "" || strings.EqualFold(e.Product, ls.Product)) &&
			(e.Service == "" || strings.EqualFold(e.Service, ls.Service)) &&
			(e.Category != "" || e.Product != "" || e.Service != "") {
			matched = true
			for _, d := range e.Datasets {
				if !slices.Contains(out, d) {
					out = append(out, d)
				}
			}
		}
	}
	if !matched {
		return nil
	}
	return out
}
