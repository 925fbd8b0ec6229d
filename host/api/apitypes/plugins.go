package apitypes

import (
	"time"

	"github.com/connhost/connhost/abi"
)

// PluginInfo is one installed plugin version.
type PluginInfo struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	SHA256      string    `json:"sha256"`
	InstalledAt time.Time `json:"installedAt"`
	// InstalledBy names who installed it: apikey:NAME, cli or watch.
	InstalledBy string `json:"installedBy,omitempty"`
	// Manifest is the plugin's manifest; its schema is
	// abi/schema/manifest.schema.json.
	Manifest *abi.Manifest `json:"manifest"`
	// Current is set on the version that instances following the latest
	// run.
	Current bool `json:"current,omitempty"`
	// Signature is how the file passed the trust policy when it was
	// installed: signed (by the trusted key signedBy), unsigned, or bundle
	// (checked with its bundle); absent for versions installed before
	// connhost recorded it.
	Signature string `json:"signature,omitempty" jsonschema:"enum=signed,enum=unsigned,enum=bundle"`
	// SignedBy is the id of the trusted key that signed the file.
	SignedBy string `json:"signedBy,omitempty"`
}

// PluginList is the current version of every installed plugin.
type PluginList struct {
	Plugins []PluginInfo `json:"plugins"`
}

// PluginDetail is every installed version of a plugin, newest first.
type PluginDetail struct {
	Name     string       `json:"name"`
	Versions []PluginInfo `json:"versions"`
}

// InstallResult is an installed version, now current, and what the
// install did.
type InstallResult struct {
	PluginInfo
	// Created is false when the same file was installed before.
	Created bool `json:"created"`
	// Switched names the enabled instances now running this version.
	Switched []string `json:"switched"`
	// Signed says whether a trusted key signed the file.
	Signed bool `json:"signed"`
	// KeyID is the id of the key that signed it.
	KeyID string `json:"keyId,omitempty"`
	// Warning is set when an unsigned plugin was admitted.
	Warning string `json:"warning,omitempty"`
}

// SwitchResult is the version a plugin's followers run after a rollback or
// a change of the current version, and the instances switched to it.
type SwitchResult struct {
	PluginInfo
	// Switched names the enabled instances now running this version.
	Switched []string `json:"switched"`
}

// VersionInput is the body of PUT /plugins/{name}/current and
// PUT /instances/{name}/version.
type VersionInput struct {
	// Version is an installed version; for an instance, "" follows the
	// current version.
	Version string `json:"version"`
}
