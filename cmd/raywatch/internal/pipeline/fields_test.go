package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules/alert"
)

// fieldErrorBatch is four records of traffic.SequenceBatch and a
// malformed line: records 2 and 4 carry "EdgeResponseBytes":"69045x" (a
// field error), record 3 "EdgeStartTimestamp":"2022-05-07 18:53:12" (a
// form normalize accepts), as records exported by other tools do.
func fieldErrorBatch(t *testing.T) []byte {
	t.Helper()
	var out bytes.Buffer
	for i, line := range strings.Split(strings.TrimSpace(string(traffic.SequenceBatch(0, 4, 0))), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		switch i + 1 {
		case 2, 4:
			rec["EdgeResponseBytes"] = "69045x"
		case 3:
			rec["EdgeStartTimestamp"] = "2022-05-07 18:53:12"
		}
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(append(b, '\n'))
	}
	out.WriteString("not json\n")
	return out.Bytes()
}

// stampEvent is a Matcher that makes one alert per event, first seen at
// the event's time.
type stampEvent struct{}

func (stampEvent) Match(ev *normalize.Event, intake string, received time.Time) []alert.Alert {
	return []alert.Alert{{ID: ev.Key, RecordKey: ev.Key, Intake: intake, FirstSeen: ev.Time}}
}

// TestFieldErrors checks that a field of the wrong type costs the field,
// not the record: the record is detected, the field is counted (Tally,
// the metric by dataset and field, a "field dropped" reject) and not
// counted as malformed; a scan reports it without changing its exit
// status.
func TestFieldErrors(t *testing.T) {
	path := writeFile(t, t.TempDir(), "batch.ndjson", fieldErrorBatch(t))
	p := New(Options{Workers: 2, Detector: &Detector{Normalizer: normalize.New(normalize.Options{}), Engine: stampEvent{}, Dataset: "auto"}})
	var tally Tally
	err := p.Run(context.Background(), &Files{Names: []string{path}, Intake: "test", Received: time.Now()}, func(_ context.Context, c *Chunk) error {
		tally.Add(c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if tally.Records != 5 || tally.Malformed != 1 || len(tally.Alerts) != 4 || tally.FieldRecords != 2 {
		t.Errorf("tally: %d records, %d malformed, %d alerts, %d records with field errors; want 5, 1, 4, 2",
			tally.Records, tally.Malformed, len(tally.Alerts), tally.FieldRecords)
	}
	if d := cmp.Diff(map[FieldKey]int{{Dataset: "http_requests", Field: "EdgeResponseBytes"}: 2}, tally.FieldErrors); d != "" {
		t.Errorf("FieldErrors (-want +got):\n%s", d)
	}
	var times []time.Time
	for _, a := range tally.Alerts {
		times = append(times, a.FirstSeen)
	}
	if want := time.Date(2022, 5, 7, 18, 53, 12, 0, time.UTC); len(times) != 4 || !times[2].Equal(want) {
		t.Errorf("event times = %v; want the third %v (from \"2022-05-07 18:53:12\")", times, want)
	}
	var got []string
	for _, r := range tally.Rejects {
		got = append(got, r.Reason)
		if r.Record != 5 && !strings.Contains(r.Line, `"EdgeResponseBytes":"69045x"`) {
			t.Errorf("reject of record %d keeps %q; want the record's text", r.Record, r.Line)
		}
	}
	want := []string{
		"not JSON", // prefix; checked below
		`field dropped: field "EdgeResponseBytes": want number, got string`,
		`field dropped: field "EdgeResponseBytes": want number, got string`,
	}
	if len(got) != len(want) || !strings.HasPrefix(got[0], want[0]) || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("rejects = %q; want %q", got, want)
	}

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.CountFields(&tally)
	if n := testutil.ToFloat64(m.FieldErrors.WithLabelValues("http_requests", "EdgeResponseBytes")); n != 2 {
		t.Errorf("raywatch_records_field_errors_total{dataset=http_requests,field=EdgeResponseBytes} = %v; want 2", n)
	}

	var reported []string
	res, err := p.Scan(context.Background(), &Files{Names: []string{path}, Intake: "test", Received: time.Now()}, &bytes.Buffer{}, ScanReport{
		FieldError: func(n int, where string, fe normalize.FieldError) {
			reported = append(reported, where[strings.LastIndex(where, "record"):]+" "+fe.Field)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.FieldRecords != 2 || res.FieldErrors != 2 || res.Malformed != 1 || res.Alerts != 4 {
		t.Errorf("scan result %+v; want 2 records with 2 field errors, 1 malformed, 4 alerts", res)
	}
	if d := cmp.Diff([]string{"record 2 EdgeResponseBytes", "record 4 EdgeResponseBytes"}, reported); d != "" {
		t.Errorf("field errors reported (-want +got):\n%s", d)
	}
}

// TestTopField checks the metric's field label: the record's top-level
// key, never a key of the sender's inside an object.
func TestTopField(t *testing.T) {
	for in, want := range map[string]string{"EdgeResponseBytes": "EdgeResponseBytes", "Metadata.zone_tag": "Metadata", "": "unknown"} {
		if got := TopField(in); got != want {
			t.Errorf("TopField(%q) = %q; want %q", in, got, want)
		}
	}
}
