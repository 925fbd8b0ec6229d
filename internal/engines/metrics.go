package engines

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the engines, read from the hub at scrape time. Labels are
// the enrolled engines' names and groups, which only an admin creates, so
// their number stays bounded.
var (
	descConnected = prometheus.NewDesc("connhost_engines_connected",
		"Engines of a group whose heartbeat arrived within the heartbeat timeout.", []string{"group"}, nil)
	descCalls = prometheus.NewDesc("connhost_engine_calls_total",
		"Commands an engine answered since the server started.", []string{"engine", "group"}, nil)
	descFailures = prometheus.NewDesc("connhost_engine_call_failures_total",
		"Commands an engine answered with an error since the server started.", []string{"engine", "group"}, nil)
	descInFlight = prometheus.NewDesc("connhost_engine_calls_in_flight",
		"Commands an engine was running at its last heartbeat.", []string{"engine", "group"}, nil)
	descLeases = prometheus.NewDesc("connhost_engine_long_running",
		"Long-running executions an engine runs under a lease.", []string{"engine", "group"}, nil)
)

// Collector returns the hub's metrics for a Prometheus registry.
func (h *Hub) Collector() prometheus.Collector { return collector{h} }

type collector struct{ h *Hub }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descCalls, descFailures, descInFlight, descLeases} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	connected := map[string]float64{}
	for _, e := range c.h.Engines() {
		if _, ok := connected[e.Group]; !ok {
			connected[e.Group] = 0
		}
		if e.Connected {
			connected[e.Group]++
		}
		ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(e.Calls), e.Name, e.Group)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(e.Failures), e.Name, e.Group)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(e.InFlight), e.Name, e.Group)
		ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(len(e.LongRunning)), e.Name, e.Group)
	}
	for g, n := range connected {
		ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, n, g)
	}
}
