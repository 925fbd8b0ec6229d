package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// clock is the peer server's settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// peer is a real connhost server (store, runtime, service, HTTP API) on
// loopback: the tenant the connector talks to. A switch in front of it
// answers 429, as a throttling proxy would.
type peer struct {
	url     string
	key     string
	st      *store.Store
	svc     *service.Service
	clock   *clock
	t0      time.Time // an hour ago, inside first_fetch
	limited atomic.Bool
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	p := &peer{t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)}
	p.clock = &clock{t: p.t0}
	s := testenv.NewServer(t, testenv.ServerOptions{
		Now:     p.clock.now,
		KeyName: "tenant-a",
		Wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if p.limited.Load() {
					w.Header().Set("Retry-After", "7")
					http.Error(w, `{"error":"too many requests"}`, http.StatusTooManyRequests)
					return
				}
				h.ServeHTTP(w, r)
			})
		},
	})
	p.url, p.key, p.st, p.svc = s.URL, s.Key, s.Store, s.Service
	return p
}

func (p *peer) params(extra map[string]any) map[string]any {
	m := map[string]any{
		"url": p.url, "api_key": p.key, "first_fetch": "3 days", "max_fetch": float64(50),
		"mirror_direction": "Incoming And Outgoing", "mirror_tags": "comment, note",
		"close_incident": true, "close_out": true,
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// host runs the connector natively and checks, when the test ends, that
// the API key never reached the logs.
func (p *peer) host(t *testing.T, extra map[string]any) *sdktest.Host {
	t.Helper()
	h := sdktest.New(connector, p.params(extra))
	h.Instance = abi.InstanceInfo{ID: "i-1", Name: "peer-b", Brand: peerPlugin}
	t.Cleanup(func() {
		for _, l := range h.Logs() {
			if strings.Contains(l.Message, p.key) {
				t.Errorf("API key logged: %q", l.Message)
			}
		}
	})
	return h
}

// incident creates a peer incident through the service, as the API would.
func (p *peer) incident(t *testing.T, in service.IncidentInput) store.Incident {
	t.Helper()
	inc, err := p.svc.Incidents.Create(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

func ptr[T any](v T) *T { return &v }
