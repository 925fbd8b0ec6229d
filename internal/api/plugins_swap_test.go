package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/wait"
)

// Two builds of one plugin that differ only in their manifest version.
const (
	oldVersion = "1.0.0"
	newVersion = "1.1.0"
)

func versioned(t testing.TB, name, version string, edit func(*abi.Manifest)) []byte {
	t.Helper()
	return testenv.PluginWithManifest(t, name, func(m *abi.Manifest) {
		m.Version = version
		if edit != nil {
			edit(m)
		}
	})
}

// post sends an authenticated request from any goroutine and returns the
// status and body; a transport error is status 0.
func post(srv *testenv.Server, method, path, contentType string, body []byte, header http.Header) (int, []byte) {
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if req.Header.Get("Authorization") == "" && strings.HasPrefix(path, "/api/") {
		req.Header.Set("Authorization", "Bearer "+srv.Key)
	}
	res, err := srv.HTTP.Client().Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// versionCall runs goecho's version command and returns the version that
// answered.
func versionCall(srv *testenv.Server, instance string) (string, error) {
	status, body := post(srv, http.MethodPost, "/api/v1/instances/"+instance+"/execute", "application/json",
		[]byte(`{"command":"version"}`), nil)
	if status != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", status, body)
	}
	var res struct {
		Result struct {
			Version string `json:"version"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.Result.Version == "" {
		return "", fmt.Errorf("result %s: %v", body, err)
	}
	return res.Result.Version, nil
}

func installWasm(t testing.TB, srv *testenv.Server, wasm []byte, query string) (int, []byte) {
	t.Helper()
	return post(srv, http.MethodPost, "/api/v1/plugins"+query, "application/wasm", wasm, nil)
}

// TestHotSwapUnderLoad swaps goecho 20 times between two versions, by
// install and by rollback, while clients execute commands over HTTP and a
// loop calls the instance as the fetch and mirroring engines do: no call
// fails, each is answered by one of the two versions, and the first call
// after each switch returns is already served by the new version.
func TestHotSwapUnderLoad(t *testing.T) {
	srv := newServer(t, testenv.ServerOptions{})
	v1, v2 := versioned(t, "goecho", oldVersion, nil), versioned(t, "goecho", newVersion, nil)
	if status, body := installWasm(t, srv, v1, ""); status != http.StatusCreated {
		t.Fatalf("install v1: %d %s", status, body)
	}
	srv.CreateInstance("echo", "goecho", nil, store.Settings{})

	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		calls    atomic.Int64
		mu       sync.Mutex
		failures []string
		answered = map[string]int{}
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				v, err := versionCall(srv, "echo")
				calls.Add(1)
				if err != nil {
					fail("client: %v", err)
					continue
				}
				mu.Lock()
				answered[v]++
				mu.Unlock()
			}
		})
	}
	// The engines' path: Target then Call, looked up by name every time.
	wg.Go(func() {
		for ctx.Err() == nil {
			bg := context.Background() // ctx only ends the loop: no call is canceled
			if _, ok := srv.Service.Mirroring.Target(bg, "echo"); !ok {
				fail("engine: instance echo has no target")
			}
			raw, err := srv.Service.Mirroring.Call(bg, "echo", "version", map[string]any{})
			calls.Add(1)
			if err != nil {
				fail("engine call: %v", err)
				continue
			}
			var r struct{ Version string }
			if json.Unmarshal(raw, &r) != nil || (r.Version != oldVersion && r.Version != newVersion) {
				fail("engine call: result %s", raw)
			}
		}
	})

	for i := range 20 {
		want := newVersion
		var status int
		var body []byte
		if i%2 == 0 {
			status, body = installWasm(t, srv, v2, "")
		} else {
			want = oldVersion
			status, body = post(srv, http.MethodPost, "/api/v1/plugins/goecho/rollback", "", nil, nil)
		}
		if status != http.StatusOK && status != http.StatusCreated {
			cancel()
			wg.Wait()
			t.Fatalf("swap %d: %d %s", i, status, body)
		}
		got, err := versionCall(srv, "echo")
		if err != nil || got != want {
			fail("swap %d to %s: first call after the switch answered %q (%v)", i, want, got, err)
		}
		// Let the clients and the engine loop call this version before the next swap.
		n := calls.Load()
		wait.For(t, 20*time.Second, "calls between swaps", func() bool { return calls.Load() >= n+10 })
	}
	cancel()
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d calls failed; first: %s", len(failures), calls.Load(), failures[0])
	}
	if answered[oldVersion] == 0 || answered[newVersion] == 0 || len(answered) != 2 {
		t.Fatalf("answers by version %v, want both and only %s and %s", answered, oldVersion, newVersion)
	}
	t.Logf("%d calls, by version %v", calls.Load(), answered)

	var detail apitypes.PluginDetail
	srv.Must(http.StatusOK, http.MethodGet, "/api/v1/plugins/goecho", nil).Decode(t, &detail)
	for _, v := range detail.Versions {
		if v.Current != (v.Version == oldVersion) || v.InstalledBy != "apikey:test" {
			t.Errorf("version %s: current %v, installedBy %q; want current only %s, by apikey:test", v.Version, v.Current, v.InstalledBy, oldVersion)
		}
	}
	if r := srv.Call(http.MethodPost, "/api/v1/plugins/goecho/rollback", nil); r.Status != http.StatusConflict {
		t.Errorf("rollback with no previous version: %s, want 409", r)
	}
}

// TestHotSwapLongRunning swaps the webhook plugin (install, set-current)
// while clients post webhooks: every request is answered 200 and makes exactly one incident,
// and each swap stops the old long-running execution and starts a new one.
func TestHotSwapLongRunning(t *testing.T) {
	srv := newServer(t, testenv.ServerOptions{})
	v1, v2 := versioned(t, "webhook", oldVersion, nil), versioned(t, "webhook", newVersion, nil)
	if status, body := installWasm(t, srv, v1, ""); status != http.StatusCreated {
		t.Fatalf("install v1: %d %s", status, body)
	}
	srv.CreateInstance("hook", "webhook", nil, store.Settings{LongRunning: true, ExternalHTTP: true})
	started := func() time.Time {
		t.Helper()
		var st service.LongRunningStatus
		wait.For(t, 20*time.Second, "the long-running execution to run", func() bool {
			var err error
			st, err = srv.Service.LongRunning.Status(context.Background(), "hook")
			return err == nil && st.Supervised && st.Running
		})
		return st.Started
	}
	last := started()

	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg     sync.WaitGroup
		ok     atomic.Int64
		failed atomic.Int64
		first  atomic.Value
	)
	for c := range 3 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				status, body := post(srv, http.MethodPost, "/instance/execute/hook", "application/json",
					fmt.Appendf(nil, `{"name":"hook %d-%d"}`, c, n), nil)
				if status == http.StatusOK {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				first.CompareAndSwap(nil, fmt.Sprintf("%d %s", status, body))
			}
		})
	}
	for i := range 6 {
		// Forward by install, back by set-current: sending v1 again would
		// be a refused downgrade.
		status, body := installWasm(t, srv, v2, "")
		if i%2 == 1 {
			r := srv.Call(http.MethodPut, "/api/v1/plugins/webhook/current", map[string]string{"version": oldVersion})
			status, body = r.Status, r.Body
		}
		if status != http.StatusOK && status != http.StatusCreated {
			t.Fatalf("swap %d: %d %s", i, status, body)
		}
		now := started()
		if !now.After(last) {
			t.Fatalf("swap %d: execution started %v, not after the previous start %v", i, now, last)
		}
		last = now
		// Let the new execution answer webhooks before the next swap.
		n := ok.Load() + failed.Load()
		wait.For(t, 20*time.Second, "webhooks between swaps", func() bool { return ok.Load()+failed.Load() >= n+3 })
	}
	cancel()
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d webhook requests failed (of %d); first: %v", n, n+ok.Load(), first.Load())
	}
	incidents := 0
	for q := (service.IncidentQuery{Limit: 1000}); ; {
		page, next, err := srv.Service.Incidents.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		incidents += len(page)
		if next == "" {
			break
		}
		q.Cursor = next
	}
	if int64(incidents) != ok.Load() {
		t.Fatalf("%d incidents for %d answered webhooks", incidents, ok.Load())
	}
	if n := strings.Count(srv.Logs.String(), "long-running execution stopped"); n < 6 {
		t.Errorf("%d long-running executions stopped, want one per swap (6)", n)
	}
	t.Logf("%d webhooks across 6 swaps", ok.Load())
}

// TestWatchDir drops plugin files into the watched directory: the first
// installs, the next swaps the running instance to its version.
func TestWatchDir(t *testing.T) {
	dir := t.TempDir()
	srv := newServer(t, testenv.ServerOptions{Service: func(o *service.Options) { o.WatchDir = dir }})
	drop := func(name string, wasm []byte) {
		t.Helper()
		tmp := filepath.Join(dir, "."+name+".part")
		if err := os.WriteFile(tmp, wasm, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Logs.String())
		}
	})
	drop("goecho.wasm", versioned(t, "goecho", oldVersion, nil))
	wait.For(t, 20*time.Second, "v1 installed", func() bool {
		return srv.Call(http.MethodGet, "/api/v1/plugins/goecho", nil).Status == http.StatusOK
	})
	srv.CreateInstance("echo", "goecho", nil, store.Settings{})
	drop("goecho-1.1.wasm", versioned(t, "goecho", newVersion, nil))
	wait.For(t, 20*time.Second, "instance swapped to v2", func() bool {
		v, err := versionCall(srv, "echo")
		return err == nil && v == newVersion
	})
	var pi service.PluginInfo
	vs, err := srv.Service.Plugins.Versions(context.Background(), "goecho")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Current {
			pi = v
		}
	}
	if pi.Version != newVersion || pi.InstalledBy != "watch:goecho-1.1.wasm" {
		t.Fatalf("current version %+v, want %s installed by watch:goecho-1.1.wasm", pi, newVersion)
	}
}

// TestInstallChecks covers the refusals of the install path: trust
// policy (via header and multipart), downgrade (also of an older build
// still installed, which only set-current brings back), and params that do not fit
// the new manifest, with and without force.
func TestInstallChecks(t *testing.T) {
	key, err := signing.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := signing.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, testenv.ServerOptions{Service: func(o *service.Options) {
		o.Policy = signing.NewPolicy([]signing.PublicKey{key.Public()}, true)
	}})
	withURL := func(m *abi.Manifest) { m.Params = []abi.Param{{Name: "url", Type: abi.ParamString}} }
	v1 := versioned(t, "goecho", oldVersion, withURL)
	v2 := versioned(t, "goecho", newVersion, withURL)
	dropped := versioned(t, "goecho", "1.2.0", nil)
	retyped := versioned(t, "goecho", "1.3.0", func(m *abi.Manifest) { m.Params = []abi.Param{{Name: "url", Type: abi.ParamNumber}} })
	sign := func(k signing.PrivateKey, wasm []byte) []byte {
		t.Helper()
		s, err := signing.SignPlugin(k, wasm)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	header := func(sig []byte) http.Header {
		return http.Header{"X-Connhost-Signature": {base64.StdEncoding.EncodeToString(sig)}}
	}
	multipartBody := func(wasm, sig []byte) (string, []byte) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		for name, data := range map[string][]byte{"wasm": wasm, "minisig": sig} {
			fw, err := w.CreateFormFile(name, name)
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(data)
		}
		w.Close()
		return w.FormDataContentType(), b.Bytes()
	}
	tampered := bytes.Clone(v1)
	tampered[len(tampered)-1] ^= 1

	steps := []struct {
		name   string
		send   func() (int, []byte)
		status int
		detail string
	}{
		{"unsigned with require_signed", func() (int, []byte) { return installWasm(t, srv, v1, "") }, http.StatusForbidden, "require_signed"},
		{"unknown key", func() (int, []byte) {
			return post(srv, http.MethodPost, "/api/v1/plugins", "application/wasm", v1, header(sign(stranger, v1)))
		}, http.StatusForbidden, "unknown key"},
		{"tampered plugin", func() (int, []byte) {
			return post(srv, http.MethodPost, "/api/v1/plugins", "application/wasm", tampered, header(sign(key, v1)))
		}, http.StatusForbidden, "tampered"},
		{"signed v1 by header", func() (int, []byte) {
			return post(srv, http.MethodPost, "/api/v1/plugins", "application/wasm", v1, header(sign(key, v1)))
		}, http.StatusCreated, `"signed":true`},
		{"create instance", func() (int, []byte) {
			r := srv.Call(http.MethodPost, "/api/v1/instances", map[string]any{"name": "echo", "plugin": "goecho", "enabled": true, "params": map[string]any{"url": "https://x"}})
			return r.Status, r.Body
		}, http.StatusCreated, ""},
		{"signed v2 by multipart", func() (int, []byte) {
			ct, body := multipartBody(v2, sign(key, v2))
			return post(srv, http.MethodPost, "/api/v1/plugins", ct, body, nil)
		}, http.StatusCreated, `"switched":["echo"]`},
		{"downgrade", func() (int, []byte) {
			old := versioned(t, "goecho", "0.9.0", withURL)
			return post(srv, http.MethodPost, "/api/v1/plugins", "application/wasm", old, header(sign(key, old)))
		}, http.StatusConflict, "downgrade refused"},
		{"older installed build sent again", func() (int, []byte) {
			return post(srv, http.MethodPost, "/api/v1/plugins", "application/wasm", v1, header(sign(key, v1)))
		}, http.StatusConflict, "downgrade refused: offered version 1.0.0 is older than the current version 1.1.0"},
		{"still on v2 after the old build", func() (int, []byte) {
			v, err := versionCall(srv, "echo")
			if err != nil {
				return 0, []byte(err.Error())
			}
			return http.StatusOK, []byte(v)
		}, http.StatusOK, newVersion},
		{"removed param", func() (int, []byte) {
			return post(srv, http.MethodPost, "/api/v1/plugins", "application/wasm", dropped, header(sign(key, dropped)))
		}, http.StatusConflict, `instance \"echo\" cannot move to plugin goecho@1.2.0: param \"url\" is set but goecho@1.2.0 no longer declares it`},
		{"retyped param refused, version kept installed", func() (int, []byte) {
			return post(srv, http.MethodPost, "/api/v1/plugins", "application/wasm", retyped, header(sign(key, retyped)))
		}, http.StatusConflict, `param \"url\" changes type from string to number`},
		{"still on v2", func() (int, []byte) {
			v, err := versionCall(srv, "echo")
			if err != nil {
				return 0, []byte(err.Error())
			}
			return http.StatusOK, []byte(v)
		}, http.StatusOK, newVersion},
		{"forced", func() (int, []byte) {
			return post(srv, http.MethodPost, "/api/v1/plugins?force=true", "application/wasm", dropped, header(sign(key, dropped)))
		}, http.StatusOK, `"version":"1.2.0"`},
		{"pin back to v2", func() (int, []byte) {
			r := srv.Call(http.MethodPut, "/api/v1/instances/echo/version?force=true", map[string]string{"version": newVersion})
			return r.Status, r.Body
		}, http.StatusOK, `"pinnedVersion":"1.1.0"`},
		{"pinned instance answers v2", func() (int, []byte) {
			v, _ := versionCall(srv, "echo")
			return http.StatusOK, []byte(v)
		}, http.StatusOK, newVersion},
		{"older installed build sent again by multipart", func() (int, []byte) {
			ct, body := multipartBody(v1, sign(key, v1))
			return post(srv, http.MethodPost, "/api/v1/plugins", ct, body, nil)
		}, http.StatusConflict, "offered version 1.0.0 is older than the current version 1.2.0"},
		{"explicit set-current goes back", func() (int, []byte) {
			r := srv.Call(http.MethodPut, "/api/v1/plugins/goecho/current", map[string]string{"version": oldVersion})
			return r.Status, r.Body
		}, http.StatusOK, `"version":"1.0.0"`},
		{"an installed version newer than current is an upgrade", func() (int, []byte) {
			return post(srv, http.MethodPost, "/api/v1/plugins", "application/wasm", v2, header(sign(key, v2)))
		}, http.StatusOK, `"version":"1.1.0"`},
	}
	for _, st := range steps {
		status, body := st.send()
		if status != st.status || !strings.Contains(string(body), st.detail) {
			t.Fatalf("%s: got %d %s; want %d containing %s", st.name, status, body, st.status, st.detail)
		}
	}
}

// BenchmarkInstallToFirstCall measures an install request until the first
// call served by the new version, on a fresh server each time: cold (empty
// compilation cache) and cached (the new version compiled before, by
// another runtime over the same cache directory). Each server is closed
// before the next starts, so earlier ones do not weigh on the heap; the
// median per install is reported beside the mean, which a shared machine's
// stalls dominate.
func BenchmarkInstallToFirstCall(b *testing.B) {
	v1, v2 := versioned(b, "goecho", oldVersion, nil), versioned(b, "goecho", newVersion, nil)
	b.Logf("plugin size %d bytes", len(v2))
	for _, tc := range []struct {
		name   string
		cached bool
	}{{"cold", false}, {"cached", true}} {
		b.Run(tc.name, func(b *testing.B) {
			warm := b.TempDir()
			if tc.cached {
				fillCache(b, warm, v2)
			}
			var took []time.Duration
			for b.Loop() {
				b.StopTimer()
				cache := warm
				if !tc.cached {
					cache = filepath.Join(b.TempDir(), "cold")
				}
				srv, closeSrv := serverWithCache(b, cache)
				if status, body := installWasm(b, srv, v1, ""); status != http.StatusCreated {
					b.Fatalf("install v1: %d %s", status, body)
				}
				on := true
				if _, err := srv.Service.Instances.Create(context.Background(), service.InstanceInput{Name: "echo", Plugin: "goecho", Enabled: &on}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				if status, body := installWasm(b, srv, v2, ""); status != http.StatusCreated {
					b.Fatalf("install v2: %d %s", status, body)
				}
				if v, err := versionCall(srv, "echo"); err != nil || v != newVersion {
					b.Fatalf("first call: %q %v", v, err)
				}
				took = append(took, time.Since(start))
				b.StopTimer()
				closeSrv()
				b.StartTimer()
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
		})
	}
}

// fillCache compiles wasm into the compilation cache dir with a runtime of
// its own, which it closes: what a server started later finds on disk.
func fillCache(b *testing.B, dir string, wasm []byte) {
	b.Helper()
	ctx := context.Background()
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: dir, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	if _, err := rt.Load(ctx, wasm); err != nil {
		b.Fatal(err)
	}
}

// serverWithCache is a server like testenv's whose runtime compiles
// through cacheDir.
func serverWithCache(b *testing.B, cacheDir string) (*testenv.Server, func()) {
	b.Helper()
	ctx := context.Background()
	log := zerolog.Nop()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "db"), store.Options{GCInterval: -1, Tune: testenv.SmallTables})
	if err != nil {
		b.Fatal(err)
	}
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: cacheDir, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	box, err := secrets.New(make([]byte, secrets.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	svc, err := service.New(ctx, service.Options{Store: st, Runtime: rt, Secrets: box, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(api.New(svc, api.Options{Logger: log}).Handler())
	closeAll := sync.OnceFunc(func() {
		hs.Close()
		_ = svc.Close(ctx)
		_ = rt.Close(ctx)
		_ = st.Close()
	})
	b.Cleanup(closeAll)
	key, _, err := svc.APIKeys.Create(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return &testenv.Server{URL: hs.URL, Key: key, HTTP: hs, Store: st, Runtime: rt, Service: svc}, closeAll
}

// TestInstallKeyNamePatterns: a key trusted only for some plugin names
// cannot vouch for another plugin (403 naming the key and the plugin); a
// key without patterns still signs any name.
func TestInstallKeyNamePatterns(t *testing.T) {
	acme, open := newSigningKey(t), newSigningKey(t)
	srv := newServer(t, testenv.ServerOptions{Service: func(o *service.Options) {
		p, err := signing.NewScopedPolicy([]signing.TrustedKey{{Key: acme.Public(), Names: []string{"acme-*"}}, {Key: open.Public()}}, true)
		if err != nil {
			t.Fatal(err)
		}
		o.Policy = p
	}})
	wasm := versioned(t, "goecho", oldVersion, nil)
	send := func(k signing.PrivateKey) (int, []byte) {
		sig, err := signing.SignPlugin(k, wasm)
		if err != nil {
			t.Fatal(err)
		}
		return post(srv, http.MethodPost, "/api/v1/plugins", "application/wasm", wasm,
			http.Header{api.SignatureHeader: {base64.StdEncoding.EncodeToString(sig)}})
	}
	status, body := send(acme)
	if want := `key ID ` + acme.ID.String() + ` may sign only plugins named acme-*, not \"goecho\"`; status != http.StatusForbidden ||
		!strings.Contains(string(body), want) || !strings.Contains(string(body), "goecho@1.0.0") {
		t.Fatalf("signed by a key scoped to acme-*: %d %s; want 403 containing %s", status, body, want)
	}
	if status, body := send(open); status != http.StatusCreated {
		t.Fatalf("signed by an unscoped key: %d %s", status, body)
	}
}

func newSigningKey(t *testing.T) signing.PrivateKey {
	t.Helper()
	k, err := signing.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestPluginSignatureListed: a version lists how it passed the trust
// policy at install.
func TestPluginSignatureListed(t *testing.T) {
	e := newEnv(t, nil)
	e.install("goecho")
	var pd apitypes.PluginDetail
	e.must(http.StatusOK, "GET", "/api/v1/plugins/goecho", nil).decode(t, &pd)
	if len(pd.Versions) != 1 || pd.Versions[0].Signature != "unsigned" || pd.Versions[0].SignedBy != "" {
		t.Fatalf("versions %+v", pd.Versions)
	}
}
