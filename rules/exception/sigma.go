package exception

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ExportSigma writes xs as Sigma filters (the specification's meta-rule
// type "filter"), one YAML document each, so that they can live in git and
// be loaded from a rules folder like any rule. Each filter lists the
// exception's rule; an exception for every rule lists "*", which raywatch
// reads as every rule (an extension of the specification). Equality on an
// IP field and CIDR ranges become the cidr modifier; text values are
// escaped so that Sigma's wildcards stay literal. A Sigma filter has no
// expiry: an exception's expiry is kept as a comment.
func ExportSigma(xs []Exception) []byte {
	var b bytes.Buffer
	for i := range xs {
		if i > 0 {
			b.WriteString("---\n")
		}
		doc := filterDoc(&xs[i])
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(4)
		// Encoding a node tree of strings cannot fail.
		if err := enc.Encode(doc); err != nil {
			panic("exception: encode sigma filter: " + err.Error())
		}
		enc.Close()
	}
	return b.Bytes()
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func mapping(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }

func filterDoc(x *Exception) *yaml.Node {
	title := "raywatch exception"
	if x.ID != "" {
		title += " " + x.ID
	}
	if first, _, _ := strings.Cut(strings.TrimSpace(x.Comment), "\n"); first != "" {
		title += ": " + first
	}
	if len(title) > 256 {
		title = title[:256]
	}
	root := mapping(str("title"), str(title))
	if x.ID != "" {
		root.Content = append(root.Content, str("id"), str("raywatch-exception-"+x.ID))
	}
	root.Content = append(root.Content, str("description"), str(strings.TrimSpace(x.Comment)))
	if x.CreatedBy != "" {
		root.Content = append(root.Content, str("author"), str(x.CreatedBy))
	}
	if !x.CreatedAt.IsZero() {
		root.Content = append(root.Content, str("date"), str(x.CreatedAt.UTC().Format(time.DateOnly)))
	}
	root.Content = append(root.Content, str("logsource"), mapping(str("product"), str("cloudflare")))

	rule := str(strings.TrimSpace(x.Rule))
	if x.Rule == AnyRule {
		rule.LineComment = "every rule (raywatch)"
	}
	sel := mapping()
	for _, key := range x.Keys() {
		field, op, _ := ParseKey(key)
		vals := x.Match[key]
		if op == OpEquals && IPField(field) {
			op = OpCIDR
		}
		k := field
		if op != OpEquals {
			k += "|" + op
		}
		var v *yaml.Node
		if len(vals) == 1 {
			v = str(sigmaValue(op, vals[0]))
		} else {
			v = &yaml.Node{Kind: yaml.SequenceNode}
			for _, s := range vals {
				v.Content = append(v.Content, str(sigmaValue(op, s)))
			}
		}
		sel.Content = append(sel.Content, str(k), v)
	}
	filter := mapping(
		str("rules"), &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{rule}},
		str("selection"), sel,
		str("condition"), str("selection"),
	)
	root.Content = append(root.Content, str("filter"), filter)
	if !x.Expires.IsZero() {
		root.HeadComment = fmt.Sprintf("expires %s: a Sigma filter does not expire; remove it by then", x.Expires.UTC().Format(time.RFC3339))
	}
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}
}

// sigmaValue escapes Sigma's wildcards and escape character in a text
// value; CIDR values are written as they are.
func sigmaValue(op, v string) string {
	if op == OpCIDR {
		p, err := ParseNet(v)
		if err != nil {
			return v
		}
		return p.String()
	}
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`)
	return r.Replace(v)
}
