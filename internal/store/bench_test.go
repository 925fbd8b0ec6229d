package store

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/connhost/connhost/abi"
)

// benchIncident is a typical fetched incident: about 1 KiB of JSON.
func benchIncident(i int) Incident {
	return Incident{
		Name: fmt.Sprintf("Suspicious login %d", i), Type: "Access", Severity: abi.SeverityMedium, Instance: "bench",
		Labels:       []abi.Label{{Type: "user", Value: "ann"}, {Type: "ip", Value: "10.0.0.1"}},
		RawJSON:      `{"id":"` + fmt.Sprint(i) + `","detail":"` + strings.Repeat("x", 600) + `"}`,
		CustomFields: map[string]any{"sourceip": "10.0.0.1", "score": 42.0},
		SourceID:     fmt.Sprint("src-", i),
	}
}

// benchModes runs fn on a fresh store with synchronous writes (the only
// production mode) and without them, to show what durability costs.
func benchModes(b *testing.B, fn func(b *testing.B, s *Store)) {
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"sync", false}, {"nosync", true}} {
		b.Run(mode.name, func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir(), Options{noSync: mode.noSync, GCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			fn(b, s)
		})
	}
}

func BenchmarkCreateIncidents(b *testing.B) {
	ctx := context.Background()
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchModes(b, func(b *testing.B, s *Store) {
				n := 0
				for b.Loop() {
					incs := make([]Incident, batch)
					for i := range incs {
						incs[i] = benchIncident(n)
						n++
					}
					if _, err := s.CreateIncidents(ctx, incs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "incidents/s")
			})
		})
	}
	// Concurrent single-incident transactions: badger commits them in
	// groups, so one fsync serves several callers.
	b.Run("batch=1/parallel", func(b *testing.B) {
		benchModes(b, func(b *testing.B, s *Store) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					inc := benchIncident(i)
					inc.SourceID = ""
					if _, err := s.CreateIncidents(ctx, []Incident{inc}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "incidents/s")
		})
	})
}

func BenchmarkAddEntries(b *testing.B) {
	ctx := context.Background()
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchModes(b, func(b *testing.B, s *Store) {
				incs, err := s.CreateIncidents(ctx, []Incident{{Name: "a"}, {Name: "b"}, {Name: "c"}})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for b.Loop() {
					ents := make([]Entry, batch)
					for i := range ents {
						ents[i] = Entry{
							IncidentID: incs[n%len(incs)].ID, Type: abi.EntryNote, Format: abi.FormatMarkdown,
							Contents: "Comment from remote: " + strings.Repeat("y", 200), Tags: []string{"comment"},
							Origin: OriginMirrorPrefix + "bench", ExternalID: fmt.Sprint("c-", n),
						}
						n++
					}
					if _, err := s.AddEntries(ctx, ents); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
			})
		})
	}
}

// BenchmarkGroupCommit creates one incident per call from 16 goroutines,
// the shape of webhook ingest, with group commit on and off: on, the calls
// share synced commits; off, each pays its own sync.
func BenchmarkGroupCommit(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []struct {
		name string
		off  bool
	}{{"on", false}, {"off", true}} {
		b.Run(mode.name, func(b *testing.B) {
			var commits atomic.Int64
			s, err := Open(ctx, b.TempDir(), Options{NoGroupCommit: mode.off, GCInterval: -1,
				onCommit: func(int) { commits.Add(1) }})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetParallelism(8) // 16 goroutines on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					inc := benchIncident(i)
					inc.SourceID = ""
					if _, err := s.CreateIncidents(ctx, []Incident{inc}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "incidents/s")
			b.ReportMetric(float64(b.N)/float64(max(commits.Load(), 1)), "calls/sync")
		})
	}
}
