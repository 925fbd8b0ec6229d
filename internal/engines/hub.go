package engines

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
)

// Backend is what the hub needs of the server's service: the host
// functions, the instances' groups and the long-running instances of a
// group.
type Backend interface {
	// HostServices acts on the server's store, as for local instances.
	HostServices() host.Services
	// InstanceGroup returns the engine group of an instance by id
	// (an unknown instance is an error).
	InstanceGroup(ctx context.Context, id string) (string, error)
	// LongRunningSpecs returns the enabled long-running instances of a
	// group, params included.
	LongRunningSpecs(ctx context.Context, group string) ([]Spec, error)
}

// HubOptions configure the server side.
type HubOptions struct {
	// Listen is the host:port engines connect to.
	Listen string
	// StoreDir holds JetStream's files.
	StoreDir string
	// TLS, when set, is required of every client connection.
	TLS *tls.Config
	// Logger gets the hub's messages.
	Logger zerolog.Logger
	// LeaseTTL is how long a long-running lease lives without renewal.
	LeaseTTL time.Duration
	// HeartbeatTimeout marks an engine gone when it has not beaten for it.
	HeartbeatTimeout time.Duration

	// URL, when set, is an external NATS (JetStream) cluster to use instead
	// of the embedded server: Listen, StoreDir and TLS are then unused, the
	// cluster authenticates engines (EnginePermissions are theirs) and
	// Enroll is refused.
	URL string
	// Seed is the NKey seed of the server's user on the external cluster.
	Seed []byte
	// ClientTLS, when set, is used to connect to the external cluster.
	ClientTLS *tls.Config
	// Replicas of the JetStream buckets on the external cluster; default 1.
	Replicas int
}

// Defaults of HubOptions.
const (
	DefaultLeaseTTL         = 5 * time.Second
	DefaultHeartbeatTimeout = 5 * time.Second
	// heartbeatInterval is how often an engine beats (and polls its
	// group's long-running instances).
	heartbeatInterval = time.Second
)

// Enrolled is an engine the server accepts: its name, group and NKey
// public key. The seed is given out once, at enrollment, and never stored.
type Enrolled struct {
	Name      string    `json:"name"`
	Group     string    `json:"group"`
	PublicKey string    `json:"publicKey"`
	Created   time.Time `json:"created"`
}

// Status is an engine as the server sees it.
type Status struct {
	Beat
	Connected      bool      `json:"connected"`
	ConnectedSince time.Time `json:"connectedSince,omitzero"`
	LastHeartbeat  time.Time `json:"lastHeartbeat,omitzero"`
	Calls          int64     `json:"calls"`
	Failures       int64     `json:"failures"`
}

// Sentinel errors of the hub.
var (
	// ErrExists is returned when enrolling a name already enrolled.
	ErrExists = errors.New("engine already enrolled")
	// ErrNotFound is returned for an engine that is not enrolled.
	ErrNotFound = errors.New("engine not enrolled")
	// ErrExternal is returned by Enroll when engines authenticate with an
	// external NATS cluster, whose operator issues their credentials.
	ErrExternal = errors.New("engines use an external NATS cluster: its operator issues their credentials")
)

// Hub is the server side of engines: an embedded NATS server with
// JetStream on Listen, authenticating engines by NKey.
type Hub struct {
	opts   HubOptions
	log    zerolog.Logger
	ns     *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	enroll jetstream.KeyValue
	leases jetstream.KeyValue
	objs   jetstream.ObjectStore
	key    nkeys.KeyPair // the server's own user
	pub    string
	be     atomic.Pointer[backendBox]

	mu        sync.Mutex
	enrolled  map[string]Enrolled // by public key
	status    map[string]*Status  // by engine name
	published map[string]bool     // objects in the plugin store (files by hash, signatures)
	lost      map[string]bool     // engines whose loss was logged
	conns     map[string][]uint64 // client ids of each engine's connections
	subs      []*nats.Subscription
	stop      chan struct{}
	swept     sync.WaitGroup
}

type backendBox struct{ Backend }

