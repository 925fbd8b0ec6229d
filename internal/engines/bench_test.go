package engines

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/connhost/connhost/host"
)

// BenchmarkEngineLatency compares one echo command run locally (a sandbox
// pool in this process) with the same command sent through the embedded
// NATS server to an engine on loopback, which runs it in its own pool. The
// difference of the p50 metrics is the latency an engine adds (goal
// p50 ≤ 1 ms on loopback).
func BenchmarkEngineLatency(b *testing.B) {
	f := newFixture(b)
	sp := f.spec(b, "bench", "dmz")
	args := json.RawMessage(`{"i":1}`)
	b.Run("local", func(b *testing.B) {
		p, err := f.rt.Load(b.Context(), f.wasm)
		if err != nil {
			b.Fatal(err)
		}
		inst, err := f.rt.NewInstance(b.Context(), p, host.InstanceSpec{Info: sp.Info, Services: f.be.svc})
		if err != nil {
			b.Fatal(err)
		}
		defer inst.Close(context.Background())
		measure(b, func() error { _, err := inst.Execute(b.Context(), "echo", args); return err })
	})
	f.engine(b, "b1", "dmz")
	b.Run("engine", func(b *testing.B) {
		measure(b, func() error { _, err := f.hub.Execute(b.Context(), "dmz", sp, "echo", args); return err })
	})
}

// BenchmarkEngineThroughput runs echo commands from parallel callers
// through one, then two engines of a group.
func BenchmarkEngineThroughput(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(map[int]string{1: "engines=1", 2: "engines=2"}[n], func(b *testing.B) {
			f := newFixture(b)
			sp := f.spec(b, "bench", "dmz")
			for i := range n {
				f.engine(b, []string{"t1", "t2"}[i], "dmz")
			}
			args := json.RawMessage(`{"i":1}`)
			warmAll(b, f, sp, args, n)
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := f.hub.Execute(context.Background(), "dmz", sp, "echo", args); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// warmAll sends commands until each of the n engines has answered one, so
// no engine compiles the plugin inside the measurement.
func warmAll(b *testing.B, f *fixture, sp Spec, args json.RawMessage, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := f.hub.Execute(b.Context(), "dmz", sp, "echo", args); err != nil {
			b.Fatal(err)
		}
		served := 0
		for _, e := range f.hub.Engines() {
			if e.Calls > 0 {
				served++
			}
		}
		if served == n {
			return
		}
	}
	b.Fatal("not every engine answered")
}

// measure runs call b.N times after a warm-up and reports the p50 and p99
// of the calls.
func measure(b *testing.B, call func() error) {
	for range 20 {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "p99-µs")
}
