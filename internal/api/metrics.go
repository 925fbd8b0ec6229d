package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/connhost/connhost/abi"
)

// NewRegistry returns a Prometheus registry with the Go runtime and
// process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	commands *prometheus.CounterVec
	cmdTime  *prometheus.HistogramVec
}

func newMetrics(r *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connhost_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "connhost_http_request_duration_seconds", Help: "HTTP request durations by method, route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route", "status"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connhost_command_executions_total", Help: "Command calls by instance, command, trigger (api, fetch, mirror_in, mirror_out, long_running, http) and outcome (ok, rejected or the ABI error kind).",
		}, []string{"instance", "command", "trigger", "outcome"}),
		cmdTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "connhost_command_duration_seconds", Help: "Durations of command calls by instance, command and trigger.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"instance", "command", "trigger"}),
	}
	r.MustRegister(m.requests, m.duration, m.commands, m.cmdTime)
	return m
}

// command counts one command call (a service.CommandObserver, which
// reports names a client made up as service.UnknownLabel, so requests
// cannot grow /metrics). Errors that are not the plugin's (an unknown
// instance, bad arguments) count as outcome "rejected".
func (m *metrics) command(instance, command, trigger string, err error, d time.Duration) {
	outcome := "ok"
	if err != nil {
		outcome = "rejected"
		if status, body := classify(err); body.Kind != "" {
			outcome = string(body.Kind)
		} else if status >= http.StatusInternalServerError {
			outcome = string(abi.KindInternalError)
		}
	}
	m.commands.WithLabelValues(instance, command, trigger, outcome).Inc()
	m.cmdTime.WithLabelValues(instance, command, trigger).Observe(d.Seconds())
}

// observe logs and counts every request once its status is known. It logs
// method, route, status and duration: never bodies, query values or
// headers, so neither secrets in bodies nor the Authorization header reach
// the log.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			// Render now so the status is final; echo skips its handler for
			// a committed response.
			c.Error(err)
		}
		d := time.Since(start)
		route := c.Path()
		if !s.routeSet[route] {
			route = "unmatched"
		}
		method := normMethod(c.Request().Method)
		status := c.Response().Status
		code := statusLabel(status)
		s.metrics.requests.WithLabelValues(method, route, code).Inc()
		s.metrics.duration.WithLabelValues(method, route, code).Observe(d.Seconds())
		ev := s.log.Info()
		if status >= http.StatusInternalServerError {
			ev = s.log.Warn()
		}
		ev = ev.Str("method", c.Request().Method).Str("route", route).Int("status", status).
			Dur("duration_ms", d).Str("remote", c.RealIP())
		if k := keyName(c); k != "" {
			ev = ev.Str("apikey", k)
		}
		ev.Msg("request")
		return nil
	}
}

// normMethod returns m if it is a standard HTTP method, else "other": any
// token is a valid method, and each would otherwise be a new series.
func normMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// statusLabel is the status code as text if net/http knows it, else its
// class ("5xx"): a plugin behind /instance/execute picks any status from 100
// to 999.
func statusLabel(status int) string {
	if http.StatusText(status) != "" {
		return strconv.Itoa(status)
	}
	return strconv.Itoa(status/100) + "xx"
}
