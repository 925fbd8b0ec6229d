package apitypes

import "time"

// APIKeyInput is the body of POST /apikeys: a new API key.
type APIKeyInput struct {
	// Name labels the key in listings and request logs: letters, digits,
	// '.', '_' or '-', up to 64.
	Name string `json:"name" jsonschema:"minLength=1,maxLength=64"`
	// Role is what the key may do: read (GET requests only), operator
	// (also commands, fetches, incidents, entries and mirroring operations)
	// or admin (everything, plugins, instances, users and keys included).
	Role string `json:"role" jsonschema:"enum=read,enum=operator,enum=admin"`
	// Expires is when the key stops working (RFC 3339, in the future);
	// absent means never.
	Expires *time.Time `json:"expires,omitempty"`
}

// APIKey is an API key as listed: never the key itself or its hash.
type APIKey struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Prefix is the key's first characters, to recognise it.
	Prefix string `json:"prefix"`
	// Role is read, operator or admin.
	Role    string    `json:"role" jsonschema:"enum=read,enum=operator,enum=admin"`
	Created time.Time `json:"created"`
	// Expires is when the key stops working; absent means never.
	Expires time.Time `json:"expires,omitzero"`
	// LastUsed is when the key last authenticated a request, recorded at
	// most once a minute; absent before its first use.
	LastUsed time.Time `json:"lastUsed,omitzero"`
	// Revoked keys stay listed for audit; they authenticate nothing.
	Revoked bool `json:"revoked,omitempty"`
}

// APIKeyList is the list of API keys, revoked ones included, in creation
// order.
type APIKeyList struct {
	Keys []APIKey `json:"keys"`
}

// APIKeyCreated is the answer to POST /apikeys: the only time the key is
// shown.
type APIKeyCreated struct {
	// Key is the secret to send as Authorization: Bearer <key>. It is not
	// stored and cannot be shown again.
	Key    string `json:"key"`
	APIKey APIKey `json:"apiKey"`
}
