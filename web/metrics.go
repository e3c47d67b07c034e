package web

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the intake's and the API's Prometheus metrics. They never
// carry a key or a token: intakes appear by name.
type metrics struct {
	batches      *prometheus.CounterVec // by intake and result
	lines        *prometheus.CounterVec // by intake
	bytes        *prometheus.CounterVec // by intake, as sent
	rejected     *prometheus.CounterVec // by reason
	unauthorized prometheus.Counter
}

// newMetrics registers the web metrics on reg (unregistered when reg is
// nil).
func newMetrics(reg *prometheus.Registry, hub *Hub) *metrics {
	m := &metrics{
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_intake_batches_total",
			Help: "Batches answered 2xx by the intake, by intake and result (accepted, duplicate, validation, empty).",
		}, []string{"intake", "result"}),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_intake_records_total",
			Help: "Records (NDJSON lines) in the batches accepted by the intake.",
		}, []string{"intake"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_intake_bytes_total",
			Help: "Bytes of the batches accepted by the intake, as sent.",
		}, []string{"intake"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_intake_rejected_batches_total",
			Help: "Batches refused by the intake, by reason.",
		}, []string{"reason"}),
		unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_api_unauthorized_total",
			Help: "API, websocket and login requests refused for a missing or wrong dashboard token.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.batches, m.lines, m.bytes, m.rejected, m.unauthorized,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "raywatch_websocket_clients",
				Help: "Connected websocket clients.",
			}, func() float64 { return float64(hub.Clients()) }))
	}
	return m
}
