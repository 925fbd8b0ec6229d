// Package config loads the connhost configuration from, in rising order of
// precedence, built-in defaults, a YAML file, CONNHOST_ environment variables
// and command-line flags, and validates the result in one place.
//
// Every option is a field of Config with a koanf key, a default and a help
// text in struct tags; flags, environment variable names, the unknown-key
// checks and the README table are all derived from them, so adding an option
// is adding a field (and a rule in Validate if it needs one).
//
// Environment variables: CONNHOST_ followed by the key in upper case with
// every "." replaced by "_": log.level is CONNHOST_LOG_LEVEL,
// limits.memory_mib is CONNHOST_LIMITS_MEMORY_MIB. Names are matched against
// the known keys (so underscores inside key names are unambiguous), and an
// unknown CONNHOST_ variable is an error rather than silently ignored.
// CONNHOST_CONFIG names the config file when --config is not given;
// CONNHOST_SECRET_KEY, CONNHOST_PARAM_* (`connhost run`'s plugin params)
// and the shell-completion variables are not options and not refused.
//
// Flags: the key with "." and "_" replaced by "-": --log-level,
// --limits-memory-mib. RegisterFlags can register only the options a
// command uses.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts the name of every configuration environment variable.
const EnvPrefix = "CONNHOST_"

// EnvConfigFile names the config file when the --config flag is not given.
const EnvConfigFile = EnvPrefix + "CONFIG"

// FlagConfigFile is the flag that names the YAML config file.
const FlagConfigFile = "config"

// EnvParamPrefix starts the variables that give `connhost run` the params
// of the plugin it runs (CONNHOST_PARAM_API_KEY sets api_key); they are not
// options.
const EnvParamPrefix = EnvPrefix + "PARAM_"

// EnvSecretKey holds the hex key that encrypts secret params, overriding
// secrets.key_file. It is deliberately not an option: a key must not be
// settable by flag (visible in ps) or kept in the config file.
const EnvSecretKey = EnvPrefix + "SECRET_KEY"

// Config is the whole connhost configuration.
type Config struct {
	// Log configures logging to stderr.
	Log Log `koanf:"log"`
	// DataDir holds the store, installed plugins and caches; default ./data.
	DataDir string `koanf:"data_dir" default:"./data" help:"directory for the store, installed plugins and caches"`
	// Listen is the HTTP listen address of the server; default 127.0.0.1:8080.
	Listen string `koanf:"listen" default:"127.0.0.1:8080" help:"HTTP listen address (host:port) of the server"`
	// CacheDir is the wazero compilation cache; default <data_dir>/cache/wazero
	// (LoadOptions.CacheDir for commands without a data directory).
	CacheDir string `koanf:"cache_dir" default:"" help:"wazero compilation cache directory; empty means data_dir/cache/wazero, or for run and plugin inspect the user cache directory (e.g. ~/.cache/connhost); must not be inside data_dir/plugins"`
	// Store configures the embedded database.
	Store Store `koanf:"store"`
	// Limits are the default per-instance sandbox limits.
	Limits Limits `koanf:"limits"`
	// Server configures the HTTP server of `connhost serve`.
	Server Server `koanf:"server"`
	// LongRunning configures HTTP requests into long-running plugins.
	LongRunning LongRunning `koanf:"long_running"`
	// API configures what each API key may do at what pace.
	API API `koanf:"api"`
	// Secrets configures the key that encrypts secret params at rest.
	Secrets Secrets `koanf:"secrets"`
	// Metrics configures the /metrics endpoint.
	Metrics Metrics `koanf:"metrics"`
	// Mirror configures fetching and incident mirroring.
	Mirror Mirror `koanf:"mirror"`
	// Signing is the trust policy of plugin installs.
	Signing Signing `koanf:"signing"`
	// Plugins configures how plugins arrive.
	Plugins Plugins `koanf:"plugins"`
	// Egress configures which addresses plugins' HTTP requests may reach.
	Egress Egress `koanf:"egress"`
	// Engines configures the embedded NATS server engines connect to.
	Engines Engines `koanf:"engines"`
}

