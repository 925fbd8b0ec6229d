package api_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/testenv"
)

// TestThrottledKeyLeavesServerResponsive: one key hammering the API from
// eight connections for two seconds is throttled (429s, and no more
// admitted than its bucket allows) while /healthz, probed during the
// load, keeps its p99 under 100 ms. The server runs without the OpenAPI
// validator, which would measure itself.
func TestThrottledKeyLeavesServerResponsive(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: two seconds of traffic")
	}
	const (
		perSecond = 50
		burst     = 100
		workers   = 8
		duration  = 2 * time.Second
	)
	s := testenv.NewServer(t, testenv.ServerOptions{API: func(o *api.Options) { o.RateLimit, o.RateBurst = perSecond, burst }})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers + 1}, Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	get := func(ctx context.Context, path, key string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
		if err != nil {
			return 0, err
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				status, err := get(ctx, "/api/v1/plugins", s.Key)
				switch {
				case err != nil:
					if ctx.Err() == nil {
						other.Add(1)
					}
				case status == http.StatusOK:
					ok.Add(1)
				case status == http.StatusTooManyRequests:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	var lat []time.Duration
	var probeErrs int
	for ctx.Err() == nil {
		t0 := time.Now()
		status, err := get(context.Background(), "/healthz", "")
		if err != nil || status != http.StatusOK {
			probeErrs++
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	elapsed := time.Since(start)

	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	t.Logf("one key, %d connections, %v: %d admitted, %d answered 429 (%.0f requests/s); /healthz during the load: %d probes, p50 %v, p99 %v, max %v",
		workers, elapsed.Round(time.Millisecond), ok.Load(), limited.Load(), float64(ok.Load()+limited.Load())/elapsed.Seconds(),
		len(lat), p(0.50), p(0.99), lat[len(lat)-1])
	if other.Load() != 0 || probeErrs != 0 {
		t.Errorf("%d hammering requests and %d probes failed or had an unexpected status", other.Load(), probeErrs)
	}
	if limited.Load() == 0 {
		t.Errorf("no request was throttled")
	}
	// The bucket admits its burst plus perSecond for each second; a
	// little slack for the test's own timing.
	if maxOK := int64(burst + perSecond*elapsed.Seconds() + perSecond/5); ok.Load() > maxOK {
		t.Errorf("%d requests admitted in %v, want at most %d", ok.Load(), elapsed, maxOK)
	}
	if len(lat) < 50 {
		t.Fatalf("only %d /healthz probes ran", len(lat))
	}
	if p99 := p(0.99); p99 > 100*time.Millisecond {
		t.Errorf("/healthz p99 %v under load, want under 100 ms", p99)
	}
}
