package service_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
)

// BenchmarkScaleInstances starts a service over 1, 100 and 1,000 enabled
// goecho instances (as a restart does) with the production pool settings
// (limits.pool_idle on) and reports:
//
//   - start-ms: service.New until every instance has started (the server's
//     start to /readyz, less opening the store and the runtime);
//   - idle-KiB/inst: the process's RSS growth per idle instance after start;
//   - warm-KiB/module: RSS growth per module instance once up to 100 of
//     them served a call;
//   - reaped-KiB/inst: RSS growth per instance once the pools idled out again;
//   - rss-MiB: the process's whole RSS then.
//
// The first sub-benchmark also pays for compiling the plugin. It takes a
// minute or so and gigabytes at most briefly, so it runs only
// with CONNHOST_SCALE=1:
//
//	CONNHOST_SCALE=1 go test ./internal/service -run '^$' -bench BenchmarkScaleInstances -benchtime 1x
func BenchmarkScaleInstances(b *testing.B) {
	if os.Getenv("CONNHOST_SCALE") == "" {
		b.Skip("set CONNHOST_SCALE=1 to run the instance scaling benchmark")
	}
	wasm := echo(b, "1.0.0")
	for _, tc := range []struct {
		n    int
		idle time.Duration
	}{
		{1, 5 * time.Second}, {100, 5 * time.Second}, {1000, 5 * time.Second},
		// Pools that never idle out start warm, one module instance each:
		// the behaviour before limits.pool_idle, for comparison.
		{100, 0},
	} {
		b.Run(fmt.Sprintf("pool_idle=%v/instances=%d", tc.idle, tc.n), func(b *testing.B) { scaleInstances(b, wasm, tc.n, tc.idle) })
	}
}

func scaleInstances(b *testing.B, wasm []byte, n int, poolIdle time.Duration) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "db"), store.Options{GCInterval: -1, Tune: testenv.SmallTables})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	box, err := secrets.New([]byte(rand.Text() + rand.Text())[:secrets.KeySize])
	if err != nil {
		b.Fatal(err)
	}
	opts := service.Options{Store: st, Runtime: rt, Secrets: box, Logger: zerolog.Nop(),
		Limits: host.Limits{PoolIdle: poolIdle}, LongRunning: service.LongRunningOptions{ChatInterval: time.Hour}}
	svc, err := service.New(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Plugins.Install(ctx, service.InstallRequest{Wasm: wasm, By: "bench"}); err != nil {
		b.Fatal(err)
	}
	if err := svc.Close(ctx); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := st.CreateInstance(ctx, store.Instance{Name: fmt.Sprint("echo", i), Plugin: "goecho", Enabled: true}); err != nil {
			b.Fatal(err)
		}
	}
	var start time.Duration
	base := settledRSS(b)
	for b.Loop() {
		if svc != nil {
			_ = svc.Close(ctx)
		}
		t0 := time.Now()
		if svc, err = service.New(ctx, opts); err != nil {
			b.Fatal(err)
		}
		start = time.Since(t0)
	}
	defer svc.Close(ctx)
	idle := settledRSS(b)
	called := min(n, 100)
	for i := range called {
		if _, err := svc.Commands.Execute(ctx, fmt.Sprint("echo", i), service.ExecuteRequest{Command: "echo"}); err != nil {
			b.Fatal(err)
		}
	}
	warm := settledRSS(b)
	time.Sleep(poolIdle + poolIdle/2)
	reaped := settledRSS(b)
	b.ReportMetric(float64(reaped)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(start.Milliseconds()), "start-ms")
	b.ReportMetric(float64(idle-base)/float64(n)/1024, "idle-KiB/inst")
	b.ReportMetric(float64(warm-idle)/float64(called)/1024, "warm-KiB/module")
	b.ReportMetric(float64(reaped-base)/float64(n)/1024, "reaped-KiB/inst")
}

// settledRSS returns the process's resident set size in bytes after a
// collection has returned free memory to the OS.
func settledRSS(b *testing.B) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := bytes.Fields(sc.Bytes()); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
