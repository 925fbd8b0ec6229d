package service

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/store"
)

// hostServices implements host.Services over the store: what a connector
// does through the ABI lands in the server's records. The chat functions
// (mirror_investigation, handle_entitlement_for_user, direct_message) are
// in chat.go.
type hostServices struct{ c *core }

var _ host.Services = hostServices{}

func (h hostServices) IntegrationContext(ctx context.Context, inst abi.InstanceInfo) (map[string]any, int64, error) {
	v, ver, err := h.c.st.GetContext(ctx, inst.ID)
	return v, ver, typed(err)
}

func (h hostServices) SetIntegrationContext(ctx context.Context, inst abi.InstanceInfo, value map[string]any, version int64) (int64, error) {
	if value == nil {
		value = map[string]any{}
	}
	v, err := h.c.st.SetContext(ctx, inst.ID, value, version)
	return v, typed(err)
}

func (h hostServices) CacheGet(ctx context.Context, inst abi.InstanceInfo, key string) (json.RawMessage, bool, error) {
	v, ok, err := h.c.st.CacheGet(ctx, inst.ID, key)
	return v, ok, typed(err)
}

func (h hostServices) CacheSet(ctx context.Context, inst abi.InstanceInfo, key string, value json.RawMessage, ttl time.Duration) error {
	return typed(h.c.st.CacheSet(ctx, inst.ID, key, value, ttl))
}

func (h hostServices) CacheDelete(ctx context.Context, inst abi.InstanceInfo, key string) error {
	return typed(h.c.st.CacheDelete(ctx, inst.ID, key))
}

func (h hostServices) LastRun(ctx context.Context, inst abi.InstanceInfo) (map[string]any, error) {
	v, err := h.c.st.LastRun(ctx, inst.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return v, typed(err)
}

func (h hostServices) SetLastRun(ctx context.Context, inst abi.InstanceInfo, value map[string]any) error {
	return typed(h.c.st.SetLastRun(ctx, inst.ID, value))
}

func (h hostServices) LastMirrorRun(ctx context.Context, inst abi.InstanceInfo) (map[string]any, error) {
	v, err := h.c.st.LastMirrorRun(ctx, inst.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return v, typed(err)
}

func (h hostServices) SetLastMirrorRun(ctx context.Context, inst abi.InstanceInfo, value map[string]any) error {
	return typed(h.c.st.SetLastMirrorRun(ctx, inst.ID, value))
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
	out, err := h.c.st.AddEntries(ctx, []store.Entry{e})
	if err != nil {
		return "", typed(err)
	}
	return out[0].ID, nil
}

func (h hostServices) CreateIncidents(ctx context.Context, inst abi.InstanceInfo, req abi.CreateIncidentsRequest) ([]string, error) {
	rec, m, err := h.c.instanceOf(ctx, inst.ID)
	if err != nil {
		return nil, typed(err)
	}
	incs, err := incidentsFromABI(rec, m, req.Incidents)
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
		created, err = h.c.st.CreateIncidentsWithLastRun(ctx, inst.ID, incs, req.LastRun)
	} else {
		created, err = h.c.st.CreateIncidents(ctx, incs)
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
	u, err := h.c.st.FindUser(ctx, req.Username, req.Email)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a := u.ABI()
	return &a, nil
}

func (h hostServices) UpdateModuleHealth(ctx context.Context, inst abi.InstanceInfo, health abi.ModuleHealth) error {
	return typed(h.c.st.SetHealth(ctx, inst.ID, health.Message, health.IsError))
}
