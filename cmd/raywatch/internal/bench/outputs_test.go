package bench

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestWebhookPhase runs a short webhook phase: every acknowledged batch's
// alert reaches the receiver, signed, before and after an outage, and the
// output's figures come from GET /api/v1/outputs.
func TestWebhookPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve for several seconds")
	}
	rep, err := Run(context.Background(), Config{
		Records: 2000, AttackRate: 0.01, Clients: 2, Rate: 2000, Latency: 2 * time.Second, Outage: 2 * time.Second,
		Phases: []string{"webhook"}, Seed: 1,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	w := rep.Webhook
	if w == nil || w.Outage == nil {
		t.Fatalf("report %+v; want the webhook phase and its outage", rep)
	}
	if w.Batches == 0 || w.Received != w.Batches || w.BadSignatures != 0 {
		t.Errorf("webhook: %d of %d alerts received, %d bad signatures; want all, none", w.Received, w.Batches, w.BadSignatures)
	}
	o := w.Outage
	if o.Batches == 0 || o.Refused != 0 || o.Received != o.Batches || o.Lost != 0 || o.QueuedAtEnd == 0 {
		t.Errorf("outage: %+v; want every batch acknowledged, queued while down, then received", o)
	}
	if w.Output.Name != "webhook-1" || w.Output.Delivered < int64(w.Batches+o.Batches) {
		t.Errorf("output after the phase: %+v", w.Output)
	}
}
