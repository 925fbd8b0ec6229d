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
			Name: "connhost_command_executions_total", Help: "Commands run through the API by instance, command and outcome (ok or the ABI error kind).",
		}, []string{"instance", "command", "outcome"}),
		cmdTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "connhost_command_duration_seconds", Help: "Durations of commands run through the API by instance and command.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"instance", "command"}),
	}
	r.MustRegister(m.requests, m.duration, m.commands, m.cmdTime)
	return m
}

// unknownLabel stands for an instance or command name a client made up:
// label values come only from bounded sets (routes, running instances and
// the commands their plugins serve), so requests cannot grow /metrics.
const unknownLabel = "unknown"

// command counts one command run. Errors that are not the plugin's (an
// unknown instance, bad arguments) count as outcome "rejected". served says
// whether instance is running and its plugin serves command; if not, both
// are counted as unknownLabel.
func (m *metrics) command(instance, command string, served bool, err error, d time.Duration) {
	if !served {
		instance, command = unknownLabel, unknownLabel
	}
	outcome := "ok"
	if err != nil {
		outcome = "rejected"
		if status, body := classify(err); body.Kind != "" {
			outcome = string(body.Kind)
		} else if status >= http.StatusInternalServerError {
			outcome = string(abi.KindInternalError)
		}
	}
	m.commands.WithLabelValues(instance, command, outcome).Inc()
	m.cmdTime.WithLabelValues(instance, command).Observe(d.Seconds())
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
		ev = ev.Str("method", method).Str("route", route).Int("status", status).
			Dur("duration", d).Str("remote", c.RealIP())
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
