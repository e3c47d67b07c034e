package notify

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the per-output metrics. Outputs appear by name
// ("webhook-1"), never by URL.
type metrics struct {
	delivered, failed, retried *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, d *Dispatcher) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_output_delivered_total",
			Help: "Alert deliveries an output accepted, by output.",
		}, []string{"output"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_output_failed_total",
			Help: "Alert deliveries an output refused for good (HTTP 4xx other than 408 and 429), by output.",
		}, []string{"output"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raywatch_output_retried_total",
			Help: "Failed delivery attempts to be retried (network errors, HTTP 408, 429 and 5xx), by output.",
		}, []string{"output"}),
	}
	for _, r := range d.runners { // every output shows, at zero
		m.delivered.WithLabelValues(r.name)
		m.failed.WithLabelValues(r.name)
		m.retried.WithLabelValues(r.name)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.delivered, m.failed, m.retried, &queueCollector{d: d}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// queueCollector reads the outbox's figures at each scrape.
type queueCollector struct {
	d *Dispatcher
}

var (
	queueDesc = prometheus.NewDesc("raywatch_output_queue",
		"Alert deliveries waiting in the outbox, by output.", []string{"output"}, nil)
	oldestDesc = prometheus.NewDesc("raywatch_output_oldest_undelivered_seconds",
		"Age of the oldest delivery waiting in the outbox (0 when none), by output.", []string{"output"}, nil)
	droppedDesc = prometheus.NewDesc("raywatch_output_dropped_total",
		"Deliveries dropped because the outbox was full (--outbox-max), by output.", []string{"output"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- oldestDesc
	ch <- droppedDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, r := range c.d.runners {
		st, err := c.d.outbox.Stats(r.name)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(queueDesc, err)
			continue
		}
		age := 0.0
		if !st.Oldest.IsZero() {
			age = max(0, now.Sub(st.Oldest).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(st.Queued), r.name)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, r.name)
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(st.Dropped), r.name)
	}
}