// Engines configures remote engines (docs/engines.md): when enabled,
// `connhost serve` embeds a NATS server with JetStream that engines
// connect to, outbound from their network. Params travel to engines in
// clear inside the connection, so anything but a loopback listener needs
// TLS.
type Engines struct {
	// Enable starts the embedded NATS server; default false.
	Enable bool `koanf:"enable" default:"false" help:"embed a NATS server with JetStream in serve, for connhost engine processes to connect to (docs/engines.md)"`
	// Listen is where engines connect; default 127.0.0.1:4222.
	Listen string `koanf:"listen" default:"127.0.0.1:4222" help:"host:port of the embedded NATS server; anything but a loopback address needs engines.tls_cert and engines.tls_key"`
	// StoreDir holds JetStream's files; default <data_dir>/engines.
	StoreDir string `koanf:"store_dir" default:"" help:"JetStream directory (enrolled engines' public keys, plugin files by hash); empty means data_dir/engines"`
	// TLSCert and TLSKey are the PEM certificate and key of the NATS
	// listener; default none (loopback only).
	TLSCert string `koanf:"tls_cert" default:"" help:"PEM certificate file of the embedded NATS server's TLS listener"`
	TLSKey  string `koanf:"tls_key" default:"" help:"PEM private key file of engines.tls_cert"`
	// NATSURL, when set, is an external NATS JetStream cluster used instead
	// of the embedded server; default "" (embedded).
	NATSURL string `koanf:"nats_url" default:"" help:"external NATS JetStream cluster (comma-separated nats:// or tls:// URLs) used instead of the embedded server; its operator issues the engines' credentials (docs/engines.md); empty embeds the server"`
	// NATSSeedFile is the NKey seed of the server's user on the external
	// cluster; default none.
	NATSSeedFile string `koanf:"nats_seed_file" default:"" help:"file with the NKey seed (SU...) of the connhost server's user on engines.nats_url"`
	// Replicas of the JetStream buckets on the external cluster; default 1.
	Replicas int `koanf:"replicas" default:"1" help:"replicas of the engines' JetStream buckets on engines.nats_url (1-5; 3 survives the loss of a node)"`
}

// Egress configures the address checks of http_request (abi/SPEC.md §4):
// an allowed host name must not resolve to a loopback, link-local, private
// or unspecified address unless the allow-list names that address.
type Egress struct {
	// AllowPrivate admits private addresses (RFC 1918, 100.64/10, fc00::/7); default false.
	AllowPrivate bool `koanf:"allow_private" default:"false" help:"let plugins reach private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) that allowed host names resolve to; loopback, link-local and unspecified addresses stay refused unless an allow-list names them literally"`
}

// Store configures the embedded database (docs/store.md).
type Store struct {
	// MinFreeMiB is the free disk space the store keeps; default 448.
	MinFreeMiB int `koanf:"min_free_mib" default:"448" help:"free space (MiB) the store keeps on its filesystem: below it writes are refused (HTTP 507) so that badger, which crashes on a full disk, keeps room for its memtables and a compaction; 448 fits badger's default table sizes"`
	// GroupCommit joins concurrent incident and entry writes into one
	// synced commit; default true.
	GroupCommit bool `koanf:"group_commit" default:"true" help:"join concurrent incident creations and war-room entries into one synced commit (each still acknowledged only once on disk); false gives each its own sync, for comparison"`
}

// Signing is the trust policy every plugin install path applies
// (docs/signing.md).
type Signing struct {
	// TrustedKeys are minisign public keys: .pub files or bare base64 keys,
	// each optionally limited to plugin names (KEY=acme-*|acme2-*); default none.
	TrustedKeys []string `koanf:"trusted_keys" default:"" help:"minisign public keys whose plugin signatures are trusted: .pub file paths or bare base64 keys, each optionally followed by =PATTERNS to limit the plugin names it may sign (path.Match patterns joined by a vertical bar; docs/signing.md) (comma-separated in env and flag)"`
	// RequireSigned refuses unsigned plugins; default false.
	RequireSigned bool `koanf:"require_signed" default:"false" help:"refuse unsigned plugins; when false they install with a warning"`
}

