package engines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/testenv/wait"
)

// freePorts returns n free loopback ports.
func freePorts(t testing.TB, n int) []int {
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
		defer ln.Close()
	}
	return out
}

// cluster starts a three-node NATS JetStream cluster on loopback from the
// nats-server module, with NKey users: the connhost server (everything)
// and each engine with EnginePermissions.
func cluster(t *testing.T, serverPub string, engines map[string][2]string) ([]*server.Server, string) {
	t.Helper()
	ports := freePorts(t, 6)
	users := []*server.NkeyUser{{Nkey: serverPub}}
	for pub, ng := range engines {
		users = append(users, &server.NkeyUser{Nkey: pub, Permissions: EnginePermissions(ng[0], ng[1])})
	}
	var routes []*url.URL
	for i := range 3 {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[3+i])})
	}
	var nodes []*server.Server
	var urls []string
	for i := range 3 {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: ports[i], JetStream: true, StoreDir: t.TempDir(),
			NoSigs: true, NoLog: true, MaxPayload: maxPayload, Nkeys: users,
			Cluster: server.ClusterOpts{Name: "connhost", Host: "127.0.0.1", Port: ports[3+i]}, Routes: routes,
		}
		ns, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		t.Cleanup(ns.Shutdown)
		nodes = append(nodes, ns)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	for _, ns := range nodes {
		if !ns.ReadyForConnections(20 * time.Second) {
			t.Fatal("cluster node not ready")
		}
	}
	wait.For(t, 60*time.Second, "JetStream meta leader", func() bool {
		for _, ns := range nodes {
			if ns.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return nodes, strings.Join(urls, ",")
}

// TestExternalCluster: the hub and two engines on an external three-node
// JetStream cluster (buckets replicated three times) serve commands with
// host functions; enrolling is refused; losing one NATS node leaves
// commands working.
func TestExternalCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	ctx := t.Context()
	skp, _ := nkeys.CreateUser()
	sseed, _ := skp.Seed()
	spub, _ := skp.PublicKey()
	seeds := map[string][]byte{}
	engs := map[string][2]string{}
	for _, n := range []string{"x1", "x2"} {
		kp, _ := nkeys.CreateUser()
		seeds[n], _ = kp.Seed()
		pub, _ := kp.PublicKey()
		engs[pub] = [2]string{n, "dmz"}
	}
	nodes, urls := cluster(t, spub, engs)

	var hub *Hub
	wait.For(t, 60*time.Second, "hub buckets created on the cluster", func() bool {
		h, err := StartHub(ctx, HubOptions{URL: urls, Seed: sseed, Replicas: 3, Logger: zerolog.Nop()})
		if err != nil {
			t.Logf("hub: %v", err)
			return false
		}
		hub = h
		return true
	})
	t.Cleanup(hub.Close)
	// Plugin files are read from the stream's leader, not from any replica
	// (see leaderReads): an engine told to run a version must find it.
	js, err := jetstream.New(hub.nc)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := js.Stream(ctx, PluginsStream); err != nil || st.CachedInfo().Config.AllowDirect {
		t.Fatalf("plugins stream answers direct gets from any replica (%v)", err)
	}
	be := &backend{svc: host.NewMemServices(), groups: map[string]string{}}
	hub.Attach(be)
	f := &fixture{hub: hub, be: be}
	base := newFixture(t)
	f.rt, f.wasm = base.rt, base.wasm
	if _, _, err := hub.Enroll(ctx, "x3", "dmz"); !errors.Is(err, ErrExternal) {
		t.Fatalf("enroll on an external cluster: %v", err)
	}
	for _, n := range []string{"x1", "x2"} {
		e, err := Connect(ctx, EngineOptions{URL: urls, Name: n, Group: "dmz", Seed: seeds[n], Runtime: f.rt, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close(context.Background()) })
	}
	sp := f.spec(t, "c1", "dmz")
	bump := func(want int) {
		t.Helper()
		res, err := hub.Execute(ctx, "dmz", sp, "bump", json.RawMessage(`{}`))
		if err != nil || string(res) != fmt.Sprintf(`{"count":%d}`, want) {
			t.Fatalf("bump %d: %s %v", want, res, err)
		}
	}
	for i := 1; i <= 6; i++ {
		bump(i)
	}
	wait.For(t, 10*time.Second, "both engines listed by their heartbeats", func() bool {
		st := hub.Engines()
		return len(st) == 2 && st[0].Connected && st[1].Connected
	})
	// Lose one node: clients reconnect to the others; commands and the
	// host functions behind them go on.
	nodes[0].Shutdown()
	wait.For(t, time.Minute, "commands served after losing a node", func() bool {
		_, err := hub.Execute(ctx, "dmz", sp, "echo", json.RawMessage(`{}`))
		return err == nil
	})
	v, _, err := be.svc.IntegrationContext(ctx, sp.Info)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := v["count"].(float64)
	for i := 1; i <= 5; i++ {
		bump(int(n) + i)
	}
}
