package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"
)

// Output is an output implemented outside this package (the edge block
// list is one): the dispatcher runs it as it runs its own, with the same
// queue in the outbox, order, backoff, metrics and report. Its methods
// other than Send must be safe for concurrent use; Send is called from one
// goroutine at a time.
type Output interface {
	// Name is the output's queue in the outbox: store.Options.Outputs must
	// hold it, and it must differ from every other output's.
	Name() string
	// Type, Target and MinLevel describe it in the report (GET
	// /api/v1/outputs); Target holds no secret.
	Type() string
	Target() string
	MinLevel() string
	// Accepts reports whether the output takes alert a. A job whose alert
	// it no longer accepts when the job is due is acknowledged unsent.
	Accepts(a *alert.Alert) bool
	// Send delivers ds in order and returns how many it delivered; when
	// that is fewer than len(ds), err says why ds[n] failed. The delivery
	// is retried with backoff unless err wraps [Permanent]; an error from
	// [RetryLater] sets the wait. Error texts must hold no secret.
	Send(ctx context.Context, ds []Delivery) (n int, err error)
}

// Delivery is a job of the outbox with its alert as stored when it is
// sent.
type Delivery struct {
	Job   store.Job
	Alert alert.Alert
}

// Permanent marks err as a failure that retrying would repeat: the
// delivery is dropped (and kept among the output's failures).
func Permanent(err error) error {
	return &sendError{msg: err.Error(), permanent: true, err: err}
}

// RetryLater marks err as a failure to retry after d (what the receiver
// asked for, such as Retry-After), rather than after the backoff.
func RetryLater(err error, d time.Duration) error {
	return &sendError{msg: err.Error(), retryAfter: d, err: err}
}

// extraSender runs an [Output] as a sender.
type extraSender struct{ o Output }

func (e extraSender) send(ctx context.Context, ds []delivery) (int, error) {
	out := make([]Delivery, len(ds))
	for i := range ds {
		out[i] = Delivery{Job: ds[i].job, Alert: ds[i].alert}
	}
	n, err := e.o.Send(ctx, out)
	if n < 0 || n > len(ds) || (n < len(ds) && err == nil) {
		return 0, fmt.Errorf("output %s: Send returned %d of %d deliveries (error %v)", e.o.Name(), n, len(ds), err)
	}
	var se *sendError
	if err != nil && !errors.As(err, &se) {
		err = &sendError{msg: err.Error(), err: err}
	}
	return n, err
}

func (extraSender) close() error { return nil }
