package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBlocksStateAndTrail(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	a := BlockEntry{Address: "203.0.113.7", Listed: t0, Until: t0.Add(24 * time.Hour), Who: "rule:r1", Rule: "r1", Alert: "al1", Reason: "rule r1 alert al1"}
	b := BlockEntry{Address: "2001:db8:1:2::/64", Listed: t0, Until: t0.Add(time.Hour), Who: "dashboard", Reason: "by hand", DryRun: true}
	err := s.ApplyBlocks(ctx, BlockChange{
		Put:   []BlockEntry{a, b},
		Audit: []BlockAudit{{At: t0, Action: BlockActionBlock, Address: a.Address, Who: a.Who, Until: a.Until}, {At: t0, Action: BlockActionBlock, Address: b.Address, Who: b.Who}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Unblock a, holding it; extend b.
	b.Until = t0.Add(2 * time.Hour)
	hold := BlockHold{Address: a.Address, Until: t0.Add(24 * time.Hour), Who: "dashboard"}
	err = s.ApplyBlocks(ctx, BlockChange{
		Delete: []string{a.Address, "198.51.100.1"}, Put: []BlockEntry{b}, Hold: []BlockHold{hold},
		Audit: []BlockAudit{{At: t0.Add(time.Minute), Action: BlockActionUnblock, Address: a.Address, Who: "dashboard", Reason: "false positive"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The state survives a reopen.
	s.Close()
	s2, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	entries, holds, err := s2.BlockState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]BlockEntry{b}, entries); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]BlockHold{hold}, holds); d != "" {
		t.Errorf("holds (-want +got):\n%s", d)
	}
	trail, err := s2.BlockAuditTrail(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range trail {
		got = append(got, fmt.Sprintf("%d %s %s %s", r.Seq, r.Action, r.Address, r.Who))
	}
	want := []string{"3 unblock 203.0.113.7 dashboard", "2 block 2001:db8:1:2::/64 dashboard", "1 block 203.0.113.7 rule:r1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("trail (-want +got):\n%s", d)
	}
	only, err := s2.BlockAuditTrail(ctx, a.Address, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(only) != 1 || only[0].Seq != 3 {
		t.Errorf("BlockAuditTrail(%s, 1) = %+v; want record 3", a.Address, only)
	}
	// Release the hold.
	if err := s2.ApplyBlocks(ctx, BlockChange{Release: []string{a.Address}}); err != nil {
		t.Fatal(err)
	}
	if _, holds, _ := s2.BlockState(ctx); len(holds) != 0 {
		t.Errorf("holds after release = %+v", holds)
	}
}

func TestBlockAuditTrailBounded(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	batch := make([]BlockAudit, 1000)
	for round := 0; round < 11; round++ {
		for i := range batch {
			batch[i] = BlockAudit{Action: BlockActionBlock, Address: fmt.Sprintf("198.51.100.%d", i%250), Who: "rule:r"}
		}
		if err := s.ApplyBlocks(ctx, BlockChange{Audit: batch}); err != nil {
			t.Fatal(err)
		}
	}
	trail, err := s.BlockAuditTrail(ctx, "", 20000)
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != maxBlockAudit || trail[0].Seq != 11000 || trail[len(trail)-1].Seq != 1001 {
		t.Errorf("trail holds %d records, %d to %d; want %d, 11000 to 1001", len(trail), trail[0].Seq, trail[len(trail)-1].Seq, maxBlockAudit)
	}
	// Entries beside the trail are untouched by the trimming.
	if err := s.ApplyBlocks(ctx, BlockChange{Put: []BlockEntry{{Address: "198.51.100.9"}}, Audit: batch[:1]}); err != nil {
		t.Fatal(err)
	}
	if entries, _, _ := s.BlockState(ctx); len(entries) != 1 {
		t.Errorf("entries = %+v", entries)
	}
}
