package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// load parses args into a fresh flag set and loads the configuration with
// the given environment.
func load(t *testing.T, args []string, environ ...string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return Load(fs, environ)
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "connhost.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Log:      Log{Level: "info", Format: "console"},
		DataDir:  "./data",
		Listen:   "127.0.0.1:8080",
		CacheDir: filepath.Join("data", "cache", "wazero"),
		Store:    Store{MinFreeMiB: 448, GroupCommit: true},
		Limits: Limits{MemoryMiB: 128, CallTimeout: 30 * time.Second, OutputBytes: 4 << 20, PoolSize: 4, PoolIdle: 5 * time.Minute,
			LogBytes: 64 << 10, LogRecords: 1000, LogRecordsPerMinute: 10000, LogBytesPerMinute: 1 << 20,
			StackKiB: 1024, CompileTimeout: 2 * time.Minute, Module: ModuleLimits{
				Bytes: 32 << 20, Types: 10000, Imports: 1000, Functions: 50000, FunctionBodyBytes: 1 << 20,
				CodeBytes: 24 << 20, Locals: 10000, BlockDepth: 10000, Labels: 8192, Globals: 1000, Tables: 4,
				TableElements: 100000, Exports: 1000, ElementSegments: 10000, ElementEntries: 200000,
				DataSegments: 200000, DataBytes: 24 << 20, CustomSections: 64, CustomBytes: 8 << 20, NameBytes: 1024,
			}},
		Server: Server{MaxBodyBytes: 1 << 20, MaxPluginBytes: 64 << 20, ShutdownTimeout: 30 * time.Second,
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute,
			MaxInFlightPerClient: 64, TrustedProxies: []string{}},
		LongRunning: LongRunning{HTTPMaxBodyBytes: 1 << 20, HTTPTimeout: 30 * time.Second, HTTPConcurrency: 64},
		API:         API{RateLimit: 50, RateBurst: 100},
		Secrets:     Secrets{KeyFile: filepath.Join("data", "secret.key")},
		Metrics:     Metrics{Auth: MetricsAuthAuto},
		Mirror:      Mirror{JobEnable: true, JobDelay: 1, Concurrency: 8},
		Signing:     Signing{TrustedKeys: []string{}},
		Engines:     Engines{Listen: "127.0.0.1:4222", StoreDir: filepath.Join("data", "engines"), Replicas: 1},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", *c, want)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "log:\n  level: warn\n  format: json\nlimits:\n  memory_mib: 64\n  call_timeout: 5s\ndata_dir: /srv/file\n")
	tests := []struct {
		name    string
		args    []string
		environ []string
		check   func(*Config) string
	}{
		{
			name:    "file over default",
			args:    []string{"--config", file},
			environ: nil,
			check: func(c *Config) string {
				if c.Log.Level != "warn" || c.Log.Format != "json" || c.Limits.MemoryMiB != 64 || c.Limits.CallTimeout != 5*time.Second {
					return "file values not applied"
				}
				if c.Listen != "127.0.0.1:8080" {
					return "default listen lost"
				}
				return ""
			},
		},
		{
			name:    "env over file",
			args:    []string{"--config", file},
			environ: []string{"CONNHOST_LOG_LEVEL=debug", "CONNHOST_LIMITS_MEMORY_MIB=32", "PATH=/bin"},
			check: func(c *Config) string {
				if c.Log.Level != "debug" || c.Limits.MemoryMiB != 32 {
					return "env did not override file"
				}
				if c.Log.Format != "json" {
					return "file value not kept where env is silent"
				}
				return ""
			},
		},
		{
			name:    "flag over env",
			args:    []string{"--config", file, "--log-level", "error", "--limits-call-timeout", "250ms"},
			environ: []string{"CONNHOST_LOG_LEVEL=debug", "CONNHOST_LIMITS_CALL_TIMEOUT=9s"},
			check: func(c *Config) string {
				if c.Log.Level != "error" || c.Limits.CallTimeout != 250*time.Millisecond {
					return "flag did not override env"
				}
				if c.Limits.MemoryMiB != 64 {
					return "file value lost under unset flag"
				}
				return ""
			},
		},
		{
			name:    "secret key variable is not an unknown variable",
			environ: []string{EnvSecretKey + "=00"},
			check: func(c *Config) string {
				if c.Secrets.KeyFile != filepath.Join("data", "secret.key") {
					return "key file " + c.Secrets.KeyFile
				}
				return ""
			},
		},
		{
			name:    "config file from env",
			environ: []string{"CONNHOST_CONFIG=" + file},
			check: func(c *Config) string {
				if c.Log.Level != "warn" {
					return "CONNHOST_CONFIG not read"
				}
				return ""
			},
		},
		{
			name: "cache dir derived from final data dir",
			args: []string{"--data-dir", "/srv/flag"},
			check: func(c *Config) string {
				if c.CacheDir != filepath.Join("/srv/flag", "cache", "wazero") {
					return "cache dir " + c.CacheDir
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.args, tt.environ...)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(c); msg != "" {
				t.Fatalf("%s: %+v", msg, *c)
			}
		})
	}
}

