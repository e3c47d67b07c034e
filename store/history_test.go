package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
)

// TestStatusHistoryBounded checks that many status changes keep the first
// change and the latest ones, with a count of those left out, so that an
// alert patched many times stays small (issue 16, item 10: 1,500 PATCHes
// made one alert 3 MB).
func TestStatusHistoryBounded(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	a := alertAt(100, "r1", "k1")
	if _, err := s.Put(ctx, []alert.Alert{a}); err != nil {
		t.Fatal(err)
	}
	const changes = 200
	statuses := []string{alert.StatusAcknowledged, alert.StatusClosed}
	var got alert.Alert
	for i := range changes {
		var err error
		got, err = s.Transition(ctx, a.ID, alert.StatusChange{
			Status: statuses[i%2], By: fmt.Sprintf("analyst-%d", i), At: time.Unix(int64(1000+i), 0), Comment: "note",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	stored, err := s.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []alert.Alert{got, stored} {
		h := x.StatusHistory
		if len(h) != historyFirst+historyLast || x.StatusHistoryDropped != changes-len(h) {
			t.Fatalf("history has %d entries, %d dropped; want %d, %d", len(h), x.StatusHistoryDropped, historyFirst+historyLast, changes-historyFirst-historyLast)
		}
		if h[0].By != "analyst-0" {
			t.Errorf("first entry by %q; want analyst-0 (the first change is kept)", h[0].By)
		}
		for i, ch := range h[historyFirst:] {
			if want := fmt.Sprintf("analyst-%d", changes-historyLast+i); ch.By != want {
				t.Errorf("entry %d by %q; want %q (the latest changes, in order)", historyFirst+i, ch.By, want)
			}
		}
	}
}