// StartHub starts the embedded NATS server and opens the buckets.
func StartHub(ctx context.Context, opts HubOptions) (*Hub, error) {
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.HeartbeatTimeout <= 0 {
		opts.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	if opts.URL != "" {
		if kp, err = nkeys.FromSeed(opts.Seed); err != nil {
			return nil, fmt.Errorf("engines: server seed: %w", err)
		}
	}
	pub, _ := kp.PublicKey()
	h := &Hub{opts: opts, log: opts.Logger.With().Str("component", "engines").Logger(), key: kp, pub: pub,
		enrolled: map[string]Enrolled{}, status: map[string]*Status{}, published: map[string]bool{},
		lost: map[string]bool{}, conns: map[string][]uint64{}, stop: make(chan struct{})}
	if opts.URL != "" {
		if err := h.connect(ctx); err != nil {
			h.Close()
			return nil, err
		}
		h.swept.Add(1)
		go h.sweep()
		return h, nil
	}
	hostStr, portStr, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("engines.listen %q: %w", opts.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("engines.listen %q: port: %w", opts.Listen, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	so := &server.Options{
		ServerName: "connhost", Host: hostStr, Port: port, JetStream: true, StoreDir: opts.StoreDir,
		NoSigs: true, NoLog: true, MaxPayload: maxPayload, AlwaysEnableNonce: true,
		CustomClientAuthentication: h, DisableShortFirstPing: true,
	}
	if opts.TLS != nil {
		so.TLS, so.TLSConfig, so.TLSTimeout = true, opts.TLS, 5
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("engines: nats server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("engines: nats server on %s did not start", opts.Listen)
	}
	h.ns = ns
	if err := h.connect(ctx); err != nil {
		h.Close()
		return nil, err
	}
	h.swept.Add(1)
	go h.sweep()
	return h, nil
}

// sweep logs engines whose heartbeats stopped, once each time.
func (h *Hub) sweep() {
	defer h.swept.Done()
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		h.mu.Lock()
		for name, s := range h.status {
			gone := now.Sub(s.LastHeartbeat) >= h.opts.HeartbeatTimeout
			if gone && !h.lost[name] {
				h.log.Warn().Str("engine", name).Str("group", s.Group).Time("last_heartbeat", s.LastHeartbeat).Msg("engine lost: no heartbeat")
			}
			h.lost[name] = gone
		}
		h.mu.Unlock()
	}
}

// connect opens the server's own connection, in process, and the buckets.
func (h *Hub) connect(ctx context.Context) error {
	no := []nats.Option{nats.Name(serverUser), nats.Nkey(h.pub, h.key.Sign), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	url := h.opts.URL
	if url == "" {
		no = append(no, nats.InProcessServer(h.ns))
	} else if h.opts.ClientTLS != nil {
		no = append(no, nats.Secure(h.opts.ClientTLS))
	}
	nc, err := nats.Connect(url, no...)
	if err != nil {
		return fmt.Errorf("engines: connecting to NATS %s: %w", url, err)
	}
	h.nc = nc
	if h.js, err = jetstream.New(nc); err != nil {
		return err
	}
	if h.enroll, err = h.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketEnrolled, Storage: jetstream.FileStorage, Replicas: h.replicas()}); err != nil {
		return fmt.Errorf("engines: bucket %s: %w", BucketEnrolled, err)
	}
	// Leases live in memory: they mean nothing after a restart.
	if h.leases, err = h.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketLeases, Storage: jetstream.MemoryStorage, TTL: h.opts.LeaseTTL, Replicas: h.replicas()}); err != nil {
		return fmt.Errorf("engines: bucket %s: %w", BucketLeases, err)
	}
	if _, err = h.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: BucketPlugins, Storage: jetstream.FileStorage, Replicas: h.replicas()}); err != nil {
		return fmt.Errorf("engines: bucket %s: %w", BucketPlugins, err)
	}
	if err := h.leaderReads(ctx, PluginsStream); err != nil {
		return fmt.Errorf("engines: bucket %s: %w", BucketPlugins, err)
	}
	// Bound after leaderReads: a handle keeps the stream's settings it was
	// bound with, and direct gets have no one to answer them now.
	if h.objs, err = h.js.ObjectStore(ctx, BucketPlugins); err != nil {
		return fmt.Errorf("engines: bucket %s: %w", BucketPlugins, err)
	}
	if err := h.loadEnrolled(ctx); err != nil {
		return err
	}
	sub, err := nc.QueueSubscribe(hostPrefix+">", "server", h.serveHost)
	if err != nil {
		return err
	}
	h.subs = append(h.subs, sub)
	return nil
}

// PluginsStream is the JetStream stream behind the BucketPlugins object
// store.
const PluginsStream = "OBJ_" + BucketPlugins

