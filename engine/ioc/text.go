package ioc

import (
	"errors"
	"runtime"
	"strings"
)

// parseText reads a plain-text indicator file: one indicator a line, blank
// lines and lines starting with '#' ignored, an inline comment after " #"
// kept as the indicator's name. A value is an address, a CIDR range, a
// domain or a URL, told apart by its form, or "type:value" with a type word
// such as ua:, ja3:, domain:, url: or ip:. A Zeek intel file (tab-separated,
// with a "#fields" header naming indicator, indicator_type and meta.desc)
// reads as well.
func parseText(file, text string, res *fileResult) {
	res.inds = make([]Indicator, 0, strings.Count(text, "\n")+1)
	zeek := zeekColumns{value: -1}
	line := 0
	for len(text) > 0 {
		line++
		if line&yieldEvery == yieldEvery {
			runtime.Gosched()
		}
		var l string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			l, text = text[:i], text[i+1:]
		} else {
			l, text = text, ""
		}
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if l[0] == '#' {
			if f, ok := strings.CutPrefix(l, "#fields"); ok {
				zeek = parseZeekHeader(f)
			}
			res.comments++
			continue
		}
		if zeek.value >= 0 && strings.IndexByte(l, '\t') >= 0 {
			zeek.parseLine(file, line, l, res)
			continue
		}
		var meta *Meta
		if i := commentStart(l); i >= 0 {
			if c := strings.TrimSpace(l[i+1:]); c != "" {
				meta = &Meta{Name: c}
			}
			l = strings.TrimSpace(l[:i])
		}
		typeName, value := "", l
		if i := strings.IndexByte(l, ':'); i > 0 && i < 20 {
			w := strings.ToLower(l[:i])
			if _, ok := typeNames[w]; ok {
				typeName, value = w, l[i+1:]
			}
		}
		res.add(file, line, typeName, value, meta)
	}
}

// commentStart returns the index of the '#' that starts an inline comment
// (one preceded by a space or a tab), or -1.
func commentStart(l string) int {
	for i := 1; i < len(l); i++ {
		if l[i] == '#' && (l[i-1] == ' ' || l[i-1] == '\t') {
			return i
		}
	}
	return -1
}

// zeekColumns are the columns of a Zeek intel file that raywatch uses.
type zeekColumns struct {
	value, typ, desc, source int
}

func parseZeekHeader(f string) zeekColumns {
	z := zeekColumns{value: -1, typ: -1, desc: -1, source: -1}
	for i, name := range strings.Fields(f) {
		switch name {
		case "indicator":
			z.value = i
		case "indicator_type":
			z.typ = i
		case "meta.desc":
			z.desc = i
		case "meta.source":
			z.source = i
		}
	}
	return z
}

func (z zeekColumns) parseLine(file string, line int, l string, res *fileResult) {
	cols := strings.Split(l, "\t")
	col := func(i int) string {
		if i < 0 || i >= len(cols) || cols[i] == "-" {
			return ""
		}
		return cols[i]
	}
	value := col(z.value)
	typeName := strings.ToLower(col(z.typ))
	var meta *Meta
	if d, s := col(z.desc), col(z.source); d != "" || s != "" {
		meta = &Meta{Name: d, Category: s}
	}
	res.add(file, line, typeName, value, meta)
}

// add classifies one value and appends it to the result, or records why it
// is not an indicator.
func (res *fileResult) add(file string, line int, typeName, value string, meta *Meta) {
	t, v, err := classify(typeName, value)
	if err != nil {
		var unsup errUnsupported
		if errors.As(err, &unsup) {
			res.skipped++
			return
		}
		res.lineError(file, line, err.Error())
		return
	}
	res.inds = append(res.inds, Indicator{Type: t, Value: v, File: file, Line: line, Meta: meta})
}
