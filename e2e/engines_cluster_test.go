package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/connhost/connhost/internal/engines"
	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// natsCluster starts a three-node NATS JetStream cluster on loopback, built
// from the nats-server module version connhost uses, with NKey users for
// the connhost server and for each engine (name → group) under
// engines.EnginePermissions. It returns the nodes, the client URLs and the
// users' seeds by name ("server" for the server).
func natsCluster(t *testing.T, engs map[string]string) ([]*natsserver.Server, string, map[string][]byte) {
	t.Helper()
	seeds := map[string][]byte{}
	kp, _ := nkeys.CreateUser()
	seeds["server"], _ = kp.Seed()
	pub, _ := kp.PublicKey()
	users := []*natsserver.NkeyUser{{Nkey: pub}}
	for name, group := range engs {
		kp, _ := nkeys.CreateUser()
		seeds[name], _ = kp.Seed()
		pub, _ := kp.PublicKey()
		users = append(users, &natsserver.NkeyUser{Nkey: pub, Permissions: engines.EnginePermissions(name, group)})
	}
	var ports []int
	var lns []net.Listener
	for range 6 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		lns = append(lns, ln)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	var routes []*url.URL
	for i := range 3 {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[3+i])})
	}
	var nodes []*natsserver.Server
	var urls []string
	for i := range 3 {
		ns, err := natsserver.NewServer(&natsserver.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: ports[i], JetStream: true, StoreDir: t.TempDir(),
			NoSigs: true, NoLog: true, MaxPayload: 16 << 20, Nkeys: users,
			Cluster: natsserver.ClusterOpts{Name: "connhost-e2e", Host: "127.0.0.1", Port: ports[3+i]}, Routes: routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		t.Cleanup(ns.Shutdown)
		nodes = append(nodes, ns)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	wait.For(t, 60*time.Second, "JetStream meta leader", func() bool {
		for _, ns := range nodes {
			if ns.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return nodes, strings.Join(urls, ","), seeds
}

// TestEnginesExternalCluster runs engines against an external three-node
// NATS JetStream cluster: `connhost serve` with engines.nats_url and
// buckets replicated three times, two engines of a group serving an
// instance, enrollment refused (the cluster's operator issues
// credentials), and everything going on after one NATS node is lost: the
// commands and the long-running execution, which runs on one engine.
func TestEnginesExternalCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster, a server and two engine processes")
	}
	nodes, urls, seeds := natsCluster(t, map[string]string{"c1": "dmz", "c2": "dmz"})
	dir := t.TempDir()
	seedFile := filepath.Join(dir, "server.seed")
	if err := os.WriteFile(seedFile, seeds["server"], 0o600); err != nil {
		t.Fatal(err)
	}
	s := startEngineServer(t, "--engines-nats-url", urls, "--engines-nats-seed-file", seedFile, "--engines-replicas", "3")
	if code := s.call(http.MethodPost, "/engines", map[string]any{"name": "c3", "group": "dmz"}, nil); code != http.StatusConflict {
		t.Fatalf("enroll on an external cluster: %d, want 409", code)
	}
	procs := map[string]*engineProc{}
	for _, name := range []string{"c1", "c2"} {
		creds := filepath.Join(dir, name+".creds")
		raw, _ := json.Marshal(map[string]any{"name": name, "group": "dmz", "url": urls, "seed": string(seeds[name])})
		if err := os.WriteFile(creds, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := startEngine(t, name, creds)
		if err != nil {
			t.Fatal(err)
		}
		procs[name] = p
	}
	// An engine with a key the cluster does not know is refused.
	kp, _ := nkeys.CreateUser()
	impostorSeed, _ := kp.Seed()
	impostor := filepath.Join(dir, "impostor.creds")
	raw, _ := json.Marshal(map[string]any{"name": "c9", "group": "dmz", "url": urls, "seed": string(impostorSeed)})
	if err := os.WriteFile(impostor, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := startEngine(t, "c9", impostor); err == nil {
		t.Fatal("an engine with a key the cluster does not know was admitted")
	}
	wasm, err := wasmbuild.Build(t.Context(), wasmbuild.Source{Path: "e2e/testdata/engineprobe"})
	if err != nil {
		t.Fatal(err)
	}
	s.call(http.MethodPost, "/plugins", wasm, &map[string]any{})
	s.call(http.MethodPost, "/instances", map[string]any{"name": "probe", "plugin": "engineprobe", "enabled": true,
		"settings": map[string]any{"engine_group": "dmz"}}, &map[string]any{})
	var lr map[string]any
	s.call(http.MethodPost, "/instances", map[string]any{"name": "lr", "plugin": "engineprobe", "enabled": true,
		"settings": map[string]any{"engine_group": "dmz", "longRunning": true}}, &lr)
	for i := range 30 {
		if code, out := s.execute("probe", "echo", map[string]any{"i": i}); code != http.StatusOK {
			t.Fatalf("echo %d: %d %v", i, code, out)
		}
	}
	if es := s.engines(); es["c1"].Calls == 0 || es["c2"].Calls == 0 {
		t.Fatalf("commands not served by both engines: %+v", es)
	}
	ticks := func() float64 {
		var c struct {
			Context map[string]any `json:"context"`
		}
		s.call(http.MethodGet, "/instances/lr/context", nil, &c)
		n, _ := c.Context["ticks"].(float64)
		return n
	}
	wait.For(t, 20*time.Second, "long-running execution ticking", func() bool { return ticks() >= 3 })

	// Lose one NATS node.
	nodes[1].Shutdown()
	wait.For(t, 30*time.Second, "commands served after losing a node", func() bool {
		code, _ := s.execute("probe", "echo", map[string]any{"i": -1})
		return code == http.StatusOK
	})
	for i := range 20 {
		if code, out := s.execute("probe", "bump", nil); code != http.StatusOK {
			t.Fatalf("bump %d after losing a node: %d %v", i, code, out)
		}
	}
	before := ticks()
	wait.For(t, 20*time.Second, "long-running execution still ticking", func() bool { return ticks() >= before+3 })
	holders := 0
	for _, e := range s.engines() {
		holders += len(e.LongRunning)
	}
	if holders != 1 {
		t.Fatalf("%d engines hold the long-running lease, want 1: %+v", holders, s.engines())
	}

	// As with the embedded server: the engine holding the long-running
	// execution is SIGKILLed and the other takes over, then a hot swap
	// under load fails no call, all on the two remaining NATS nodes.
	failover(t, s, procs, lr["id"].(string))
	hotSwapUnderLoad(t, s)
}
