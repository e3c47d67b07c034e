package backtest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints one line per case (outcome, rule, case file, records,
// alerts, reason) and a summary line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tRULE\tCASE\tRECORDS\tALERTS\tREASON")
	for _, res := range r.Results {
		title := res.Title
		if title == "" {
			title = res.Rule
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", strings.ToUpper(res.Outcome), title, caseName(res), res.Records, res.Alerts, res.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rulesSeen := map[string]bool{}
	for _, res := range r.Results {
		rulesSeen[res.Rule] = true
	}
	_, err := fmt.Fprintf(w, "%d rules, %d cases: %d passed, %d failed, %d skipped; %d loaded rules have no cases\n",
		len(rulesSeen), len(r.Results), r.Count(Pass), r.Count(Fail), r.Count(Skip), len(r.Uncovered))
	return err
}

// caseName is the case file's path below its rule folder.
func caseName(res Result) string {
	if _, rest, ok := strings.Cut(res.File, "/"); ok {
		return rest
	}
	return res.File
}

// The JUnit XML schema as Jenkins, GitLab and GitHub Actions reporters
// read it: testsuites > testsuite (one per rule) > testcase (one per case
// file) with a failure or skipped element.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML: a testsuite per rule (named
// by its title and id), a testcase per case file (named kind/file, its
// classname the rule id), with a failure or skipped element saying why.
func (r *Report) WriteJUnit(w io.Writer) error {
	out := junitSuites{Name: "raywatch rules test"}
	var total time.Duration
	idx := map[string]int{}
	for _, res := range r.Results {
		i, ok := idx[res.Rule]
		if !ok {
			name := res.Rule
			if res.Title != "" {
				name = res.Title + " (" + res.Rule + ")"
			}
			i = len(out.Suites)
			idx[res.Rule] = i
			out.Suites = append(out.Suites, junitSuite{Name: name})
		}
		s := &out.Suites[i]
		c := junitCase{Name: caseName(res), Classname: res.Rule, Time: seconds(res.Duration)}
		switch res.Outcome {
		case Fail:
			c.Failure = &junitMessage{Message: res.Reason, Type: res.Kind, Text: fmt.Sprintf("%s: %s (%d records, %d alerts)", res.File, res.Reason, res.Records, res.Alerts)}
			s.Failures++
			out.Failures++
		case Skip:
			c.Skipped = &junitMessage{Message: res.Reason}
			s.Skipped++
			out.Skipped++
		}
		s.Cases = append(s.Cases, c)
		s.Tests++
		out.Tests++
		total += res.Duration
	}
	for i := range out.Suites {
		var d time.Duration
		for _, res := range r.Results {
			if idx[res.Rule] == i {
				d += res.Duration
			}
		}
		out.Suites[i].Time = seconds(d)
	}
	out.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
