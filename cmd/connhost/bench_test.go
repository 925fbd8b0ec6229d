package main

import (
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

// BenchmarkRunTestModule measures the author's inner loop: one `connhost run
// PLUGIN test-module` process, start to exit, with a warm compilation cache
// (the first, cold run is excluded by a warm-up).
func BenchmarkRunTestModule(b *testing.B) {
	srv := httptest.NewServer(tdserver.New("bench-key"))
	defer srv.Close()
	tests := []struct {
		name string
		args []string
	}{
		{"wat-echo", []string{"run", echoWasm, "test-module", "--param", "token=x"}},
		{"go-ticketdesk", []string{"run", tdWasm, "test-module", "--param", "url=" + srv.URL, "--param", "api_key=bench-key"}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			if tdBuildEr != nil && tt.name == "go-ticketdesk" {
				b.Fatal(tdBuildEr)
			}
			run := func() {
				cmd := exec.Command(binary, tt.args...)
				cmd.Dir = b.TempDir()
				cmd.Env = []string{"CONNHOST_CACHE_DIR=" + cacheDir, "CONNHOST_LOG_LEVEL=warn"}
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
			}
			run() // fill the compilation cache
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				run()
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/run")
		})
	}
}
