package service

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/supervisor"
)

// LongRunningOptions configure long-running executions, HTTP requests into
// plugins and chat delivery. Zero fields take the defaults below.
type LongRunningOptions struct {
	// Supervisor tunes restarts (back-off) and the stop deadline; its
	// Logger is replaced by the service's.
	Supervisor supervisor.Config
	// HTTPMaxBodyBytes caps a request body passed to a plugin.
	HTTPMaxBodyBytes int64
	// HTTPTimeout bounds one request into a plugin.
	HTTPTimeout time.Duration
	// HTTPConcurrency caps the requests in flight into one instance; the
	// rest are refused with ErrBusy rather than queued, so a flood cannot
	// pile up bodies in memory while waiting for the pool.
	HTTPConcurrency int
	// ChatInterval is how often new entries of chat-mirrored incidents are
	// delivered to their instances.
	ChatInterval time.Duration
}

// Defaults of LongRunningOptions.
const (
	DefaultHTTPMaxBodyBytes = 1 << 20
	DefaultHTTPTimeout      = 30 * time.Second
	DefaultHTTPConcurrency  = 64
	DefaultChatInterval     = time.Second
)

// Credential params of long-running HTTP plugins, after XSOAR's
// "credentials" parameter: when the password (a secret) is set, the host
// checks every request before the plugin sees it. An identifier of the form
// "_header:<Name>" means the request must carry header <Name> with the
// password as its value; any other identifier means basic auth.
const (
	ParamCredentialsIdentifier = "credentials_identifier"
	ParamCredentialsPassword   = "credentials_password"
	headerAuthPrefix           = "_header:"
)

// withDefaults fills the zero fields.
func (o LongRunningOptions) withDefaults() LongRunningOptions {
	if o.HTTPMaxBodyBytes <= 0 {
		o.HTTPMaxBodyBytes = DefaultHTTPMaxBodyBytes
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = DefaultHTTPTimeout
	}
	if o.HTTPConcurrency <= 0 {
		o.HTTPConcurrency = DefaultHTTPConcurrency
	}
	if o.ChatInterval <= 0 {
		o.ChatInterval = DefaultChatInterval
	}
	return o
}

// LongRunning serves what runs beside commands: the supervised
// long-running executions (their status), HTTP requests into long-running
// HTTP plugins, and the delivery of chat-mirrored entries, which it runs
// every ChatInterval until the service closes.
type LongRunning struct {
	c    *core
	opts LongRunningOptions

	stopChat chan struct{}
	chatDone chan struct{}
	stopOnce sync.Once

	mu       sync.Mutex
	inFlight map[string]int // instance id → HTTP requests being handled
}

// newLongRunning starts the chat delivery loop.
func newLongRunning(c *core, opts LongRunningOptions) *LongRunning {
	lr := &LongRunning{c: c, opts: opts, stopChat: make(chan struct{}), chatDone: make(chan struct{}), inFlight: map[string]int{}}
	go lr.chatLoop()
	return lr
}

// close stops the chat loop (waiting for its pass, bounded by ctx) and
// every execution.
func (lr *LongRunning) close(ctx context.Context) {
	lr.stopOnce.Do(func() { close(lr.stopChat) })
	lr.c.sup.Close(ctx)
	select {
	case <-lr.chatDone:
	case <-ctx.Done():
	}
}

// MaxBodyBytes is the body limit of requests into plugins.
func (lr *LongRunning) MaxBodyBytes() int64 { return lr.opts.HTTPMaxBodyBytes }

// admit counts a request into instance id, or reports that it already has
// HTTPConcurrency in flight; release undoes a successful admit.
func (lr *LongRunning) admit(id string) bool {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.inFlight[id] >= lr.opts.HTTPConcurrency {
		return false
	}
	lr.inFlight[id]++
	return true
}

func (lr *LongRunning) release(id string) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if lr.inFlight[id]--; lr.inFlight[id] <= 0 {
		delete(lr.inFlight, id)
	}
}

// LongRunningStatus is the supervision state of an instance's execution.
type LongRunningStatus struct {
	Supervised bool `json:"supervised"`
	supervisor.Status
	Health store.ModuleHealth `json:"health"`
}

// Status returns the supervision state of an instance's long-running
// execution and its module health.
func (lr *LongRunning) Status(ctx context.Context, name string) (LongRunningStatus, error) {
	rec, err := lr.c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return LongRunningStatus{}, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	st, ok := lr.c.sup.Status(rec.ID)
	h, err := lr.c.st.Health(ctx, rec.ID)
	if err != nil {
		return LongRunningStatus{}, fromStore(err)
	}
	return LongRunningStatus{Supervised: ok, Status: st, Health: h}, nil
}

