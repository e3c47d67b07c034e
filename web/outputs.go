package web

import "time"

// OutputsReport is GET /api/v1/outputs: the notification outputs
// (Alertmanager, webhooks, syslog) and their queues in the outbox.
type OutputsReport struct {
	Outputs []OutputStatus `json:"outputs"`
}

// OutputStatus is the state of one output. The program that fills it
// must keep secrets out: Target without credentials or path, LastError
// without URLs.
type OutputStatus struct {
	// Name is the output's name ("alertmanager-1", "webhook-2",
	// "syslog"), Type its kind and Target where it sends.
	Name     string `json:"name"`
	Type     string `json:"type"`
	Target   string `json:"target"`
	MinLevel string `json:"min_level"`
	// State is "idle" (nothing sent since start), "ok" or "retrying".
	State string `json:"state"`
	// Queue is the number of deliveries waiting, Oldest when the oldest
	// of them was queued.
	Queue  int64     `json:"queue"`
	Oldest time.Time `json:"oldest,omitzero"`
	// Dropped counts deliveries dropped because the outbox was full and
	// Failed those refused for good, since the store was created;
	// Delivered and Retried count since raywatch started.
	Dropped   int64 `json:"dropped"`
	Failed    int64 `json:"failed"`
	Delivered int64 `json:"delivered"`
	Retried   int64 `json:"retried"`
	// Active is, for Alertmanager, the alerts kept firing by re-sends.
	Active      int       `json:"active,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// NextAttempt is, while retrying, when the output is tried again.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}
