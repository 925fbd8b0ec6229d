package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/store"
)

// hostServices implements host.Services over the store: what a connector
// does through the ABI lands in the server's records.
type hostServices struct{ s *Service }

var _ host.Services = hostServices{}

// typed maps store errors to the ABI error kinds a guest sees.
func typed(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrConflict):
		return abi.Errorf(abi.KindConflict, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return abi.Errorf(abi.KindNotFound, "%v", err)
	case errors.Is(err, store.ErrInvalid):
		return abi.Errorf(abi.KindBadRequest, "%v", err)
	}
	return err
}

func (h hostServices) IntegrationContext(ctx context.Context, inst abi.InstanceInfo) (map[string]any, int64, error) {
	v, ver, err := h.s.st.GetContext(ctx, inst.ID)
	return v, ver, typed(err)
}

func (h hostServices) SetIntegrationContext(ctx context.Context, inst abi.InstanceInfo, value map[string]any, version int64) (int64, error) {
	if value == nil {
		value = map[string]any{}
	}
	v, err := h.s.st.SetContext(ctx, inst.ID, value, version)
	return v, typed(err)
}

func (h hostServices) CacheGet(ctx context.Context, inst abi.InstanceInfo, key string) (json.RawMessage, bool, error) {
	v, ok, err := h.s.st.CacheGet(ctx, inst.ID, key)
	return v, ok, typed(err)
}

func (h hostServices) CacheSet(ctx context.Context, inst abi.InstanceInfo, key string, value json.RawMessage, ttl time.Duration) error {
	return typed(h.s.st.CacheSet(ctx, inst.ID, key, value, ttl))
}

func (h hostServices) CacheDelete(ctx context.Context, inst abi.InstanceInfo, key string) error {
	return typed(h.s.st.CacheDelete(ctx, inst.ID, key))
}

func (h hostServices) LastRun(ctx context.Context, inst abi.InstanceInfo) (map[string]any, error) {
	v, err := h.s.st.LastRun(ctx, inst.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return v, typed(err)
}

func (h hostServices) SetLastRun(ctx context.Context, inst abi.InstanceInfo, value map[string]any) error {
	return typed(h.s.st.SetLastRun(ctx, inst.ID, value))
}

func (h hostServices) LastMirrorRun(ctx context.Context, inst abi.InstanceInfo) (map[string]any, error) {
	v, err := h.s.st.LastMirrorRun(ctx, inst.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return v, typed(err)
}

func (h hostServices) SetLastMirrorRun(ctx context.Context, inst abi.InstanceInfo, value map[string]any) error {
	return typed(h.s.st.SetLastMirrorRun(ctx, inst.ID, value))
}

func (h hostServices) AddEntry(ctx context.Context, inst abi.InstanceInfo, req abi.AddEntryRequest) (string, error) {
	if req.IncidentID == "" {
		return "", abi.Errorf(abi.KindBadRequest, "add_entry: incident_id is required")
	}
	e := store.EntryFromABI(req.IncidentID, store.OriginPluginPrefix+inst.Name, req.Entry)
	if e.Type == 0 {
		e.Type = abi.EntryNote
	}
	e.User, e.Footer = req.Username, req.Footer
	out, err := h.s.st.AddEntries(ctx, []store.Entry{e})
	if err != nil {
		return "", typed(err)
	}
	return out[0].ID, nil
}

func (h hostServices) CreateIncidents(ctx context.Context, inst abi.InstanceInfo, req abi.CreateIncidentsRequest) ([]string, error) {
	rec, err := h.s.st.GetInstance(ctx, inst.ID)
	if err != nil {
		return nil, typed(err)
	}
	incs, err := h.s.incidentsFromABI(rec, req.Incidents)
	if err != nil {
		return nil, abi.Errorf(abi.KindBadRequest, "create_incidents: %v", err)
	}
	if req.UserID != "" {
		for i := range incs {
			if incs[i].Owner == "" {
				incs[i].Owner = req.UserID
			}
		}
	}
	var created []store.Incident
	if req.LastRun != nil {
		created, err = h.s.st.CreateIncidentsWithLastRun(ctx, inst.ID, incs, req.LastRun)
	} else {
		created, err = h.s.st.CreateIncidents(ctx, incs)
	}
	if err != nil {
		return nil, typed(err)
	}
	ids := make([]string, len(created))
	for i, c := range created {
		ids[i] = c.ID
	}
	return ids, nil
}

func (h hostServices) FindUser(ctx context.Context, _ abi.InstanceInfo, req abi.FindUserRequest) (*abi.User, error) {
	if req.Username == "" && req.Email == "" {
		return nil, abi.Errorf(abi.KindBadRequest, "find_user: username or email is required")
	}
	u, err := h.s.st.FindUser(ctx, req.Username, req.Email)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a := u.ABI()
	return &a, nil
}

// HandleEntitlement records a user's answer to a question the incident's
// war room asked, as an entry.
func (h hostServices) HandleEntitlement(ctx context.Context, inst abi.InstanceInfo, req abi.EntitlementRequest) error {
	return h.s.handleEntitlement(ctx, inst, req)
}

func (h hostServices) UpdateModuleHealth(ctx context.Context, inst abi.InstanceInfo, health abi.ModuleHealth) error {
	return typed(h.s.st.SetHealth(ctx, inst.ID, health.Message, health.IsError))
}

func (h hostServices) MirrorInvestigation(ctx context.Context, inst abi.InstanceInfo, req abi.MirrorInvestigationRequest) error {
	return h.s.mirrorInvestigation(ctx, inst, req)
}

func (h hostServices) DirectMessage(ctx context.Context, inst abi.InstanceInfo, req abi.DirectMessageRequest) (string, error) {
	return h.s.directMessage(ctx, inst, req)
}

// APIKeyView is an API key as listed: never the key or its hash.
type APIKeyView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Prefix   string    `json:"prefix"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"lastUsed,omitzero"`
	Revoked  bool      `json:"revoked,omitempty"`
}

func keyView(k store.APIKey) APIKeyView {
	return APIKeyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Created: k.Created, LastUsed: k.LastUsed, Revoked: k.Revoked}
}