// HandleHTTP hands an HTTP request to the connhost_http export of
// an enabled long-running HTTP instance exposed by its settings
// (XSOAR /instance/execute/<name>), from its warm pool. An instance that is
// unknown, not exposed or not an HTTP plugin is ErrNotFound; a disabled one
// ErrConflict; wrong credentials ErrUnauthenticated; one with HTTPConcurrency
// requests in flight ErrBusy. The credential header is removed before the
// plugin sees the request. readBody, if not nil, supplies req.Body, and is
// called only once the instance is found and the credentials in
// req.Headers check out: an unknown instance or a wrong password is
// answered without waiting for a (slow) body. Its error is returned as it
// is.
func (lr *LongRunning) HandleHTTP(ctx context.Context, name string, req abi.HTTPRequest, readBody func() ([]byte, error)) (abi.HTTPResponse, error) {
	c := lr.c
	done, err := c.enter()
	if err != nil {
		return abi.HTTPResponse{}, err
	}
	defer done()
	li, release := c.holdNamed(name)
	if li == nil {
		rec, err := c.st.GetInstanceByName(ctx, name)
		if err != nil || !rec.Settings.ExternalHTTP {
			return abi.HTTPResponse{}, fmt.Errorf("instance %q: %w", name, ErrNotFound)
		}
		if li, release, err = c.holdStarted(ctx, rec); err != nil {
			return abi.HTTPResponse{}, err
		}
		if li == nil {
			return abi.HTTPResponse{}, fmt.Errorf("%w: instance %q is disabled", ErrConflict, name)
		}
	}
	defer release()
	rec := li.rec
	if !rec.Settings.ExternalHTTP {
		return abi.HTTPResponse{}, fmt.Errorf("instance %q: %w", name, ErrNotFound)
	}
	if !li.plugin.Manifest.LongRunningHTTP {
		return abi.HTTPResponse{}, fmt.Errorf("instance %q: plugin %s does not serve HTTP: %w", name, li.plugin.Label(), ErrNotFound)
	}
	if err := c.checkCredentials(li, req.Headers); err != nil {
		return abi.HTTPResponse{}, fmt.Errorf("instance %q: %w", name, err)
	}
	if !lr.admit(rec.ID) {
		return abi.HTTPResponse{}, fmt.Errorf("instance %q: %w (long_running.http_concurrency %d)", name, ErrBusy, lr.opts.HTTPConcurrency)
	}
	defer lr.release(rec.ID)
	if readBody != nil {
		if req.Body, err = readBody(); err != nil {
			return abi.HTTPResponse{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, lr.opts.HTTPTimeout)
	defer cancel()
	start := time.Now()
	resp, err := li.inst.HandleHTTP(ctx, req)
	c.observe(name, abi.ExportHTTP, TriggerHTTP, start, err)
	return resp, err
}

// checkCredentials verifies a request against the instance's credential
// params and strips the header that carried them.
func (c *core) checkCredentials(li *liveInstance, headers map[string][]string) error {
	m := li.plugin.Manifest
	if p, ok := m.Param(ParamCredentialsPassword); !ok || p.Type != abi.ParamSecret {
		return nil
	}
	sealed, _ := li.rec.Params[ParamCredentialsPassword].(string)
	if sealed == "" {
		return nil
	}
	password, err := c.box.Open(sealed, secretAD(li.rec.Name, ParamCredentialsPassword))
	if err != nil {
		return fmt.Errorf("param %q: %w", ParamCredentialsPassword, err)
	}
	identifier, _ := li.rec.Params[ParamCredentialsIdentifier].(string)
	if name, ok := strings.CutPrefix(identifier, headerAuthPrefix); ok {
		name = http.CanonicalHeaderKey(name)
		got := headerValue(headers, name)
		deleteHeader(headers, name)
		if !equal(got, password) {
			return ErrUnauthenticated
		}
		return nil
	}
	auth := headerValue(headers, "Authorization")
	deleteHeader(headers, "Authorization")
	user, pass, ok := parseBasic(auth)
	if !ok || !equal(user, identifier) || !equal(pass, password) {
		return ErrUnauthenticated
	}
	return nil
}

// headerValue returns the first value of header name, matching the name
// case-insensitively since clients and proxies may not canonicalise it.
func headerValue(h map[string][]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// deleteHeader removes header name in any case.
func deleteHeader(h map[string][]string, name string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
}

// parseBasic decodes a basic Authorization header.
func parseBasic(auth string) (user, pass string, ok bool) {
	const prefix = "Basic "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(auth[len(prefix):])
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(b), ":")
}

// equal compares secrets in constant time.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
