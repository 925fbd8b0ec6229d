package sdk

import (
	"context"
	"fmt"

	"github.com/connhost/connhost/abi"
)

// Connector is what a plugin implements. Every field is optional: a nil
// reserved handler answers not_implemented (test-module answers "ok"), and a
// command missing from Commands answers not_implemented naming it.
type Connector struct {
	// Configure validates the instance parameters once per module instance,
	// before any command. An error makes the host discard the instance; return
	// BadRequest for parameters that are wrong.
	Configure func(ctx context.Context, h *Host) error
	// TestModule checks connectivity and credentials; nil error means "ok".
	TestModule func(ctx context.Context, h *Host) error
	// FetchIncidents returns new incidents and the next last run. The host
	// stores both only if it returns no error.
	FetchIncidents func(ctx context.Context, h *Host, lastRun map[string]any) ([]abi.Incident, map[string]any, error)
	// GetRemoteData returns a mirrored incident and its new entries.
	GetRemoteData func(ctx context.Context, h *Host, args abi.GetRemoteDataArgs) (abi.GetRemoteDataResponse, error)
	// GetModifiedRemoteData returns the ids of remote incidents changed since
	// args.LastUpdate. Leave nil to have the host poll every incident.
	GetModifiedRemoteData func(ctx context.Context, h *Host, args abi.GetModifiedRemoteDataArgs) (abi.GetModifiedRemoteDataResponse, error)
	// UpdateRemoteSystem pushes local changes and returns the remote id.
	UpdateRemoteSystem func(ctx context.Context, h *Host, args abi.UpdateRemoteSystemArgs) (string, error)
	// GetMappingFields describes the remote fields for the mapper.
	GetMappingFields func(ctx context.Context, h *Host) (abi.GetMappingFieldsResponse, error)
	// LongRunningExecution runs until the host asks it to stop: poll
	// Host.ShouldStop and wait with Host.Sleep.
	LongRunningExecution func(ctx context.Context, h *Host) error
	// SendNotification receives outgoing chat messages (XSOAR
	// send-notification); args are passed through as the host sent them.
	SendNotification func(ctx context.Context, h *Host, args map[string]any) error
	// HTTP serves connhost_http requests of long-running HTTP plugins
	// (manifest longRunningHTTP). nethttp.Handler adapts an http.Handler.
	HTTP HTTPHandler
	// Commands are the plugin's own commands, by name. Names of reserved
	// commands are not allowed here.
	Commands map[string]CommandFunc
}

// CommandFunc handles a custom command. Its result is encoded as JSON;
// conventionally an abi.CommandResults.
type CommandFunc func(ctx context.Context, h *Host, args Args) (any, error)

var registered *Connector

// Register makes c the connector served by the wasm exports. Call it once,
// from init of the plugin's main package. It panics if called twice or if
// Commands uses a reserved command name, so the mistake shows at the first
// instantiation instead of as a wrong answer later.
func Register(c Connector) {
	if registered != nil {
		panic("sdk.Register called twice")
	}
	if err := c.validate(); err != nil {
		panic(err)
	}
	registered = &c
}

func (c *Connector) validate() error {
	for name, fn := range c.Commands {
		if isReserved(name) {
			return fmt.Errorf("sdk: command %q is reserved; set the Connector field instead", name)
		}
		if fn == nil {
			return fmt.Errorf("sdk: command %q has a nil handler", name)
		}
	}
	return nil
}

func isReserved(name string) bool {
	switch name {
	case abi.CommandTestModule, abi.CommandFetchIncidents, abi.CommandGetRemoteData,
		abi.CommandGetModifiedRemoteData, abi.CommandUpdateRemoteSystem,
		abi.CommandGetMappingFields, abi.CommandLongRunningExecution, abi.CommandSendNotification:
		return true
	}
	return false
}
