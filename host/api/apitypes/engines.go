package apitypes

import "time"

// EngineInput is the body of POST /engines: enroll an engine.
type EngineInput struct {
	// Name is the engine's: a-z, 0-9, '_' or '-', up to 63, starting with
	// a letter or digit.
	Name string `json:"name" jsonschema:"minLength=1,maxLength=63,pattern=^[a-z0-9][a-z0-9_-]*$"`
	// Group is the load-balancing group the engine serves (instances name
	// it in settings.engine_group); same form as Name.
	Group string `json:"group" jsonschema:"minLength=1,maxLength=63,pattern=^[a-z0-9][a-z0-9_-]*$"`
}

// EngineEnrollment is the answer of POST /engines: the engine's
// credentials, shown this once (the server keeps only the public key).
type EngineEnrollment struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	// PublicKey is the engine's NKey public key.
	PublicKey string `json:"publicKey"`
	// Seed is the engine's NKey seed, its secret: pass it to connhost
	// engine (--seed-file); it is not shown again.
	Seed string `json:"seed"`
	// URL is the server's NATS endpoint as the server sees it; engines in
	// other networks use the address they reach it at.
	URL string `json:"url"`
}

// Engine is an enrolled engine and what it last reported.
type Engine struct {
	Name  string `json:"name"`
	Group string `json:"group"`
	// Version is the connhost version the engine runs.
	Version string `json:"version,omitempty"`
	// Connected says a heartbeat arrived within the last few seconds.
	Connected bool `json:"connected"`
	// ConnectedSince is when the engine's current connection began.
	ConnectedSince time.Time `json:"connectedSince,omitzero"`
	// LastHeartbeat is when the engine last reported.
	LastHeartbeat time.Time `json:"lastHeartbeat,omitzero"`
	// Capacity is how many commands the engine runs at once.
	Capacity int `json:"capacity"`
	// CallsInFlight are the commands the engine is running.
	CallsInFlight int `json:"callsInFlight"`
	// Instances are the instances whose sandboxes the engine holds, as
	// "name (plugin@version)".
	Instances []string `json:"instances"`
	// LongRunning are the ids of the instances whose long-running
	// execution the engine runs, holding their lease.
	LongRunning []string `json:"longRunning"`
	// Calls and Failures count the commands the engine answered since the
	// server started.
	Calls    int64 `json:"calls"`
	Failures int64 `json:"failures"`
}

// EngineList is the list of enrolled engines, by group then name.
type EngineList struct {
	// Enabled is false when the server runs without engines
	// (engines.enable).
	Enabled bool     `json:"enabled"`
	Engines []Engine `json:"engines"`
}
