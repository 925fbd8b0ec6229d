package api_test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/internal/api"
)

// benchRequests sends the same request b.N times over loopback HTTP with
// keep-alive and reports p50 and p99 latency.
func benchRequests(b *testing.B, e *env, method, path string, body []byte, want int) {
	b.Helper()
	client := e.http.Client()
	send := func() {
		req, err := http.NewRequest(method, e.http.URL+path, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.key)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			b.Fatalf("%s %s: status %d", method, path, res.StatusCode)
		}
	}
	send() // warm the connection and the sandbox pool
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		send()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func quiet(o *api.Options) { o.Logger = zerolog.Nop() }

// BenchmarkExecuteHTTP measures POST /instances/{name}/execute of the
// goecho plugin's echo command: auth, strict decode, a warm sandbox call and
// the JSON response, over loopback.
func BenchmarkExecuteHTTP(b *testing.B) {
	e := newEnv(b, quiet)
	e.install("goecho")
	e.must(http.StatusCreated, "POST", "/api/v1/instances", map[string]any{"name": "echo", "plugin": "goecho", "enabled": true})
	benchRequests(b, e, "POST", "/api/v1/instances/echo/execute", []byte(`{"command":"echo"}`), http.StatusOK)
}

// BenchmarkCreateIncidentHTTP measures POST /incidents: a synchronous
// badger write per request.
func BenchmarkCreateIncidentHTTP(b *testing.B) {
	e := newEnv(b, quiet)
	benchRequests(b, e, "POST", "/api/v1/incidents", []byte(`{"name":"Phishing report","severity":2,"type":"Phishing"}`), http.StatusCreated)
}