// Plugins configures plugin delivery.
type Plugins struct {
	// WatchDir is watched for plugin files to install and swap in; default "" (off).
	WatchDir string `koanf:"watch_dir" default:"" help:"directory watched by the server for FILE.wasm (and FILE.wasm.minisig) to install and hot-swap; empty turns watching off"`
}

// Mirror configures the fetch scheduler and the mirroring engine, after
// XSOAR's sync.mirror.job.* settings.
type Mirror struct {
	// JobEnable runs the incoming mirroring job; default true.
	JobEnable bool `koanf:"job_enable" default:"true" help:"run the incoming mirroring job (XSOAR sync.mirror.job.enable)"`
	// JobDelay is the incoming job's period in minutes; default 1.
	JobDelay int `koanf:"job_delay" default:"1" help:"minutes between incoming mirroring cycles (XSOAR sync.mirror.job.delay)"`
	// JobDelayAdvanced, when above 0, is the period in seconds and overrides JobDelay; default 0.
	JobDelayAdvanced int `koanf:"job_delay_advanced" default:"0" help:"seconds between incoming mirroring cycles; overrides job_delay when above 0 (XSOAR sync.mirror.job.delayAdvanced)"`
	// Concurrency bounds get-remote-data calls in flight per instance; default 8.
	Concurrency int `koanf:"concurrency" default:"8" help:"get-remote-data calls in flight per instance, and outgoing updates in flight (1-256)"`
}

// MirrorInterval is the incoming mirroring job's period.
func (c *Config) MirrorInterval() time.Duration {
	if c.Mirror.JobDelayAdvanced > 0 {
		return time.Duration(c.Mirror.JobDelayAdvanced) * time.Second
	}
	return time.Duration(c.Mirror.JobDelay) * time.Minute
}

// Server configures the HTTP API server.
type Server struct {
	// MaxBodyBytes caps a JSON request body; default 1 MiB.
	MaxBodyBytes int `koanf:"max_body_bytes" default:"1048576" help:"maximum size of a JSON request body to the API, bytes (long-running HTTP plugins: long_running.http_max_body_bytes)"`
	// MaxPluginBytes caps an uploaded plugin; default 64 MiB.
	MaxPluginBytes int `koanf:"max_plugin_bytes" default:"67108864" help:"maximum size of an uploaded plugin (.wasm), bytes"`
	// ShutdownTimeout bounds the wait for in-flight requests on SIGTERM; default 30s.
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout" default:"30s" help:"on SIGTERM/SIGINT, how long in-flight requests and commands may take to finish"`
	// ReadHeaderTimeout bounds reading a request's headers; default 10s.
	ReadHeaderTimeout time.Duration `koanf:"read_header_timeout" default:"10s" help:"time a client has to send a request's headers (1s-10m); slower connections are closed"`
	// ReadTimeout bounds reading a whole request, body included; default 2m.
	ReadTimeout time.Duration `koanf:"read_timeout" default:"2m" help:"time a client has to send a whole request, body included (at least read_header_timeout, at most 1h)"`
	// IdleTimeout closes idle keep-alive connections; default 2m.
	IdleTimeout time.Duration `koanf:"idle_timeout" default:"2m" help:"how long an idle keep-alive connection stays open (1s-1h)"`
	// MaxInFlightPerClient bounds concurrent requests per client address; default 64.
	MaxInFlightPerClient int `koanf:"max_in_flight_per_client" default:"64" help:"requests one client address may have in progress at once (1-100000); more are answered 503 with Retry-After"`
	// TrustedProxies are the proxies whose forwarding headers are believed; default none.
	TrustedProxies []string `koanf:"trusted_proxies" default:"" help:"IP addresses or CIDR ranges of reverse proxies whose X-Forwarded-For / X-Real-IP name the client (comma-separated in env and flag); from other peers the headers are ignored"`
}

