package traffic

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/normalize"
)

// TestRecordsDecode checks that every kind of generated record is an
// http_requests record normalize reads, with the request's fields.
func TestRecordsDecode(t *testing.T) {
	n := normalize.New(normalize.Options{})
	g := New(1)
	var reqs []Request
	for range 50 {
		reqs = append(reqs, g.Browse())
	}
	for k := range Attacks {
		reqs = append(reqs, g.Attack(k))
	}
	for i, r := range reqs {
		r.Time, r.RayID = BaseTime.Add(time.Duration(i)*time.Second), g.RayID()
		ev, err := n.Normalize("auto", Render(nil, r))
		if err != nil {
			t.Fatalf("request %+v: %v", r, err)
		}
		if ev.Dataset != "http_requests" || ev.Key != r.RayID {
			t.Errorf("request %d: dataset %q key %q; want http_requests and %q", i, ev.Dataset, ev.Key, r.RayID)
		}
		if ip, _ := ev.String("source.ip"); ip != r.IP {
			t.Errorf("request %d: source.ip %q; want %q", i, ip, r.IP)
		}
	}
}

// TestSequenceIsFixed checks what the tests count on: the same bytes
// every time, Lemon Duck at i%7 == 3, LokiBot at i%11 == 5.
func TestSequenceIsFixed(t *testing.T) {
	if !bytes.Equal(SequenceBatch(3, 40, 0), SequenceBatch(3, 40, 0)) {
		t.Fatal("SequenceBatch differs from call to call")
	}
	for i := range 40 {
		rec := string(Sequence(2, i))
		lemon, loki := strings.Contains(rec, "Lemon-Duck"), strings.Contains(rec, "Charon; Inferno")
		if lemon != (i%7 == 3) || loki != (i%11 == 5 && i%7 != 3) {
			t.Errorf("record %d: Lemon Duck %v, LokiBot %v", i, lemon, loki)
		}
	}
	if got := strings.Count(string(SequenceBatch(0, 10, 3)), "broken"); got != 3 {
		t.Errorf("SequenceBatch(0, 10, 3) has %d malformed lines; want 3", got)
	}
}

// TestBatchHasEveryAttack checks that a demo batch with every set holds
// each attack kind once besides the ordinary requests.
func TestBatchHasEveryAttack(t *testing.T) {
	b := New(7).Batch(time.Now(), 20, 0, true)
	if n := bytes.Count(b, []byte("\n")); n != 20+Attacks {
		t.Errorf("batch has %d records; want %d", n, 20+Attacks)
	}
	for _, want := range []string{"Lemon-Duck-", "Charon; Inferno", "/pool/job/priority/normal", "evil-cdn.example.net", "Trident/7.0"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("batch lacks %q", want)
		}
	}
}
