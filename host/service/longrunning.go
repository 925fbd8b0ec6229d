package service

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/supervisor"
	"github.com/connhost/connhost/store"
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
	// ChatInterval is how often new entries of chat-mirrored incidents are
	// delivered to their instances.
	ChatInterval time.Duration
}

// Defaults of LongRunningOptions.
const (
	DefaultHTTPMaxBodyBytes = 1 << 20
	DefaultHTTPTimeout      = 30 * time.Second
	DefaultChatInterval     = time.Second
)

// longRunCallTimeout is the call timeout of a long-running execution's
// sandbox: the execution is meant to run until stopped.
const longRunCallTimeout = 100 * 365 * 24 * time.Hour

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

// ErrUnauthenticated is returned by ServeInstanceHTTP for a request with
// missing or wrong credentials.
var ErrUnauthenticated = errors.New("missing or wrong credentials")

// longRunning is the service's supervisor and chat delivery loop.
type longRunning struct {
	opts LongRunningOptions
	sup  *supervisor.Supervisor

	stopChat chan struct{}
	chatDone chan struct{}
	stopOnce sync.Once
}

func newLongRunning(s *Service, opts LongRunningOptions) *longRunning {
	if opts.HTTPMaxBodyBytes <= 0 {
		opts.HTTPMaxBodyBytes = DefaultHTTPMaxBodyBytes
	}
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = DefaultHTTPTimeout
	}
	if opts.ChatInterval <= 0 {
		opts.ChatInterval = DefaultChatInterval
	}
	opts.Supervisor.Logger = s.log
	lr := &longRunning{opts: opts, sup: supervisor.New(opts.Supervisor, s.st),
		stopChat: make(chan struct{}), chatDone: make(chan struct{})}
	go s.chatLoop(lr)
	return lr
}

// close stops every execution and the chat loop.
func (lr *longRunning) close(ctx context.Context) {
	lr.stopOnce.Do(func() { close(lr.stopChat) })
	lr.sup.Close(ctx)
	select {
	case <-lr.chatDone:
	case <-ctx.Done():
	}
}

// HTTPMaxBodyBytes is the body limit of requests into plugins.
func (s *Service) HTTPMaxBodyBytes() int64 { return s.lr.opts.HTTPMaxBodyBytes }

// wantsLongRun reports whether an instance runs long-running-execution: its
// plugin declares longRunning and the operator turned the setting on.
func wantsLongRun(m *abi.Manifest, rec store.Instance) bool {
	return m.LongRunning && rec.Settings.LongRunning
}

// startLongRunning starts the supervised execution of a started instance,
// when it wants one.
func (s *Service) startLongRunning(ctx context.Context, rec store.Instance, p *host.Plugin) error {
	if !wantsLongRun(p.Manifest, rec) {
		return nil
	}
	info := abi.InstanceInfo{ID: rec.ID, Name: rec.Name, Brand: rec.Plugin}
	if err := s.lr.sup.Start(ctx, info, s.longRunSandbox(rec)); err != nil {
		return fmt.Errorf("instance %q plugin %s: start long-running execution: %w", rec.Name, p.Label(), err)
	}
	return nil
}

// stopLongRunning stops an instance's execution, if any, within the
// supervisor's stop deadline.
func (s *Service) stopLongRunning(ctx context.Context, rec store.Instance) {
	if s.lr.sup.Stop(ctx, rec.ID) {
		s.log.Info().Str("instance", rec.Name).Str("plugin", rec.Plugin).Msg("long-running execution stopped")
	}
}

