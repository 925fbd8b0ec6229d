// Package pluginlint checks a plugin manifest for what the host accepts but
// an author almost certainly did not mean, as `demisto-sdk validate` does
// for XSOAR integrations: params with XSOAR's conventional names but other
// types or options, params and commands that need a capability flag the
// manifest does not set, and commands, arguments and params left
// undocumented. abi.Manifest.Validate checks what the host refuses.
package pluginlint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/connhost/connhost/abi"
)

// Severity grades a Finding.
type Severity string

// Severities: an Error is a manifest that cannot work as written (validate
// exits non-zero); a Warning is one that works but likely not as meant.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one problem, at the field path of the manifest (e.g.
// "params[3].type"; "" for the manifest as a whole).
type Finding struct {
	Severity Severity
	Path     string
	Message  string
}

func (f Finding) String() string {
	if f.Path == "" {
		return fmt.Sprintf("%s: %s", f.Severity, f.Message)
	}
	return fmt.Sprintf("%s: %s: %s", f.Severity, f.Path, f.Message)
}

// flag is a capability flag of the manifest.
type flag int

const (
	fetch flag = iota
	syncIn
	syncOut
	syncEither
	mappable
	longRunning
)

func (f flag) set(m *abi.Manifest) bool {
	switch f {
	case fetch:
		return m.IsFetch
	case syncIn:
		return m.IsRemoteSyncIn
	case syncOut:
		return m.IsRemoteSyncOut
	case syncEither:
		return m.IsRemoteSyncIn || m.IsRemoteSyncOut
	case mappable:
		return m.IsMappable
	case longRunning:
		return m.LongRunning
	}
	return false
}

func (f flag) String() string {
	return [...]string{"isfetch", "isremotesyncin", "isremotesyncout", "isremotesyncin or isremotesyncout", "ismappable", "longRunning"}[f]
}

// MirrorDirectionOptions are the options of XSOAR's mirror_direction
// param, which sdk.Params.MirrorDirection maps to dbotMirrorDirection.
var MirrorDirectionOptions = []string{"None", "Incoming", "Outgoing", "Incoming And Outgoing"}

// conventional is an XSOAR instance param with a conventional name: the
// type and options XSOAR (and the SDK's helpers) give it, the flag without
// which it means nothing.
type conventional struct {
	typ     abi.ParamType
	options []string
	needs   flag
}

// Conventional maps each conventional param name to its definition.
var conventionalParams = map[string]conventional{
	"isFetch":               {typ: abi.ParamBool, needs: fetch},
	"incidentFetchInterval": {typ: abi.ParamInterval, needs: fetch},
	"first_fetch":           {typ: abi.ParamString, needs: fetch},
	"max_fetch":             {typ: abi.ParamNumber, needs: fetch},
	"incidents_fetch_query": {typ: abi.ParamString, needs: fetch},
	"mirror_direction":      {typ: abi.ParamSelect, options: MirrorDirectionOptions, needs: syncEither},
	"close_incident":        {typ: abi.ParamBool, needs: syncIn},
	"close_out":             {typ: abi.ParamBool, needs: syncOut},
	"comment_tag":           {typ: abi.ParamString, needs: syncEither},
	"work_notes_tag":        {typ: abi.ParamString, needs: syncEither},
	"file_tag":              {typ: abi.ParamString, needs: syncEither},
}

// reservedCommands maps each reserved command to the flag that makes the
// host call it.
var reservedCommands = map[string]flag{
	abi.CommandFetchIncidents:        fetch,
	abi.CommandGetRemoteData:         syncIn,
	abi.CommandGetModifiedRemoteData: syncIn,
	abi.CommandUpdateRemoteSystem:    syncOut,
	abi.CommandGetMappingFields:      mappable,
	abi.CommandLongRunningExecution:  longRunning,
}

// fold reduces a name to compare it loosely: "Mirror-Direction" and
// "mirrorDirection" both fold to "mirrordirection".
func fold(s string) string {
	return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
}

// Lint returns the findings for m, errors and warnings in manifest order.
func Lint(m *abi.Manifest) []Finding {
	var l linter
	if m.Display == "" {
		l.warn("display", "empty: the console and XSOAR show the plugin by its display name")
	}
	if m.Description == "" {
		l.warn("description", "empty: say what the plugin connects to")
	}
	l.params(m)
	l.commands(m)
	l.flags(m)
	return l.out
}

