package main

import (
	"testing"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/config"
)

// TestRuntimeConfigDefaults holds the configuration's documented defaults
// to the host's own, so that neither drifts from the other.
func TestRuntimeConfigDefaults(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	cfg, err := config.Load(fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := runtimeConfig(cfg, zerolog.Nop())
	want := host.DefaultModuleLimits()
	want.MemoryBytes = 0 // the runtime takes it from Limits.MemoryBytes
	if rc.Module != want {
		t.Errorf("module limits %+v, want the host's defaults %+v", rc.Module, want)
	}
	if rc.StackBytes != host.DefaultStackBytes || rc.CompileTimeout != host.DefaultCompileTimeout {
		t.Errorf("stack %d, compile timeout %v; want the host's defaults", rc.StackBytes, rc.CompileTimeout)
	}
	l := rc.Limits
	if l.MemoryBytes != host.DefaultMemoryBytes || l.CallTimeout != host.DefaultCallTimeout || l.OutputBytes != host.DefaultOutputBytes ||
		l.LogBytes != host.DefaultLogBytes || l.LogRecords != host.DefaultLogRecords || l.PoolSize != host.DefaultPoolSize ||
		l.LogRecordsPerMinute != host.DefaultLogRecordsPerMinute || l.LogBytesPerMinute != host.DefaultLogBytesPerMinute {
		t.Errorf("limits %+v differ from the host's defaults", l)
	}
}
