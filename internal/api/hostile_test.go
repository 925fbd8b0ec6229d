package api_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
)

// TestMetricsBounded sends 10,000 odd requests, unauthenticated and with a
// key (made-up methods, paths, instance and command names), and checks that
// /metrics does not grow with them: every label value comes from a bounded
// set, so a client cannot grow the server's memory through the metrics.
func TestMetricsBounded(t *testing.T) {
	// Not newServer: validating 10,000 responses would double the run
	// time, and other tests hold the document to the same routes.
	s := testenv.NewServer(t, testenv.ServerOptions{})
	s.Install(plugin(t, "goecho"))
	s.CreateInstance("echo", "goecho", nil, store.Settings{})
	metrics := func() string {
		t.Helper()
		r := s.Do(http.MethodGet, "/metrics", nil, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /metrics: %s", r)
		}
		return string(r.Body)
	}
	fresh := len(metrics())
	odd := func(rng *rand.Rand, i int) *http.Request {
		word := fmt.Sprintf("zq%d", rng.Uint64())
		methods := []string{"GET", "POST", "DELETE", "PATCH", strings.ToUpper(word), "PROPFIND-" + word, word}
		method := methods[rng.IntN(len(methods))]
		var path, body string
		switch i % 6 {
		case 0:
			path = "/" + word + "/" + word
		case 1:
			path = "/api/v1/" + word
		case 2:
			path = "/api/v1/instances/" + word + "/execute"
			method, body = http.MethodPost, `{"command":"echo"}`
		case 3:
			path = "/api/v1/instances/echo/execute"
			method, body = http.MethodPost, `{"command":"`+word+`"}`
		case 4:
			path = "/instance/execute/" + word + "/" + word
		case 5:
			path = "/api/v1/instances/" + word + "/test"
			method = http.MethodPost
		}
		req, err := http.NewRequest(method, s.URL+path+"?"+word+"=1", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if rng.IntN(2) == 0 {
			req.Header.Set("Authorization", "Bearer "+s.Key)
			req.Header.Set("Content-Type", "application/json")
		}
		return req
	}
	send := func(n int, seed uint64) {
		var wg sync.WaitGroup
		const workers = 8
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(w)))
				for i := w; i < n; i += workers {
					res, err := s.HTTP.Client().Do(odd(rng, i))
					if err != nil {
						t.Error(err)
						return
					}
					if res.StatusCode >= 500 {
						t.Errorf("%s %s: %d", res.Request.Method, res.Request.URL.Path, res.StatusCode)
					}
					res.Body.Close()
				}
			})
		}
		wg.Wait()
	}
	// A first round makes the bounded series (each route's 401, 404, 405,
	// the "other" method, ...) appear.
	send(600, 1)
	before := len(metrics())
	send(10_000, 2)
	after := metrics()
	t.Logf("/metrics: %d bytes fresh, %d after 600 odd requests, %d after 10,000 more", fresh, before, len(after))
	// Counters gain digits and the runtime's own metrics move a little.
	if grown := len(after) - before; grown > 4096 {
		t.Errorf("/metrics grew by %d bytes over 10,000 odd requests", grown)
	}
	if strings.Contains(after, "zq") || strings.Contains(after, "PROPFIND") {
		t.Errorf("a made-up name became a label value")
	}
}