// TestTrustedKeysList checks the list option from each source.
func TestTrustedKeysList(t *testing.T) {
	file := writeFile(t, "signing:\n  trusted_keys: [a.pub, RWQbase64]\n  require_signed: true\n")
	tests := []struct {
		name    string
		args    []string
		environ []string
		want    []string
	}{
		{"file", []string{"--config", file}, nil, []string{"a.pub", "RWQbase64"}},
		{"env", nil, []string{"CONNHOST_SIGNING_TRUSTED_KEYS=x.pub, y.pub"}, []string{"x.pub", "y.pub"}},
		{"flag", []string{"--signing-trusted-keys", "f.pub", "--signing-trusted-keys", "g.pub"}, nil, []string{"f.pub", "g.pub"}},
		{"flag over file", []string{"--config", file, "--signing-trusted-keys", "f.pub"}, nil, []string{"f.pub"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.args, tt.environ...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Signing.TrustedKeys, tt.want) {
				t.Errorf("trusted_keys = %q, want %q", c.Signing.TrustedKeys, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		args    []string
		environ []string
		want    []string // substrings of the error
	}{
		{name: "bad level from env", environ: []string{"CONNHOST_LOG_LEVEL=verbose"},
			want: []string{"log.level", `"verbose"`, "env CONNHOST_LOG_LEVEL"}},
		{name: "bad format from flag", args: []string{"--log-format", "xml"},
			want: []string{"log.format", "flag --log-format"}},
		{name: "not an integer", environ: []string{"CONNHOST_LIMITS_POOL_SIZE=many"},
			want: []string{"limits.pool_size", `"many" is not an integer`}},
		{name: "not a duration", file: "limits:\n  call_timeout: soon\n",
			want: []string{"limits.call_timeout", "not a duration", "config file"}},
		{name: "out of range", args: []string{"--limits-memory-mib", "0", "--limits-pool-size", "0"},
			want: []string{"limits.memory_mib", "limits.pool_size"}},
		{name: "pool idle too short", environ: []string{"CONNHOST_LIMITS_POOL_IDLE=10ms"},
			want: []string{"limits.pool_idle", "want 0 (never) or 1s-24h", "env CONNHOST_LIMITS_POOL_IDLE"}},
		{name: "no store reserve", environ: []string{"CONNHOST_STORE_MIN_FREE_MIB=0"},
			want: []string{"store.min_free_mib", "want 1-1048576", "env CONNHOST_STORE_MIN_FREE_MIB"}},
		{name: "bad listen", environ: []string{"CONNHOST_LISTEN=localhost"},
			want: []string{"listen", "host:port"}},
		{name: "cache inside plugins", args: []string{"--data-dir", "/srv", "--cache-dir", "/srv/plugins/cache"},
			want: []string{"cache_dir", "inside the plugins directory"}},
		{name: "bad metrics auth", environ: []string{"CONNHOST_METRICS_AUTH=never"},
			want: []string{"metrics.auth", `"never"`, "auto, open, apikey"}},
		{name: "tiny body limit", args: []string{"--server-max-body-bytes", "10"},
			want: []string{"server.max_body_bytes", "flag --server-max-body-bytes"}},
		{name: "long-running limits out of range", args: []string{"--long-running-http-max-body-bytes", "10", "--long-running-http-concurrency", "0"},
			file: "long_running:\n  http_timeout: 1ms\n",
			want: []string{"long_running.http_max_body_bytes", "flag --long-running-http-max-body-bytes",
				"long_running.http_concurrency", "long_running.http_timeout", "config file"}},
		{name: "negative rate limit", environ: []string{"CONNHOST_API_RATE_LIMIT=-1"},
			want: []string{"api.rate_limit", "-1", "0 (off)", "env CONNHOST_API_RATE_LIMIT"}},
		{name: "no burst with a rate limit", args: []string{"--api-rate-burst", "0"},
			want: []string{"api.rate_burst", "flag --api-rate-burst"}},
		{name: "negative shutdown timeout", file: "server:\n  shutdown_timeout: -1s\n",
			want: []string{"server.shutdown_timeout", "config file"}},
		{name: "no header timeout", file: "server:\n  read_header_timeout: 0s\n",
			want: []string{"server.read_header_timeout", "want 1s to 10m"}},
		{name: "read timeout below the header timeout", args: []string{"--server-read-header-timeout", "30s", "--server-read-timeout", "20s"},
			want: []string{"server.read_timeout", "want server.read_header_timeout (30s) to 1h"}},
		{name: "idle timeout", environ: []string{"CONNHOST_SERVER_IDLE_TIMEOUT=2h"},
			want: []string{"server.idle_timeout", "want 1s to 1h"}},
		{name: "no in-flight requests", args: []string{"--server-max-in-flight-per-client", "0"},
			want: []string{"server.max_in_flight_per_client", "want 1-100000"}},
		{name: "bad trusted proxy", environ: []string{"CONNHOST_SERVER_TRUSTED_PROXIES=10.0.0.1,proxy.example,10.0.0.1/8"},
			want: []string{"server.trusted_proxies", `"proxy.example"`, `"10.0.0.1/8"`, "host bits set: want 10.0.0.0/8"}},
		{name: "engines on a public address without TLS", args: []string{"--engines-enable", "--engines-listen", "0.0.0.0:4222"},
			want: []string{"engines.listen", "not a loopback address", "engines.tls_cert", "flag --engines-listen"}},
		{name: "engines cert without key", environ: []string{"CONNHOST_ENGINES_TLS_CERT=/etc/cert.pem"},
			want: []string{"engines.tls_cert", "go together"}},
		{name: "engines unreadable cert", args: []string{"--engines-enable", "--engines-tls-cert", "/nonexistent/c.pem", "--engines-tls-key", "/nonexistent/k.pem"},
			want: []string{"engines.tls_cert", "/nonexistent/c.pem"}},
		{name: "engines bad listen", environ: []string{"CONNHOST_ENGINES_LISTEN=4222"},
			want: []string{"engines.listen", "host:port"}},
		{name: "external cluster without a seed", args: []string{"--engines-enable", "--engines-nats-url", "nats://10.0.0.1:4222"},
			want: []string{"engines.nats_seed_file", "required with engines.nats_url"}},
		{name: "external cluster seed not a seed", args: []string{"--engines-enable", "--engines-nats-url", "nats://10.0.0.1:4222", "--engines-nats-seed-file", "config_test.go"},
			want: []string{"engines.nats_seed_file", "no NKey user seed"}},
		{name: "engines replicas", environ: []string{"CONNHOST_ENGINES_REPLICAS=7"},
			want: []string{"engines.replicas", "want 1-5"}},
		{name: "unknown file key", file: "log:\n  levle: debug\n",
			want: []string{"unknown keys", "log.levle"}},
		{name: "unknown env var", environ: []string{"CONNHOST_LOG_LEVLE=debug"},
			want: []string{"unknown environment variables", "CONNHOST_LOG_LEVLE"}},
		{name: "missing file", args: []string{"--config", "/nonexistent/connhost.yaml"},
			want: []string{"config file /nonexistent/connhost.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeFile(t, tt.file)}, args...)
			}
			_, err := load(t, args, tt.environ...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestMetricsNeedAuth(t *testing.T) {
	tests := []struct {
		auth, listen string
		proxies      []string
		want         bool
	}{
		// A reverse proxy on loopback brings remote clients in as local.
		{MetricsAuthAuto, "127.0.0.1:8080", []string{"127.0.0.1"}, true},
		{MetricsAuthOpen, "127.0.0.1:8080", []string{"127.0.0.1"}, false},
		{MetricsAuthAuto, "127.0.0.1:8080", nil, false},
		{MetricsAuthAuto, "[::1]:8080", nil, false},
		{MetricsAuthAuto, "localhost:8080", nil, false},
		{MetricsAuthAuto, "0.0.0.0:8080", nil, true},
		{MetricsAuthAuto, ":8080", nil, true},
		{MetricsAuthAuto, "10.1.2.3:8080", nil, true},
		{MetricsAuthOpen, "0.0.0.0:8080", nil, false},
		{MetricsAuthAPIKey, "127.0.0.1:8080", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.auth+" "+tt.listen+" "+strings.Join(tt.proxies, ","), func(t *testing.T) {
			c := Config{Listen: tt.listen, Metrics: Metrics{Auth: tt.auth}, Server: Server{TrustedProxies: tt.proxies}}
			if got := c.MetricsNeedAuth(); got != tt.want {
				t.Fatalf("MetricsNeedAuth() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNamesUnique(t *testing.T) {
	seen := map[string]string{}
	for _, o := range Options() {
		for _, name := range []string{o.Key, o.Env, "--" + o.Flag} {
			if prev, ok := seen[name]; ok {
				t.Errorf("%s: name %q also used by %s", o.Key, name, prev)
			}
			seen[name] = o.Key
		}
		if o.Help == "" {
			t.Errorf("%s: no help text", o.Key)
		}
	}
}

func TestREADMETable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), MarkdownTable()) {
		t.Fatalf("README.md lacks the current configuration table; paste this:\n%s", MarkdownTable())
	}
}

// TestRegisterFlagsFor: with keys, only the options under them get a flag
// (and --config always); the others are unknown flags.
func TestRegisterFlagsFor(t *testing.T) {
	tests := []struct {
		keys    []string
		present []string
		absent  []string
	}{
		{nil, []string{"config", "listen", "data-dir", "limits-memory-mib", "server-shutdown-timeout"}, nil},
		{[]string{"log", "cache_dir", "limits"}, []string{"config", "log-level", "log-format", "cache-dir", "limits-call-timeout", "limits-module-bytes"},
			[]string{"listen", "data-dir", "server-shutdown-timeout", "secrets-key-file", "signing-trusted-keys"}},
		{[]string{"limits.module"}, []string{"limits-module-bytes"}, []string{"limits-memory-mib", "log-level"}},
		// A prefix matches whole key segments only.
		{[]string{"limits.module.bytes"}, []string{"limits-module-bytes"}, []string{"limits-module-bytes-x", "limits-module-types"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.keys, ","), func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			RegisterFlags(fs, tt.keys...)
			for _, f := range tt.present {
				if fs.Lookup(f) == nil {
					t.Errorf("--%s not registered", f)
				}
			}
			for _, f := range tt.absent {
				if fs.Lookup(f) != nil {
					t.Errorf("--%s registered", f)
				}
			}
		})
	}
	// An option without a flag still comes from the environment.
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	RegisterFlags(fs, "log")
	c, err := Load(fs, []string{"CONNHOST_LISTEN=127.0.0.1:9"})
	if err != nil || c.Listen != "127.0.0.1:9" {
		t.Fatalf("listen %q, %v", c.Listen, err)
	}
}

// TestLoadWithCacheDir: LoadOptions.CacheDir gives what an empty cache_dir
// means, and is not consulted when cache_dir is set.
func TestLoadWithCacheDir(t *testing.T) {
	errNoHome := errors.New("no home")
	tests := []struct {
		name    string
		environ []string
		dir     string
		dirErr  error
		want    string
		wantErr string
	}{
		{"default", nil, "/home/u/.cache/connhost", nil, "/home/u/.cache/connhost", ""},
		{"set by env", []string{"CONNHOST_CACHE_DIR=/c"}, "/home/u/.cache/connhost", nil, "/c", ""},
		{"set by env, no home needed", []string{"CONNHOST_CACHE_DIR=/c"}, "", errNoHome, "/c", ""},
		{"no home", nil, "", errNoHome, "", "config: cache_dir: no home"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadWith(nil, tt.environ, LoadOptions{CacheDir: func() (string, error) { return tt.dir, tt.dirErr }})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.CacheDir != tt.want {
				t.Fatalf("cache_dir %q, %v; want %q", c.CacheDir, err, tt.want)
			}
		})
	}
}

// TestReservedEnv: variables that are not options are neither refused nor
// taken as options; a misspelt option still is refused.
func TestReservedEnv(t *testing.T) {
	for _, v := range []string{"CONNHOST_PARAM_API_KEY=k", "CONNHOST_ACTIVE_HELP=0", "CONNHOST_COMPLETION_DESCRIPTIONS=false", "CONNHOST_CONFIG="} {
		if _, err := Load(nil, []string{v}); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	if _, err := Load(nil, []string{"CONNHOST_PARAMS=x"}); err == nil || !strings.Contains(err.Error(), "CONNHOST_PARAMS") {
		t.Errorf("CONNHOST_PARAMS: %v, want it refused", err)
	}
}
