package host

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/connhost/connhost/abi"
)

// MemServices is an in-memory Services for tests and the local runner. It is
// safe for concurrent use. Values are copied in and out, so callers never
// share maps with it.
type MemServices struct {
	// Now is the clock used for cache TTLs; tests may replace it before use.
	Now func() time.Time

	mu          sync.Mutex
	contexts    map[string]versioned
	cache       map[string]map[string]cacheEntry
	lastRun     map[string]map[string]any
	lastMirror  map[string]map[string]any
	entries     []EntryRecord
	incidents   []IncidentRecord
	users       []abi.User
	health      map[string]abi.ModuleHealth
	mirrors     []MirrorRecord
	entitlement []EntitlementRecord
	nextID      int
}

type versioned struct {
	value   map[string]any
	version int64
}

type cacheEntry struct {
	value   json.RawMessage
	expires time.Time // zero: never
}

// EntryRecord is a war-room entry written through AddEntry.
type EntryRecord struct {
	Instance string // instance id
	ID       string
	abi.AddEntryRequest
}

// IncidentRecord is an incident created through CreateIncidents.
type IncidentRecord struct {
	Instance string // instance id
	ID       string
	abi.Incident
}

// MirrorRecord is a MirrorInvestigation call.
type MirrorRecord struct {
	Instance string
	abi.MirrorInvestigationRequest
}

// EntitlementRecord is a HandleEntitlement call.
type EntitlementRecord struct {
	Instance string
	abi.EntitlementRequest
}

// NewMemServices returns an empty MemServices using the system clock.
func NewMemServices() *MemServices {
	return &MemServices{
		Now:        time.Now,
		contexts:   map[string]versioned{},
		cache:      map[string]map[string]cacheEntry{},
		lastRun:    map[string]map[string]any{},
		lastMirror: map[string]map[string]any{},
		health:     map[string]abi.ModuleHealth{},
	}
}

// clone deep-copies a JSON-like map through encoding/json.
func clone(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func (s *MemServices) id() string {
	s.nextID++
	return strconv.Itoa(s.nextID)
}

// IntegrationContext implements Services.
func (s *MemServices) IntegrationContext(_ context.Context, inst abi.InstanceInfo) (map[string]any, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.contexts[inst.ID]
	return clone(v.value), v.version, nil
}

// SetIntegrationContext implements Services: a compare-and-set on version,
// or an unconditional write for version -1.
func (s *MemServices) SetIntegrationContext(_ context.Context, inst abi.InstanceInfo, value map[string]any, version int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.contexts[inst.ID]
	if version != -1 && version != cur.version {
		return 0, abi.Errorf(abi.KindConflict, "integration context of instance %q: version %d is stale (stored %d)", inst.Name, version, cur.version)
	}
	s.contexts[inst.ID] = versioned{value: clone(value), version: cur.version + 1}
	return cur.version + 1, nil
}

// CacheGet implements Services.
func (s *MemServices) CacheGet(_ context.Context, inst abi.InstanceInfo, key string) (json.RawMessage, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cache[inst.ID][key]
	if !ok || (!e.expires.IsZero() && !s.Now().Before(e.expires)) {
		return nil, false, nil
	}
	return append(json.RawMessage(nil), e.value...), true, nil
}

// CacheSet implements Services.
func (s *MemServices) CacheSet(_ context.Context, inst abi.InstanceInfo, key string, value json.RawMessage, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := cacheEntry{value: append(json.RawMessage(nil), value...)}
	if ttl > 0 {
		e.expires = s.Now().Add(ttl)
	}
	if s.cache[inst.ID] == nil {
		s.cache[inst.ID] = map[string]cacheEntry{}
	}
	s.cache[inst.ID][key] = e
	return nil
}

// CacheDelete implements Services.
func (s *MemServices) CacheDelete(_ context.Context, inst abi.InstanceInfo, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache[inst.ID], key)
	return nil
}

// LastRun implements Services.
func (s *MemServices) LastRun(_ context.Context, inst abi.InstanceInfo) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.lastRun[inst.ID]), nil
}

// SetLastRun implements Services.
func (s *MemServices) SetLastRun(_ context.Context, inst abi.InstanceInfo, value map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastRun[inst.ID] = clone(value)
	return nil
}

// LastMirrorRun implements Services.
func (s *MemServices) LastMirrorRun(_ context.Context, inst abi.InstanceInfo) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.lastMirror[inst.ID]), nil
}

// SetLastMirrorRun implements Services.
func (s *MemServices) SetLastMirrorRun(_ context.Context, inst abi.InstanceInfo, value map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastMirror[inst.ID] = clone(value)
	return nil
}

// AddEntry implements Services.
func (s *MemServices) AddEntry(_ context.Context, inst abi.InstanceInfo, req abi.AddEntryRequest) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.id()
	s.entries = append(s.entries, EntryRecord{Instance: inst.ID, ID: id, AddEntryRequest: req})
	return id, nil
}