// longRunSandbox returns the factory of the dedicated sandbox of an
// instance's execution: one module instance, no practical call timeout.
func (s *Service) longRunSandbox(rec store.Instance) supervisor.Factory {
	return func(ctx context.Context) (*host.Instance, error) {
		pv, err := s.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
		if err != nil {
			return nil, err
		}
		p, err := s.loadPlugin(ctx, pv)
		if err != nil {
			return nil, err
		}
		params, err := s.openParams(p.Manifest, rec)
		if err != nil {
			return nil, err
		}
		lim := s.limitsFor(rec.Settings)
		lim.CallTimeout, lim.PoolSize = longRunCallTimeout, 1
		inst, err := s.rt.NewInstance(ctx, p, host.InstanceSpec{
			Info:     abi.InstanceInfo{ID: rec.ID, Name: rec.Name, Brand: rec.Plugin},
			Params:   params,
			Services: hostServices{s},
			Egress:   rec.Settings.Egress,
			Limits:   lim,
		})
		if err != nil {
			return nil, fmt.Errorf("instance %q plugin %s: %w", rec.Name, p.Label(), err)
		}
		return inst, nil
	}
}

// LongRunningStatus is the supervision state of an instance's execution.
type LongRunningStatus struct {
	Supervised bool `json:"supervised"`
	supervisor.Status
	Health store.ModuleHealth `json:"health"`
}

// LongRunning returns the supervision state of an instance's long-running
// execution and its module health.
func (s *Service) LongRunning(ctx context.Context, name string) (LongRunningStatus, error) {
	rec, err := s.st.GetInstanceByName(ctx, name)
	if err != nil {
		return LongRunningStatus{}, fmt.Errorf("instance %q: %w", name, err)
	}
	st, ok := s.lr.sup.Status(rec.ID)
	h, err := s.st.Health(ctx, rec.ID)
	if err != nil {
		return LongRunningStatus{}, err
	}
	return LongRunningStatus{Supervised: ok, Status: st, Health: h}, nil
}

// ServeInstanceHTTP hands an HTTP request to the connhost_http export of
// an enabled long-running HTTP instance exposed by its settings
// (XSOAR /instance/execute/<name>), from its warm pool. An instance that is
// unknown, not exposed or not an HTTP plugin is ErrNotFound; a disabled one
// ErrConflict; wrong credentials ErrUnauthenticated. The credential header
// is removed before the plugin sees the request.
func (s *Service) ServeInstanceHTTP(ctx context.Context, name string, req abi.HTTPRequest) (abi.HTTPResponse, error) {
	done, err := s.enter()
	if err != nil {
		return abi.HTTPResponse{}, err
	}
	defer done()
	rec, err := s.st.GetInstanceByName(ctx, name)
	if err != nil || !rec.Settings.ExternalHTTP {
		return abi.HTTPResponse{}, fmt.Errorf("instance %q: %w", name, ErrNotFound)
	}
	li, release := s.hold(rec.ID)
	defer release()
	if li == nil {
		return abi.HTTPResponse{}, fmt.Errorf("%w: instance %q is disabled", ErrConflict, name)
	}
	if !li.plugin.Manifest.LongRunningHTTP {
		return abi.HTTPResponse{}, fmt.Errorf("instance %q: plugin %s does not serve HTTP: %w", name, li.plugin.Label(), ErrNotFound)
	}
	if err := s.checkCredentials(li, req.Headers); err != nil {
		return abi.HTTPResponse{}, fmt.Errorf("instance %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.lr.opts.HTTPTimeout)
	defer cancel()
	return li.inst.HandleHTTP(ctx, req)
}

// checkCredentials verifies a request against the instance's credential
// params and strips the header that carried them.
func (s *Service) checkCredentials(li *liveInstance, headers map[string][]string) error {
	m := li.plugin.Manifest
	if p, ok := m.Param(ParamCredentialsPassword); !ok || p.Type != abi.ParamSecret {
		return nil
	}
	sealed, _ := li.rec.Params[ParamCredentialsPassword].(string)
	if sealed == "" {
		return nil
	}
	password, err := s.box.Open(sealed, secretAD(li.rec.Name, ParamCredentialsPassword))
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

func deleteHeader(h map[string][]string, name string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
}

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

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