type linter struct{ out []Finding }

func (l *linter) err(path, format string, args ...any) {
	l.out = append(l.out, Finding{Error, path, fmt.Sprintf(format, args...)})
}

func (l *linter) warn(path, format string, args ...any) {
	l.out = append(l.out, Finding{Warning, path, fmt.Sprintf(format, args...)})
}

func (l *linter) params(m *abi.Manifest) {
	folded := map[string]string{}
	for name := range conventionalParams {
		folded[fold(name)] = name
	}
	for i, p := range m.Params {
		at := fmt.Sprintf("params[%d]", i)
		if p.Display == "" {
			l.warn(at+".display", "param %s: empty: the operator sees this label", p.Name)
		}
		if p.Type == abi.ParamSecret && p.Default != nil {
			l.warn(at+".default", "secret param %s has a default: it is readable by anyone with the plugin file", p.Name)
		}
		c, ok := conventionalParams[p.Name]
		if !ok {
			if want, near := folded[fold(p.Name)]; near {
				l.warn(at+".name", "%q looks like XSOAR's conventional param %q; spell it exactly so operators and the SDK's helpers recognise it", p.Name, want)
			}
			continue
		}
		if p.Type != c.typ {
			l.err(at+".type", "param %s: type %s, want %s (XSOAR's conventional %s)", p.Name, p.Type, c.typ, p.Name)
		}
		if c.options != nil && p.Type == c.typ && !sameSet(p.Options, c.options) {
			l.err(at+".options", "param %s: options %q, want %q", p.Name, p.Options, c.options)
		}
		if !c.needs.set(m) {
			l.err(at+".name", "param %s needs %s: without it the host never runs the commands it configures", p.Name, c.needs)
		}
	}
}

func (l *linter) commands(m *abi.Manifest) {
	for i, c := range m.Commands {
		at := fmt.Sprintf("commands[%d]", i)
		if c.Description == "" {
			l.warn(at+".description", "command %s: empty: say what it does and returns", c.Name)
		}
		switch f, reserved := reservedCommands[c.Name]; {
		case c.Name == abi.CommandTestModule:
			l.warn(at+".name", "test-module is always served; it needs no declaration")
		case reserved && !f.set(m):
			l.err(at+".name", "%s is reserved: the host calls it only when the manifest sets %s, which it does not", c.Name, f)
		case reserved:
			l.warn(at+".name", "%s is reserved: %s implies it, with the arguments of abi/SPEC.md §6; the declaration only limits calls through the API", c.Name, f)
		}
		seen := map[string]bool{}
		for j, a := range c.Arguments {
			aat := fmt.Sprintf("%s.arguments[%d]", at, j)
			switch {
			case a.Name == "":
				l.err(aat+".name", "command %s: empty argument name", c.Name)
			case seen[a.Name]:
				l.err(aat+".name", "command %s: duplicate argument %q", c.Name, a.Name)
			}
			seen[a.Name] = true
			if a.Description == "" {
				l.warn(aat+".description", "command %s, argument %s: empty", c.Name, a.Name)
			}
			if a.Default != "" && len(a.Options) > 0 && !slices.Contains(a.Options, a.Default) {
				l.err(aat+".default", "command %s, argument %s: default %q is not one of its options %q", c.Name, a.Name, a.Default, a.Options)
			}
			if a.Required && a.Default != "" {
				l.warn(aat+".required", "command %s, argument %s: required with a default; the default always fills it", c.Name, a.Name)
			}
		}
	}
}

func (l *linter) flags(m *abi.Manifest) {
	if (m.IsRemoteSyncIn || m.IsRemoteSyncOut) && !m.IsFetch {
		l.warn("isfetch", "mirroring is on but fetching is off: mirrored incidents are the ones fetch-incidents creates with a dbotMirrorId")
	}
	for i, p := range m.Params {
		if p.Type != abi.ParamString || !strings.HasSuffix(fold(p.Name), "url") {
			continue
		}
		if entry := abi.EgressParamPrefix + p.Name; !slices.Contains(m.Egress, entry) {
			l.warn(fmt.Sprintf("params[%d].name", i), "param %s looks like the remote's URL, but egress has no %q: the host denies http_request to it unless another egress entry allows its host", p.Name, entry)
		}
	}
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