// ErrUnauthorized is returned by Authenticate for a missing, unknown or
// revoked key.
var ErrUnauthorized = errors.New("invalid or revoked API key")

// CreateAPIKey makes a new key and returns it in clear, the only time it is
// shown.
func (s *Service) CreateAPIKey(ctx context.Context, name string) (string, APIKeyView, error) {
	if !instanceNameRe.MatchString(name) {
		return "", APIKeyView{}, fmt.Errorf("%w: key name %q: want letters, digits, '.', '_' or '-'", ErrInvalid, name)
	}
	key, err := newAPIKey()
	if err != nil {
		return "", APIKeyView{}, err
	}
	k, err := s.st.CreateAPIKey(ctx, store.APIKey{Name: name, Hash: HashAPIKey(key), Prefix: key[:len(apiKeyPrefix)+6]})
	if err != nil {
		return "", APIKeyView{}, err
	}
	return key, keyView(k), nil
}

// ListAPIKeys lists keys without their secrets.
func (s *Service) ListAPIKeys(ctx context.Context) ([]APIKeyView, error) {
	ks, err := s.st.ListAPIKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]APIKeyView, len(ks))
	for i, k := range ks {
		out[i] = keyView(k)
	}
	return out, nil
}

// RevokeAPIKey revokes a key by id.
func (s *Service) RevokeAPIKey(ctx context.Context, id string) error {
	if err := s.st.RevokeAPIKey(ctx, id); err != nil {
		return fmt.Errorf("API key %q: %w", id, err)
	}
	return nil
}

// Authenticate returns the key a bearer token belongs to.
func (s *Service) Authenticate(ctx context.Context, token string) (APIKeyView, error) {
	if token == "" {
		return APIKeyView{}, ErrUnauthorized
	}
	k, err := s.st.APIKeyByHash(ctx, HashAPIKey(token))
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.Revoked) {
		return APIKeyView{}, ErrUnauthorized
	}
	if err != nil {
		return APIKeyView{}, err
	}
	_ = s.st.TouchAPIKey(ctx, k.ID)
	return keyView(k), nil
}

// EnsureAPIKey creates a key named "bootstrap" when no usable key exists,
// and returns it in clear; otherwise it returns "".
func (s *Service) EnsureAPIKey(ctx context.Context) (string, error) {
	ks, err := s.st.ListAPIKeys(ctx)
	if err != nil {
		return "", err
	}
	for _, k := range ks {
		if !k.Revoked {
			return "", nil
		}
	}
	key, _, err := s.CreateAPIKey(ctx, "bootstrap")
	return key, err
}