// leaderReads turns off direct gets on stream. An object store reads each
// object's metadata with a direct get, which any replica may answer: on a
// replicated cluster an engine could then miss a plugin file the hub has
// just published and been told to run ("object not found"), or miss its
// signature and take a signed file for an unsigned one. Without direct
// gets the stream's leader answers, which has every acknowledged write.
// Plugin files are read once per version and engine, so the read scaling
// direct gets buy is not needed. Engines read the setting when they bind
// the bucket (Connect); one bound before it changed reconnects to see it.
func (h *Hub) leaderReads(ctx context.Context, stream string) error {
	st, err := h.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	if !cfg.AllowDirect {
		return nil
	}
	cfg.AllowDirect = false
	_, err = h.js.UpdateStream(ctx, cfg)
	return err
}

// replicas is the buckets' replication factor.
func (h *Hub) replicas() int { return max(h.opts.Replicas, 1) }

// loadEnrolled reads the enrolled engines into memory, where Check looks
// them up.
func (h *Hub) loadEnrolled(ctx context.Context) error {
	lister, err := h.enroll.ListKeys(ctx)
	if err != nil {
		return err
	}
	for k := range lister.Keys() {
		e, err := h.enroll.Get(ctx, k)
		if err != nil {
			continue
		}
		var en Enrolled
		if json.Unmarshal(e.Value(), &en) == nil {
			h.mu.Lock()
			h.enrolled[en.PublicKey] = en
			h.mu.Unlock()
		}
	}
	return nil
}

// Attach sets the service the hub serves host functions from.
func (h *Hub) Attach(b Backend) { h.be.Store(&backendBox{b}) }

// ClientURL is the URL engines connect to.
func (h *Hub) ClientURL() string {
	if h.opts.URL != "" {
		return h.opts.URL
	}
	return h.ns.ClientURL()
}

// Close stops the NATS server.
func (h *Hub) Close() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.swept.Wait()
	if h.nc != nil {
		h.nc.Close()
	}
	if h.ns != nil {
		h.ns.Shutdown()
		h.ns.WaitForShutdown()
	}
}

// Check authenticates a client connection (server.Authentication): the
// server's own user, or an enrolled engine signing the nonce with its
// NKey. An engine gets the permissions of its name and group only.
func (h *Hub) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o == nil || o.Nkey == "" {
		return false
	}
	pk, err := nkeys.FromPublicKey(o.Nkey)
	if err != nil {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(o.Sig)
	if err != nil {
		if sig, err = base64.StdEncoding.DecodeString(o.Sig); err != nil {
			return false
		}
	}
	if pk.Verify(c.GetNonce(), sig) != nil {
		return false
	}
	if o.Nkey == h.pub {
		c.RegisterUser(&server.User{Username: serverUser})
		return true
	}
	h.mu.Lock()
	en, ok := h.enrolled[o.Nkey]
	if ok {
		h.conns[en.Name] = append(h.conns[en.Name], c.GetID())
	}
	h.mu.Unlock()
	if !ok {
		h.log.Warn().Str("remote", c.RemoteAddress().String()).Msg("engine refused: unknown key")
		return false
	}
	c.RegisterUser(&server.User{Username: "engine:" + en.Name, Permissions: permissions(en)})
	return true
}

// EnginePermissions are what an engine may do: answer its group's
// commands, call host functions as itself, use its group's leases and read
// plugins. The embedded server grants them itself; the operator of an
// external cluster gives them to each engine's user.
func EnginePermissions(name, group string) *server.Permissions {
	return permissions(Enrolled{Name: name, Group: group})
}

func permissions(en Enrolled) *server.Permissions {
	kvLeases, objPlugins := "KV_"+BucketLeases, "OBJ_"+BucketPlugins
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			hostPrefix + en.Group + "." + en.Name + ".>",
			"$KV." + BucketLeases + "." + en.Group + ".>",
			"$JS.API.INFO",
			"$JS.API.STREAM.INFO." + kvLeases, "$JS.API.STREAM.INFO." + objPlugins,
			"$JS.API.DIRECT.GET." + kvLeases + ".$KV." + BucketLeases + "." + en.Group + ".>",
			"$JS.API.STREAM.MSG.GET." + objPlugins, "$JS.API.DIRECT.GET." + objPlugins + ".>",
			"$JS.API.CONSUMER.CREATE." + objPlugins + ".>", "$JS.API.CONSUMER.DELETE." + objPlugins + ".>",
			"$JS.API.CONSUMER.MSG.NEXT." + objPlugins + ".>", "$JS.API.CONSUMER.INFO." + objPlugins + ".>",
			"$JS.ACK." + objPlugins + ".>", "$JS.FC." + objPlugins + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			execPrefix + en.Group,
			httpPrefix + en.Group + ".>",
			inboxPrefix(en.Name) + ".>",
		}},
		Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
}

