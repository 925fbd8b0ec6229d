package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/api"
	"github.com/connhost/connhost/host/secrets"
	"github.com/connhost/connhost/host/service"
	"github.com/connhost/connhost/sdk-guest/sdktest"
	"github.com/connhost/connhost/store"
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

// wazeroCache speeds up compiling the plugin across test runs.
var wazeroCache = filepath.Join(os.TempDir(), "connhost-test-wazero-cache")

func newPeer(t *testing.T) *peer {
	t.Helper()
	ctx := context.Background()
	p := &peer{t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)}
	p.clock = &clock{t: p.t0}
	st, err := store.Open(ctx, t.TempDir(), store.Options{Now: p.clock.now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: wazeroCache, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(ctx, service.Options{Store: st, Runtime: rt, Secrets: box, Logger: zerolog.Nop(), Now: p.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	p.key, _, err = svc.CreateAPIKey(ctx, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(svc, api.Options{Logger: zerolog.Nop()}).Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.limited.Load() {
			w.Header().Set("Retry-After", "7")
			http.Error(w, `{"error":"too many requests"}`, http.StatusTooManyRequests)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		ts.Close()
		_ = svc.Close(ctx)
		_ = rt.Close(ctx)
		_ = st.Close()
	})
	p.url, p.st, p.svc = ts.URL, st, svc
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
	inc, err := p.svc.CreateIncident(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

func ptr[T any](v T) *T { return &v }
