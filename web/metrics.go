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
	misdirected  prometheus.Counter // refused for their Host
	wsRefused    prometheus.Counter // websocket clients over the cap
	conns        prometheus.Gauge   // open connections of LimitListener
	connsRefused prometheus.Counter // answered 503 over MaxConnections
	connsEvicted prometheus.Counter // closed to make room
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
		misdirected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_http_misdirected_total",
			Help: "Requests refused with 421 because, without a dashboard token, their Host did not name this server.",
		}),
		wsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_websocket_refused_total",
			Help: "Websocket connections refused (503) over the --max-websocket-clients cap.",
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "raywatch_http_connections",
			Help: "Open HTTP connections (websockets included).",
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_http_connections_refused_total",
			Help: "Connections answered 503 because --max-connections were open and none was waiting on its client.",
		}),
		connsEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raywatch_http_connections_evicted_total",
			Help: "Connections closed at --max-connections to make room, the one waiting longest on its client first.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.batches, m.lines, m.bytes, m.rejected, m.unauthorized,
			m.misdirected, m.wsRefused, m.conns, m.connsRefused, m.connsEvicted,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "raywatch_websocket_clients",
				Help: "Connected websocket clients.",
			}, func() float64 { return float64(hub.Clients()) }))
	}
	return m
}