// CreateIncidents implements Services. An incident whose dbotMirrorId
// matches one the instance already created gets the existing id.
func (s *MemServices) CreateIncidents(_ context.Context, inst abi.InstanceInfo, req abi.CreateIncidentsRequest) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(req.Incidents))
	for _, inc := range req.Incidents {
		if id, ok := s.findIncident(inst.ID, inc.DbotMirrorID); ok {
			ids = append(ids, id)
			continue
		}
		id := s.id()
		s.incidents = append(s.incidents, IncidentRecord{Instance: inst.ID, ID: id, Incident: inc})
		ids = append(ids, id)
	}
	if req.LastRun != nil {
		s.lastRun[inst.ID] = clone(req.LastRun)
	}
	return ids, nil
}

func (s *MemServices) findIncident(inst, mirrorID string) (string, bool) {
	if mirrorID == "" {
		return "", false
	}
	for _, r := range s.incidents {
		if r.Instance == inst && r.DbotMirrorID == mirrorID {
			return r.ID, true
		}
	}
	return "", false
}

// AddUser registers a user for FindUser.
func (s *MemServices) AddUser(u abi.User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = append(s.users, u)
}

// FindUser implements Services.
func (s *MemServices) FindUser(_ context.Context, _ abi.InstanceInfo, req abi.FindUserRequest) (*abi.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if (req.Username != "" && u.Username == req.Username) || (req.Email != "" && u.Email == req.Email) {
			u := u
			return &u, nil
		}
	}
	return nil, nil
}

// HandleEntitlement implements Services.
func (s *MemServices) HandleEntitlement(_ context.Context, inst abi.InstanceInfo, req abi.EntitlementRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entitlement = append(s.entitlement, EntitlementRecord{Instance: inst.ID, EntitlementRequest: req})
	return nil
}

// UpdateModuleHealth implements Services.
func (s *MemServices) UpdateModuleHealth(_ context.Context, inst abi.InstanceInfo, h abi.ModuleHealth) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health[inst.ID] = h
	return nil
}

// MirrorInvestigation implements Services.
func (s *MemServices) MirrorInvestigation(_ context.Context, inst abi.InstanceInfo, req abi.MirrorInvestigationRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mirrors = append(s.mirrors, MirrorRecord{Instance: inst.ID, MirrorInvestigationRequest: req})
	return nil
}

// DirectMessage implements Services; there is no chat server in memory, so
// it fails with kind unavailable.
func (s *MemServices) DirectMessage(_ context.Context, inst abi.InstanceInfo, _ abi.DirectMessageRequest) (string, error) {
	return "", abi.Errorf(abi.KindUnavailable, "direct_message: no chat server behind instance %q", inst.Name)
}

// StoreFetch stores the incidents and last run of a successful
// fetch-incidents together, as the caller of Execute does with its result.
func (s *MemServices) StoreFetch(ctx context.Context, inst abi.InstanceInfo, res abi.FetchIncidentsResult) ([]string, error) {
	return s.CreateIncidents(ctx, inst, abi.CreateIncidentsRequest{Incidents: res.Incidents, LastRun: res.LastRun})
}

// Context returns the stored integration context of instance id and its version.
func (s *MemServices) Context(id string) (map[string]any, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.contexts[id]
	return clone(v.value), v.version
}

// Incidents returns the incidents created by instance id, in order.
func (s *MemServices) Incidents(id string) []IncidentRecord {
	return byInstance(s, &s.incidents, id, func(r IncidentRecord) string { return r.Instance })
}

// Entries returns the entries written by instance id, in order.
func (s *MemServices) Entries(id string) []EntryRecord {
	return byInstance(s, &s.entries, id, func(r EntryRecord) string { return r.Instance })
}

// Health returns the module health last set by instance id.
func (s *MemServices) Health(id string) (abi.ModuleHealth, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.health[id]
	return h, ok
}

// Mirrors returns the MirrorInvestigation calls of instance id.
func (s *MemServices) Mirrors(id string) []MirrorRecord {
	return byInstance(s, &s.mirrors, id, func(r MirrorRecord) string { return r.Instance })
}

// Entitlements returns the HandleEntitlement calls of instance id.
func (s *MemServices) Entitlements(id string) []EntitlementRecord {
	return byInstance(s, &s.entitlement, id, func(r EntitlementRecord) string { return r.Instance })
}

// byInstance returns the records of instance id, in order. recs is read
// under s.mu, so it is passed by pointer.
func byInstance[T any](s *MemServices, recs *[]T, id string, instance func(T) string) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []T
	for _, r := range *recs {
		if instance(r) == id {
			out = append(out, r)
		}
	}
	return out
}
