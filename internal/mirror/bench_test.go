package mirror

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// seed creates n mirrored incidents r1..rn in batches, with remote
// counterparts that answer with one changed field.
func seed(b *testing.B, f *fixture, n int) {
	b.Helper()
	ctx := context.Background()
	for start := 1; start <= n; start += 1000 {
		var incs []store.Incident
		for i := start; i < start+1000 && i <= n; i++ {
			id := fmt.Sprintf("r%d", i)
			incs = append(incs, store.Incident{Name: "local " + id, Status: abi.StatusActive, Instance: "peer",
				DbotMirrorID: id, DbotMirrorInstance: "peer", DbotMirrorDirection: abi.MirrorBoth})
			f.conn.remote[id] = &remoteIncident{fields: map[string]any{"name": "remote " + id}, modified: f.clk.Now()}
		}
		if _, err := f.st.CreateIncidents(ctx, incs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIncomingAll is one incoming cycle over 10,000 mirrored incidents
// through get-remote-data (get-modified-remote-data not implemented), with
// a connector that answers at once. Target: ≤ 5 s per cycle.
func BenchmarkIncomingAll(b *testing.B) {
	f := newFixture(b, b.TempDir(), store.Settings{})
	seed(b, f, 10_000)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.clk.Advance(time.Minute)
		rep, err := f.engine.RunIncoming(ctx, "peer")
		if err != nil || rep.Synced != 10_000 {
			b.Fatalf("report %+v, %v", rep, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/cycle")
}

// BenchmarkIncomingModified is one cycle over 100,000 mirrored incidents of
// which 100 changed, found through get-modified-remote-data. Target:
// ≤ 0.5 s per cycle.
func BenchmarkIncomingModified(b *testing.B) {
	f := newFixture(b, b.TempDir(), store.Settings{})
	f.conn.modified = true
	seed(b, f, 100_000)
	ctx := context.Background()
	f.clk.Advance(time.Minute)
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil { // settle: the seed counts as modified
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f.clk.Advance(time.Minute)
		for j := 0; j < 100; j++ {
			r := f.conn.remote[fmt.Sprintf("r%d", 1+(i*100+j)*997%100_000)]
			r.fields["name"] = fmt.Sprintf("changed %d", i)
			r.modified = f.clk.Now()
		}
		f.clk.Advance(time.Second)
		b.StartTimer()
		rep, err := f.engine.RunIncoming(ctx, "peer")
		if err != nil || rep.Synced != 100 {
			b.Fatalf("report %+v, %v", rep, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/cycle")
}

// BenchmarkPushToApplied is the latency from Push to the remote change
// stored locally. Target: p50 ≤ 100 ms.
func BenchmarkPushToApplied(b *testing.B) {
	f := newFixture(b, b.TempDir(), store.Settings{})
	seed(b, f, 100)
	f.engine.now = time.Now
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.engine.Start(ctx)
	defer f.engine.Stop(context.Background())
	inc, err := f.st.IncidentByMirrorID(ctx, "peer", "r1")
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := fmt.Sprintf("push %d", i)
		f.conn.mu.Lock()
		f.conn.remote["r1"].fields["name"] = want
		f.conn.mu.Unlock()
		start := time.Now()
		if err := f.engine.Push(ctx, "peer", "r1"); err != nil {
			b.Fatal(err)
		}
		for {
			got, err := f.st.GetIncident(ctx, inc.ID)
			if err != nil {
				b.Fatal(err)
			}
			if got.Name == want {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