// inboxPrefix is an engine's own inbox prefix: no engine may read
// another's replies (which carry params).
func inboxPrefix(name string) string { return "_INBOX_" + name }

// Enroll registers a new engine and returns its NKey seed, which is shown
// this once: only the public key is stored.
func (h *Hub) Enroll(ctx context.Context, name, group string) (Enrolled, []byte, error) {
	if err := errors.Join(ValidName("engine", name), ValidName("group", group)); err != nil {
		return Enrolled{}, nil, err
	}
	if h.opts.URL != "" {
		return Enrolled{}, nil, fmt.Errorf("engine %q: %w", name, ErrExternal)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Enrolled{}, nil, err
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	en := Enrolled{Name: name, Group: group, PublicKey: pub, Created: time.Now().UTC()}
	raw, _ := json.Marshal(en)
	if _, err := h.enroll.Create(ctx, name, raw); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Enrolled{}, nil, fmt.Errorf("engine %q: %w", name, ErrExists)
		}
		return Enrolled{}, nil, fmt.Errorf("engine %q: %w", name, err)
	}
	h.mu.Lock()
	h.enrolled[pub] = en
	h.mu.Unlock()
	h.log.Info().Str("engine", name).Str("group", group).Msg("engine enrolled")
	return en, seed, nil
}

// Remove revokes an engine: its key is refused from now on and its
// connections are closed, so a lost or compromised engine stops at once.
func (h *Hub) Remove(ctx context.Context, name string) error {
	if h.opts.URL != "" {
		return fmt.Errorf("engine %q: %w", name, ErrExternal)
	}
	h.mu.Lock()
	var pub string
	for k, en := range h.enrolled {
		if en.Name == name {
			pub = k
		}
	}
	h.mu.Unlock()
	if pub == "" {
		return fmt.Errorf("engine %q: %w", name, ErrNotFound)
	}
	if err := h.enroll.Delete(ctx, name); err != nil {
		return fmt.Errorf("engine %q: %w", name, err)
	}
	h.mu.Lock()
	delete(h.enrolled, pub)
	delete(h.status, name)
	ids := h.conns[name]
	delete(h.conns, name)
	h.mu.Unlock()
	for _, id := range ids {
		_ = h.ns.DisconnectClientByID(id)
	}
	h.log.Info().Str("engine", name).Msg("engine removed; its key is refused")
	return nil
}

// Engines lists the enrolled engines with their state, by name.
func (h *Hub) Engines() []Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	known := make(map[string]Enrolled, len(h.enrolled)+len(h.status))
	for _, en := range h.enrolled {
		known[en.Name] = en
	}
	// On an external cluster engines are known by their heartbeats.
	for name, s := range h.status {
		if _, ok := known[name]; !ok {
			known[name] = Enrolled{Name: name, Group: s.Group}
		}
	}
	out := make([]Status, 0, len(known))
	for _, en := range known {
		st := Status{Beat: Beat{Name: en.Name, Group: en.Group}}
		if s := h.status[en.Name]; s != nil {
			st = *s
			st.Connected = now.Sub(s.LastHeartbeat) < h.opts.HeartbeatTimeout
			if !st.Connected {
				st.ConnectedSince = time.Time{}
			}
		}
		if st.Instances == nil {
			st.Instances = []string{}
		}
		if st.LongRunning == nil {
			st.LongRunning = []string{}
		}
		out = append(out, st)
	}
	sortStatus(out)
	return out
}

// Ready reports whether the NATS server takes connections.
func (h *Hub) Ready() bool { return (h.ns == nil || h.ns.Running()) && h.nc.IsConnected() }

// Publish makes a plugin file available to engines, by its SHA-256, with
// its detached minisign signature (nil when it has none) as the object
// SigObject(sha): each engine verifies the file against its own trust
// policy, so the signature travels with the file.
func (h *Hub) Publish(ctx context.Context, sha string, blob, sig []byte) error {
	if err := h.put(ctx, sha, blob, false); err != nil {
		return fmt.Errorf("engines: publishing plugin %s: %w", sha, err)
	}
	if sig == nil {
		return nil
	}
	if err := h.put(ctx, SigObject(sha), sig, true); err != nil {
		return fmt.Errorf("engines: publishing the signature of plugin %s: %w", sha, err)
	}
	return nil
}

