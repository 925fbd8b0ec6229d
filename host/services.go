package host

import (
	"context"
	"encoding/json"
	"time"

	"github.com/connhost/connhost/abi"
)

// Services is what the host functions of a connector instance act on. The
// server implements it over the store; NewMemServices implements it in memory
// for tests and the local runner. Every method gets the identity of the
// calling instance; implementations return *abi.Error values (kind conflict,
// not_found, bad_request, unavailable, ...) for failures a guest should see
// typed.
type Services interface {
	// IntegrationContext returns the instance's context and its version
	// (0 before the first set).
	IntegrationContext(ctx context.Context, inst abi.InstanceInfo) (map[string]any, int64, error)
	// SetIntegrationContext replaces the context if version equals the stored
	// version, or unconditionally when version is -1, and returns the new
	// version. A stale version fails with abi.KindConflict.
	SetIntegrationContext(ctx context.Context, inst abi.InstanceInfo, value map[string]any, version int64) (int64, error)

	// CacheGet returns a cache value; expired entries are not found.
	CacheGet(ctx context.Context, inst abi.InstanceInfo, key string) (json.RawMessage, bool, error)
	// CacheSet stores a cache value; ttl ≤ 0 means no expiry.
	CacheSet(ctx context.Context, inst abi.InstanceInfo, key string, value json.RawMessage, ttl time.Duration) error
	// CacheDelete removes a cache value; deleting a missing key is no error.
	CacheDelete(ctx context.Context, inst abi.InstanceInfo, key string) error

	// LastRun returns the stored fetch-incidents last run (nil if none).
	LastRun(ctx context.Context, inst abi.InstanceInfo) (map[string]any, error)
	// SetLastRun stores the fetch-incidents last run.
	SetLastRun(ctx context.Context, inst abi.InstanceInfo, value map[string]any) error
	// LastMirrorRun returns the stored last mirror run (nil if none).
	LastMirrorRun(ctx context.Context, inst abi.InstanceInfo) (map[string]any, error)
	// SetLastMirrorRun stores the last mirror run.
	SetLastMirrorRun(ctx context.Context, inst abi.InstanceInfo, value map[string]any) error

	// AddEntry writes a war-room entry and returns its id.
	AddEntry(ctx context.Context, inst abi.InstanceInfo, req abi.AddEntryRequest) (string, error)
	// CreateIncidents creates incidents (deduplicating where the connector
	// gives a stable id) and returns their ids in order.
	CreateIncidents(ctx context.Context, inst abi.InstanceInfo, req abi.CreateIncidentsRequest) ([]string, error)
	// FindUser returns the user matching username or email, or nil.
	FindUser(ctx context.Context, inst abi.InstanceInfo, req abi.FindUserRequest) (*abi.User, error)
	// HandleEntitlement records a user's answer to a pending question.
	HandleEntitlement(ctx context.Context, inst abi.InstanceInfo, req abi.EntitlementRequest) error
	// UpdateModuleHealth sets the instance's health.
	UpdateModuleHealth(ctx context.Context, inst abi.InstanceInfo, health abi.ModuleHealth) error
	// MirrorInvestigation records that an incident is mirrored to a chat channel.
	MirrorInvestigation(ctx context.Context, inst abi.InstanceInfo, req abi.MirrorInvestigationRequest) error
	// DirectMessage handles free text from a user and returns the reply.
	DirectMessage(ctx context.Context, inst abi.InstanceInfo, req abi.DirectMessageRequest) (string, error)
}