// TrustedProxyPrefixes returns server.trusted_proxies parsed, an address
// as a one-address prefix. Validate has checked them.
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.Server.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix parses an IP address or a CIDR range.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("host bits set: want %s", p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// LongRunning bounds HTTP requests into long-running HTTP plugins
// (/instance/execute/<instance>, docs/long-running.md). They are separate
// from the API's server.max_body_bytes: webhook senders (an Alertmanager
// group of thousands of alerts) need larger bodies than API clients.
type LongRunning struct {
	// HTTPMaxBodyBytes caps a request body passed to a plugin; default 1 MiB.
	HTTPMaxBodyBytes int `koanf:"http_max_body_bytes" default:"1048576" help:"maximum size of a request body into a long-running HTTP plugin (/instance/execute/...), bytes; larger is 413 (1024 to 1 GiB)"`
	// HTTPTimeout bounds one request into a plugin, waiting for a free
	// module instance included; default 30s.
	HTTPTimeout time.Duration `koanf:"http_timeout" default:"30s" help:"deadline of one request into a long-running HTTP plugin, waiting for a free module instance included; past it 504 (100ms to 1h)"`
	// HTTPConcurrency caps the requests in flight into one instance; default 64.
	HTTPConcurrency int `koanf:"http_concurrency" default:"64" help:"requests in flight into one long-running HTTP instance (served by up to limits.pool_size module instances, the rest waiting); more are refused with 503 (1-65536)"`
}

// API configures the per-key rate limit of the HTTP API: a token bucket
// per API key that refills at RateLimit per second up to RateBurst.
type API struct {
	// RateLimit is the requests per second one API key may make; default 50, 0 turns it off.
	RateLimit int `koanf:"rate_limit" default:"50" help:"requests per second one API key may make (token bucket refill rate); 0 turns the limit off; over it the API answers 429 with Retry-After"`
	// RateBurst is how many requests one key may make at once; default 100.
	RateBurst int `koanf:"rate_burst" default:"100" help:"requests one API key may make at once before api.rate_limit applies (token bucket size); at least 1 when the limit is on"`
}

// Secrets configures the encryption key of secret params.
type Secrets struct {
	// KeyFile holds the hex key; default <data_dir>/secret.key.
	KeyFile string `koanf:"key_file" default:"" help:"file with the hex key that encrypts secret params, created on first start; empty means data_dir/secret.key; env CONNHOST_SECRET_KEY (hex) overrides it"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Auth is auto, open or apikey; default auto.
	Auth string `koanf:"auth" default:"auto" help:"who may read /metrics: auto (open when listen is a loopback address and server.trusted_proxies is empty, else API key), open, or apikey"`
}

// Values of metrics.auth.
const (
	MetricsAuthAuto   = "auto"
	MetricsAuthOpen   = "open"
	MetricsAuthAPIKey = "apikey"
)

// MetricsNeedAuth reports whether /metrics requires an API key: always for
// apikey, never for open, and for auto unless the server listens on a
// loopback address only and no trusted proxies are configured (a reverse
// proxy on loopback would bring remote clients in as local ones).
func (c *Config) MetricsNeedAuth() bool {
	switch c.Metrics.Auth {
	case MetricsAuthOpen:
		return false
	case MetricsAuthAPIKey:
		return true
	}
	if len(c.Server.TrustedProxies) > 0 {
		return true
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return true
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// Log configures the zerolog logger.
type Log struct {
	// Level is debug, info, warn or error; default info.
	Level string `koanf:"level" default:"info" help:"log level: debug, info, warn or error"`
	// Format is console or json; default console.
	Format string `koanf:"format" default:"console" help:"log format: console (human) or json"`
}

// Limits are the default sandbox limits of a connector instance.
type Limits struct {
	// MemoryMiB caps the linear memory of one module instance; default 128.
	MemoryMiB int `koanf:"memory_mib" default:"128" help:"linear memory per module instance, MiB (1-4096)"`
	// CallTimeout is the deadline of one command; default 30s.
	CallTimeout time.Duration `koanf:"call_timeout" default:"30s" help:"deadline of one command call (Go duration, e.g. 30s)"`
	// OutputBytes caps a result envelope and each host-function request; default 4 MiB.
	OutputBytes int `koanf:"output_bytes" default:"4194304" help:"maximum size of a result envelope and of each host-function request, bytes"`
	// PoolSize is the number of warm module instances per connector instance; default 4.
	PoolSize int `koanf:"pool_size" default:"4" help:"maximum warm module instances per connector instance (1-1024)"`
	// PoolIdle is how long a warm module instance waits for a call before
	// it is closed; default 5m, 0 keeps them.
	PoolIdle time.Duration `koanf:"pool_idle" default:"5m" help:"a warm module instance no call used for this long is closed, so idle connector instances shrink to no module instance and the next call starts one again (about 30 ms for a Go guest); long-running instances keep theirs; 0 never closes them (0 or 1s-24h)"`
	// LogBytes caps the guest log bytes of one call; default 64 KiB.
	LogBytes int `koanf:"log_bytes" default:"65536" help:"guest log bytes of one call (log host function and stdout/stderr); the rest is dropped and counted"`
	// LogRecords caps the guest log records of one call; default 1000.
	LogRecords int `koanf:"log_records" default:"1000" help:"guest log records of one call, empty ones included; the rest is dropped and counted"`
	// LogRecordsPerMinute caps the guest log records of one instance per minute; default 10000.
	LogRecordsPerMinute int `koanf:"log_records_per_minute" default:"10000" help:"guest log records of one connector instance per minute"`
	// LogBytesPerMinute caps the guest log bytes of one instance per minute; default 1 MiB.
	LogBytesPerMinute int `koanf:"log_bytes_per_minute" default:"1048576" help:"guest log bytes of one connector instance per minute"`
	// StackKiB is the call-stack budget of one guest call; default 1024.
	StackKiB int `koanf:"stack_kib" default:"1024" help:"call-stack budget of one guest call (estimated native frames), KiB (16-65536); past it the call fails with kind trap"`
	// CompileTimeout bounds the compilation of one plugin; default 2m.
	CompileTimeout time.Duration `koanf:"compile_timeout" default:"2m" help:"time budget to compile one plugin (Go duration, at least 1s)"`
	// Module bounds what a plugin module may declare.
	Module ModuleLimits `koanf:"module"`
}

// ModuleLimits bound what a plugin module may declare: the load-time gate
// refuses anything beyond them before compiling, naming the item, its size
// and the limit. A first-party Go plugin of ~4.5 MB uses about a tenth of
// each default.
type ModuleLimits struct {
	// Bytes caps the whole .wasm file; default 32 MiB.
	Bytes int `koanf:"bytes" default:"33554432" help:"size of a plugin file, bytes"`
	// Types caps the function types; default 10000.
	Types int `koanf:"types" default:"10000" help:"function types of a module"`
	// Imports caps the imports; default 1000.
	Imports int `koanf:"imports" default:"1000" help:"imports of a module (functions only)"`
	// Functions caps imported and defined functions; default 50000.
	Functions int `koanf:"functions" default:"50000" help:"functions of a module, imported and defined"`
	// FunctionBodyBytes caps one function body; default 1 MiB.
	FunctionBodyBytes int `koanf:"function_body_bytes" default:"1048576" help:"size of one function body, bytes"`
	// CodeBytes caps all function bodies; default 24 MiB.
	CodeBytes int `koanf:"code_bytes" default:"25165824" help:"size of all function bodies, bytes"`
	// Locals caps the locals of a function, parameters included; default 10000.
	Locals int `koanf:"locals" default:"10000" help:"locals of one function, parameters included"`
	// BlockDepth caps the nesting of blocks in a body; default 10000.
	BlockDepth int `koanf:"block_depth" default:"10000" help:"nesting of block, loop and if in one function"`
	// Labels caps the block, loop and if instructions and br_table entries
	// of a body, which compile time grows faster than; default 8192.
	Labels int `koanf:"labels" default:"8192" help:"block, loop and if instructions and br_table entries in one function (compile time grows faster than linearly with them)"`
	// Globals caps the globals; default 1000.
	Globals int `koanf:"globals" default:"1000" help:"globals of a module"`
	// Tables caps the tables; default 4.
	Tables int `koanf:"tables" default:"4" help:"tables of a module"`
	// TableElements caps a table's initial size and lowers its maximum; default 100000.
	TableElements int `koanf:"table_elements" default:"100000" help:"elements of one table: its initial size is refused above this, and it cannot grow past it"`
	// Exports caps the exports; default 1000.
	Exports int `koanf:"exports" default:"1000" help:"exports of a module"`
	// ElementSegments caps the element segments; default 10000.
	ElementSegments int `koanf:"element_segments" default:"10000" help:"element segments of a module"`
	// ElementEntries caps the entries of all element segments; default 200000.
	ElementEntries int `koanf:"element_entries" default:"200000" help:"entries of all element segments together"`
	// DataSegments caps the data segments; default 200000.
	DataSegments int `koanf:"data_segments" default:"200000" help:"data segments of a module"`
	// DataBytes caps the bytes of all data segments; default 24 MiB.
	DataBytes int `koanf:"data_bytes" default:"25165824" help:"bytes of all data segments together"`
	// CustomSections caps the custom sections; default 64.
	CustomSections int `koanf:"custom_sections" default:"64" help:"custom sections of a module"`
	// CustomBytes caps all custom sections; default 8 MiB.
	CustomBytes int `koanf:"custom_bytes" default:"8388608" help:"bytes of all custom sections together"`
	// NameBytes caps one import, export or custom section name; default 1024.
	NameBytes int `koanf:"name_bytes" default:"1024" help:"length of one import, export or custom section name, bytes"`
}

// ranges are the valid range of each module limit: at least what a small
// plugin needs, at most what one host process can afford to load.
func (m *ModuleLimits) ranges() []struct {
	key      string
	v        *int
	min, max int
} {
	type r = struct {
		key      string
		v        *int
		min, max int
	}
	return []r{
		{"bytes", &m.Bytes, 1024, 1 << 30},
		{"types", &m.Types, 1, 1 << 20},
		{"imports", &m.Imports, 1, 1 << 16},
		{"functions", &m.Functions, 1, 1 << 20},
		{"function_body_bytes", &m.FunctionBodyBytes, 1024, 16 << 20},
		{"code_bytes", &m.CodeBytes, 1024, 1 << 30},
		{"locals", &m.Locals, 16, 50000},
		{"block_depth", &m.BlockDepth, 16, 1 << 16},
		{"labels", &m.Labels, 16, 1 << 20},
		{"globals", &m.Globals, 1, 1 << 16},
		{"tables", &m.Tables, 1, 100},
		{"table_elements", &m.TableElements, 1, 10_000_000},
		{"exports", &m.Exports, 4, 1 << 16},
		{"element_segments", &m.ElementSegments, 1, 1 << 20},
		{"element_entries", &m.ElementEntries, 1, 10_000_000},
		{"data_segments", &m.DataSegments, 1, 1 << 22},
		{"data_bytes", &m.DataBytes, 0, 1 << 30},
		{"custom_sections", &m.CustomSections, 1, 1024},
		{"custom_bytes", &m.CustomBytes, 1024, 1 << 30},
		{"name_bytes", &m.NameBytes, 16, 1 << 16},
	}
}

// PluginsDir is where installed plugins live: <data_dir>/plugins.
func (c *Config) PluginsDir() string { return filepath.Join(c.DataDir, "plugins") }

var (
	logLevels   = []string{"debug", "info", "warn", "error"}
	logFormats  = []string{"console", "json"}
	metricsAuth = []string{MetricsAuthAuto, MetricsAuthOpen, MetricsAuthAPIKey}
)

// Validate checks every option and returns all problems, joined; each names
// its key. Load calls it, adding where each bad value came from.
func (c *Config) Validate() error {
	var errs []error
	for _, p := range c.problems() {
		errs = append(errs, fmt.Errorf("config: %s: %s", p.key, p.msg))
	}
	return errors.Join(errs...)
}

type problem struct{ key, msg string }

func (c *Config) problems() []problem {
	var out []problem
	bad := func(key, format string, args ...any) {
		out = append(out, problem{key, fmt.Sprintf(format, args...)})
	}
	oneOf := func(key, v string, allowed []string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	oneOf("log.level", c.Log.Level, logLevels)
	oneOf("log.format", c.Log.Format, logFormats)
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q: want host:port: %v", c.Listen, err)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && host == "") {
		bad("listen", "%q: want a port number 0-65535", c.Listen)
	}
	if c.CacheDir == "" {
		bad("cache_dir", "must not be empty")
	} else if c.DataDir != "" && within(c.CacheDir, c.PluginsDir()) {
		// Compiled code must never sit next to (or be mistaken for) plugin files.
		bad("cache_dir", "%q is inside the plugins directory %q", c.CacheDir, c.PluginsDir())
	}
	if c.Store.MinFreeMiB < 1 || c.Store.MinFreeMiB > 1<<20 {
		bad("store.min_free_mib", "%d: want 1-%d", c.Store.MinFreeMiB, 1<<20)
	}
	if c.Limits.MemoryMiB < 1 || c.Limits.MemoryMiB > 4096 {
		bad("limits.memory_mib", "%d: want 1-4096 (wasm32 addresses at most 4 GiB)", c.Limits.MemoryMiB)
	}
	if c.Limits.CallTimeout < time.Millisecond {
		bad("limits.call_timeout", "%v: want at least 1ms", c.Limits.CallTimeout)
	}
	if c.Limits.OutputBytes < 1024 {
		bad("limits.output_bytes", "%d: want at least 1024", c.Limits.OutputBytes)
	}
	if c.Limits.PoolSize < 1 || c.Limits.PoolSize > 1024 {
		bad("limits.pool_size", "%d: want 1-1024", c.Limits.PoolSize)
	}
	if c.Limits.PoolIdle != 0 && (c.Limits.PoolIdle < time.Second || c.Limits.PoolIdle > 24*time.Hour) {
		bad("limits.pool_idle", "%v: want 0 (never) or 1s-24h", c.Limits.PoolIdle)
	}
	for _, r := range []struct {
		key      string
		v        int
		min, max int
	}{
		{"log_bytes", c.Limits.LogBytes, 256, 64 << 20},
		{"log_records", c.Limits.LogRecords, 1, 1 << 20},
		{"log_records_per_minute", c.Limits.LogRecordsPerMinute, 1, 1 << 24},
		{"log_bytes_per_minute", c.Limits.LogBytesPerMinute, 256, 1 << 30},
	} {
		if r.v < r.min || r.v > r.max {
			bad("limits."+r.key, "%d: want %d-%d", r.v, r.min, r.max)
		}
	}
	if c.Limits.StackKiB < 16 || c.Limits.StackKiB > 65536 {
		bad("limits.stack_kib", "%d: want 16-65536", c.Limits.StackKiB)
	}
	if c.Limits.CompileTimeout < time.Second {
		bad("limits.compile_timeout", "%v: want at least 1s", c.Limits.CompileTimeout)
	}
	for _, r := range c.Limits.Module.ranges() {
		if *r.v < r.min || *r.v > r.max {
			bad("limits.module."+r.key, "%d: want %d-%d", *r.v, r.min, r.max)
		}
	}
	if c.Server.MaxBodyBytes < 1024 || c.Server.MaxBodyBytes > 1<<30 {
		bad("server.max_body_bytes", "%d: want 1024 to 1 GiB", c.Server.MaxBodyBytes)
	}
	if c.Server.MaxPluginBytes < 1024 || c.Server.MaxPluginBytes > 1<<30 {
		bad("server.max_plugin_bytes", "%d: want 1024 to 1 GiB", c.Server.MaxPluginBytes)
	}
	if c.Server.ShutdownTimeout < 0 {
		bad("server.shutdown_timeout", "%v: want a duration ≥ 0", c.Server.ShutdownTimeout)
	}
	out = append(out, c.Engines.problems()...)
	if c.LongRunning.HTTPMaxBodyBytes < 1024 || c.LongRunning.HTTPMaxBodyBytes > 1<<30 {
		bad("long_running.http_max_body_bytes", "%d: want 1024 to 1 GiB", c.LongRunning.HTTPMaxBodyBytes)
	}
	if c.LongRunning.HTTPTimeout < 100*time.Millisecond || c.LongRunning.HTTPTimeout > time.Hour {
		bad("long_running.http_timeout", "%v: want 100ms to 1h", c.LongRunning.HTTPTimeout)
	}
	if c.LongRunning.HTTPConcurrency < 1 || c.LongRunning.HTTPConcurrency > 1<<16 {
		bad("long_running.http_concurrency", "%d: want 1-65536", c.LongRunning.HTTPConcurrency)
	}
	if c.API.RateLimit < 0 || c.API.RateLimit > 1_000_000 {
		bad("api.rate_limit", "%d: want 0 (off) to 1000000 requests/s", c.API.RateLimit)
	}
	if c.API.RateLimit > 0 && (c.API.RateBurst < 1 || c.API.RateBurst > 1_000_000) {
		bad("api.rate_burst", "%d: want 1-1000000 while api.rate_limit is on", c.API.RateBurst)
	}
	if t := c.Server.ReadHeaderTimeout; t < time.Second || t > 10*time.Minute {
		bad("server.read_header_timeout", "%v: want 1s to 10m", t)
	}
	if t := c.Server.ReadTimeout; t < c.Server.ReadHeaderTimeout || t > time.Hour {
		bad("server.read_timeout", "%v: want server.read_header_timeout (%v) to 1h", t, c.Server.ReadHeaderTimeout)
	}
	if t := c.Server.IdleTimeout; t < time.Second || t > time.Hour {
		bad("server.idle_timeout", "%v: want 1s to 1h", t)
	}
	if n := c.Server.MaxInFlightPerClient; n < 1 || n > 100000 {
		bad("server.max_in_flight_per_client", "%d: want 1-100000", n)
	}
	for _, p := range c.Server.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			bad("server.trusted_proxies", "%q: want an IP address or a CIDR range: %v", p, err)
		}
	}
	if c.Secrets.KeyFile == "" {
		bad("secrets.key_file", "must not be empty")
	}
	oneOf("metrics.auth", c.Metrics.Auth, metricsAuth)
	if c.Mirror.JobDelay < 1 {
		bad("mirror.job_delay", "%d: want minutes ≥ 1", c.Mirror.JobDelay)
	}
	if c.Mirror.JobDelayAdvanced < 0 {
		bad("mirror.job_delay_advanced", "%d: want seconds ≥ 0 (0 uses mirror.job_delay)", c.Mirror.JobDelayAdvanced)
	}
	if c.Mirror.Concurrency < 1 || c.Mirror.Concurrency > 256 {
		bad("mirror.concurrency", "%d: want 1-256", c.Mirror.Concurrency)
	}
	return out
}

// within reports whether path is dir or below it, comparing absolute paths.
func within(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// problems checks the engines options; with engines off only their form.
func (e Engines) problems() []problem {
	var out []problem
	h, port, err := net.SplitHostPort(e.Listen)
	if err != nil {
		return append(out, problem{"engines.listen", fmt.Sprintf("%q: want host:port: %v", e.Listen, err)})
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		out = append(out, problem{"engines.listen", fmt.Sprintf("%q: want a port number 0-65535", e.Listen)})
	}
	if (e.TLSCert == "") != (e.TLSKey == "") {
		out = append(out, problem{"engines.tls_cert", "engines.tls_cert and engines.tls_key go together"})
	}
	if e.Replicas < 1 || e.Replicas > 5 {
		out = append(out, problem{"engines.replicas", fmt.Sprintf("%d: want 1-5", e.Replicas)})
	}
	if !e.Enable {
		return out
	}
	if e.NATSURL != "" {
		if e.NATSSeedFile == "" {
			return append(out, problem{"engines.nats_seed_file", "required with engines.nats_url"})
		}
		raw, err := os.ReadFile(e.NATSSeedFile)
		if err != nil {
			return append(out, problem{"engines.nats_seed_file", err.Error()})
		}
		if !strings.HasPrefix(strings.TrimSpace(string(raw)), "SU") {
			out = append(out, problem{"engines.nats_seed_file", fmt.Sprintf("%s holds no NKey user seed (SU...)", e.NATSSeedFile)})
		}
		return out
	}
	if e.TLSCert != "" && e.TLSKey != "" {
		if _, err := tls.LoadX509KeyPair(e.TLSCert, e.TLSKey); err != nil {
			out = append(out, problem{"engines.tls_cert", err.Error()})
		}
	} else if ip, err := netip.ParseAddr(h); h != "localhost" && (err != nil || !ip.IsLoopback()) {
		out = append(out, problem{"engines.listen", fmt.Sprintf("%q is not a loopback address: instance params travel to engines, so set engines.tls_cert and engines.tls_key", e.Listen)})
	}
	return out
}