// put stores an object unless this hub stored it already. A plugin file
// (named by its hash) is kept when the store holds it; a signature
// replaces one that differs, so the store holds the installed one.
func (h *Hub) put(ctx context.Context, name string, data []byte, replace bool) error {
	h.mu.Lock()
	done := h.published[name]
	h.mu.Unlock()
	if done {
		return nil
	}
	var have []byte
	if replace {
		have, _ = h.objs.GetBytes(ctx, name)
	} else if _, err := h.objs.GetInfo(ctx, name); err == nil {
		have = data
	}
	if have == nil || string(have) != string(data) {
		if _, err := h.objs.PutBytes(ctx, name, data); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.published[name] = true
	h.mu.Unlock()
	return nil
}

// SigObject is the object-store name of the detached signature of the
// plugin file with hash sha.
func SigObject(sha string) string { return sha + ".minisig" }

// Execute runs a command of an instance on an engine of group, load
// balanced by the group's queue. No engine connected fails at once with
// kind unavailable naming the group.
func (h *Hub) Execute(ctx context.Context, group string, spec Spec, command string, args json.RawMessage) (json.RawMessage, error) {
	rep, err := h.request(ctx, group, execRequest{Spec: spec, Command: command, Args: args}, spec, command)
	if err != nil {
		return nil, err
	}
	return rep.Result, rep.Error.err()
}

// request sends a request to a group and decodes the reply.
func (h *Hub) request(ctx context.Context, group string, req execRequest, spec Spec, command string) (reply, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return reply{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		lim := spec.Limits.CallTimeout
		if lim <= 0 {
			lim = host.DefaultCallTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lim+5*time.Second)
		defer cancel()
	}
	callErr := func(kind abi.ErrorKind, format string, args ...any) error {
		return &host.CallError{Instance: spec.Info.Name, Plugin: spec.Plugin, Command: command, Err: abi.Errorf(kind, format, args...)}
	}
	msg, err := h.nc.RequestWithContext(ctx, subjectFor(group, req), raw)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return reply{}, callErr(abi.KindUnavailable, "engine group %q has no connected engine", group)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return reply{}, callErr(abi.KindTimeout, "engine group %q did not answer in time", group)
	case errors.Is(err, context.Canceled):
		return reply{}, callErr(abi.KindCanceled, "canceled")
	case err != nil:
		return reply{}, callErr(abi.KindUnavailable, "engine group %q: %v", group, err)
	}
	var rep reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return reply{}, callErr(abi.KindInternalError, "engine group %q: bad reply: %v", group, err)
	}
	h.count(rep.Engine, rep.Error != nil)
	if rep.Error != nil {
		h.log.Debug().Str("engine", rep.Engine).Str("group", group).Str("instance", spec.Info.Name).Str("plugin", spec.Plugin).
			Str("command", command).Str("kind", string(rep.Error.Kind)).Msg("command failed on engine")
	}
	return rep, nil
}

// subjectFor is where a request goes: the group's queue, or for HTTP the
// engine running the instance.
func subjectFor(group string, req execRequest) string {
	if req.HTTP != nil {
		return httpPrefix + group + "." + req.Spec.Info.ID
	}
	return execPrefix + group
}

// HandleHTTP passes an HTTP request to the engine running a long-running
// HTTP instance.
func (h *Hub) HandleHTTP(ctx context.Context, group string, spec Spec, req abi.HTTPRequest) (abi.HTTPResponse, error) {
	rep, err := h.request(ctx, group, execRequest{Spec: spec, Command: abi.ExportHTTP, HTTP: &req}, spec, abi.ExportHTTP)
	if err != nil {
		return abi.HTTPResponse{}, err
	}
	if rep.Error != nil {
		return abi.HTTPResponse{}, rep.Error.err()
	}
	if rep.HTTP == nil {
		return abi.HTTPResponse{}, fmt.Errorf("engine %q: empty HTTP reply", rep.Engine)
	}
	return *rep.HTTP, nil
}

// count records a call an engine answered.
func (h *Hub) count(engine string, failed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.status[engine]; s != nil {
		s.Calls++
		if failed {
			s.Failures++
		}
	}
}
