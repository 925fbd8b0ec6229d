// Package engines runs connector instances on other machines: the server
// side (Hub: an embedded NATS server with JetStream, engine enrollment and
// authentication, command dispatch, the host functions' responder, plugin
// distribution) and the engine side (Engine: the `connhost engine`
// process). Everything travels over NATS; see docs/engines.md.
package engines

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
)

// Subjects and buckets. A group or engine name is one NATS token (see
// ValidName), so an engine's permissions can name its own subjects.
const (
	// execPrefix + group is the queue-group subject of a group's commands.
	execPrefix = "connhost.exec."
	// hostPrefix + group.engine.op is a host function call (or a
	// heartbeat) of an engine to the server.
	hostPrefix = "connhost.host."
	// httpPrefix + group.instanceID reaches the engine running a
	// long-running HTTP instance.
	httpPrefix = "connhost.http."
	// queueName is the queue group every engine of a group joins.
	queueName = "engines"

	// BucketEnrolled holds the enrolled engines' public keys (no secrets).
	BucketEnrolled = "connhost_enrolled"
	// BucketLeases holds the long-running leases, key group.instanceID.
	BucketLeases = "connhost_leases"
	// BucketPlugins is the object store of plugin files, named by SHA-256.
	BucketPlugins = "connhost_plugins"

	// serverUser is the user name of the server's own connection.
	serverUser = "connhost-server"
	// maxPayload bounds one NATS message: a command's arguments or result,
	// a host function's request (host.Limits.OutputBytes, default 4 MiB).
	maxPayload = 16 << 20
)

// Host-function operations, the last token of a host subject.
const (
	opBeat                  = "beat"
	opIntegrationContext    = "getIntegrationContext"
	opSetIntegrationContext = "setIntegrationContext"
	opCacheGet              = "cacheGet"
	opCacheSet              = "cacheSet"
	opCacheDelete           = "cacheDelete"
	opLastRun               = "getLastRun"
	opSetLastRun            = "setLastRun"
	opLastMirrorRun         = "getLastMirrorRun"
	opSetLastMirrorRun      = "setLastMirrorRun"
	opAddEntry              = "addEntry"
	opCreateIncidents       = "createIncidents"
	opFindUser              = "findUser"
	opHandleEntitlement     = "handleEntitlement"
	opUpdateModuleHealth    = "updateModuleHealth"
	opMirrorInvestigation   = "mirrorInvestigation"
	opDirectMessage         = "directMessage"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ErrBadName is returned for an engine or group name that is not one
// lower-case NATS token.
var ErrBadName = errors.New("want 1-63 characters a-z, 0-9, _ or -, starting with a letter or digit")

// ValidName checks an engine or group name.
func ValidName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s %q: %w", kind, name, ErrBadName)
	}
	return nil
}

// Spec is what an engine needs to run an instance: who it is, the plugin
// by hash, its params (secrets in clear: they travel only over TLS or
// loopback and are held in memory) and its limits and egress narrowing.
type Spec struct {
	Info   abi.InstanceInfo `json:"info"`
	Plugin string           `json:"plugin"` // name@version, for messages
	SHA256 string           `json:"sha256"`
	Params map[string]any   `json:"params,omitempty"`
	Limits host.Limits      `json:"limits"`
	Egress []string         `json:"egress,omitempty"`
	// LongRunning asks the engine holding the lease to run
	// long-running-execution.
	LongRunning bool `json:"longRunning,omitempty"`
	// Hash identifies the content above (WithHash), so an engine finds its
	// pool for a spec without hashing the spec on every call.
	Hash string `json:"hash,omitempty"`
}

// WithHash returns s with Hash set over its content.
func (s Spec) WithHash() Spec {
	s.Hash = ""
	raw, _ := json.Marshal(s)
	s.Hash = sha256Hex(raw)
	return s
}

// execRequest is a command for an engine of a group.
type execRequest struct {
	Spec    Spec            `json:"spec"`
	Command string          `json:"command"`
	Args    json.RawMessage `json:"args,omitempty"`
	// HTTP, when set, is a request into a long-running HTTP plugin.
	HTTP *abi.HTTPRequest `json:"http,omitempty"`
}

// reply is an engine's (or the server's) answer.
type reply struct {
	Result json.RawMessage   `json:"result,omitempty"`
	HTTP   *abi.HTTPResponse `json:"http,omitempty"`
	Error  *wireError        `json:"error,omitempty"`
	Engine string            `json:"engine,omitempty"`
}

// wireError carries a typed error across: a call error keeps what was
// called, so the server reports it as a local call would.
type wireError struct {
	Kind     abi.ErrorKind `json:"kind"`
	Message  string        `json:"message"`
	Call     bool          `json:"call,omitempty"`
	Instance string        `json:"instance,omitempty"`
	Plugin   string        `json:"plugin,omitempty"`
	Command  string        `json:"command,omitempty"`
}

// toWire converts an error for the wire; a nil error is nil.
func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	var ce *host.CallError
	if errors.As(err, &ce) && ce.Err != nil {
		return &wireError{Kind: ce.Err.Kind, Message: ce.Err.Message, Call: true, Instance: ce.Instance, Plugin: ce.Plugin, Command: ce.Command}
	}
	var ae *abi.Error
	if errors.As(err, &ae) {
		// The kind travels apart: a bare *abi.Error's message is sent
		// without it, so the caller's error does not say it twice.
		msg := err.Error()
		if err == error(ae) {
			msg = ae.Message
		}
		return &wireError{Kind: ae.Kind, Message: msg}
	}
	return &wireError{Kind: abi.KindInternalError, Message: err.Error()}
}

// err converts back.
func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	ae := &abi.Error{Kind: w.Kind, Message: w.Message}
	if w.Call {
		return &host.CallError{Instance: w.Instance, Plugin: w.Plugin, Command: w.Command, Err: ae}
	}
	return ae
}

// hostCall is a host function call of an instance on an engine. Token is
// the fencing token of the lease under which a long-running execution
// runs (0 for commands).
type hostCall struct {
	Info  abi.InstanceInfo `json:"info"`
	Token uint64           `json:"token,omitempty"`
	Body  json.RawMessage  `json:"body,omitempty"`
}

// Beat is an engine's heartbeat: what it is and does.
type Beat struct {
	Name     string `json:"name"`
	Group    string `json:"group"`
	Version  string `json:"version"`
	Capacity int    `json:"capacity"`
	InFlight int    `json:"callsInFlight"`
	// Instances are the instances the engine holds sandboxes of, as
	// "name (plugin@version)".
	Instances []string `json:"instances"`
	// LongRunning are the instances whose lease the engine holds.
	LongRunning []string `json:"longRunning"`
}

// beatReply answers a heartbeat with the long-running instances of the
// engine's group, which its engines compete to run.
type beatReply struct {
	LongRunning []Spec `json:"longRunning"`
}

// lease is the value of a long-running lease: the holder and the fencing
// token (the revision that created the lease).
type lease struct {
	Engine string `json:"engine"`
	Token  uint64 `json:"token"`
}

// sha256Hex is the hex SHA-256 of b.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
