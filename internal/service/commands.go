package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/store"
)

// Commands runs commands on instances: any command a plugin serves,
// fetch-incidents (storing what it returns) and test-module.
type Commands struct {
	c *core

	failMu sync.Mutex
	fails  []CommandFailure // oldest first, at most maxFailures
}

// maxFailures is how many failed command runs RecentFailures keeps, and
// maxFailureText how much of each error: a plugin writes its errors.
const (
	maxFailures    = 20
	maxFailureText = 2 << 10
)

// CommandFailure is one command run that the plugin failed (not a request
// refused before the plugin ran).
type CommandFailure struct {
	Instance string    `json:"instance"`
	Plugin   string    `json:"plugin"`
	Command  string    `json:"command"`
	Kind     string    `json:"kind"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
}

// recordFailure keeps a failed run for RecentFailures.
func (cs *Commands) recordFailure(instance, plugin, command string, err error) {
	text := err.Error()
	if len(text) > maxFailureText {
		text = strings.ToValidUTF8(text[:maxFailureText], "") + "…"
	}
	f := CommandFailure{Instance: instance, Plugin: plugin, Command: command, Kind: string(abi.KindOf(err)), Error: text, At: cs.c.now()}
	cs.failMu.Lock()
	defer cs.failMu.Unlock()
	if len(cs.fails) == maxFailures {
		cs.fails = slices.Delete(cs.fails, 0, 1)
	}
	cs.fails = append(cs.fails, f)
}

// RecentFailures returns the last failed command runs since the server
// started (test-module, fetch-incidents and commands run through
// Execute), newest first. They are kept in memory only.
func (cs *Commands) RecentFailures() []CommandFailure {
	cs.failMu.Lock()
	defer cs.failMu.Unlock()
	out := slices.Clone(cs.fails)
	slices.Reverse(out)
	return out
}

// ExecuteRequest runs one command on an instance: the war room's !command.
type ExecuteRequest struct {
	Command string         `json:"command"`
	Args    map[string]any `json:"args,omitempty"`
	// IncidentID, when set, writes the result (or the error) as an entry in
	// that incident's war room.
	IncidentID string `json:"incidentId,omitempty"`
}

// ExecuteResult is a command's result and, with an incident, its entry id.
type ExecuteResult struct {
	Result  json.RawMessage `json:"result"`
	EntryID string          `json:"entryId,omitempty"`
}

// FetchSummary is what a fetch-incidents run stored: the ids of the
// incidents it created and how many the plugin returned.
type FetchSummary struct {
	Created []string `json:"created"`
	Fetched int      `json:"fetched"`
}

// serverCommands are run by the server's own engines, never on request.
var serverCommands = map[string]bool{
	abi.CommandLongRunningExecution: true,
}

// checkCommand verifies that the plugin serves command and that args fit a
// declared command's arguments, as the local runner does: no undeclared
// argument, every required one present and not empty, a string value of an
// argument with options one of them. It returns args with the declared
// defaults filled in for arguments absent, null or empty; other values pass
// as given.
func checkCommand(m *abi.Manifest, command string, args map[string]any) (map[string]any, error) {
	if serverCommands[command] {
		return nil, fmt.Errorf("%w: command %q is run by the server, not on request", ErrInvalid, command)
	}
	if !m.Supports(command) {
		return nil, fmt.Errorf("%w: plugin %s does not support command %q", ErrInvalid, m.Name, command)
	}
	c, declared := m.Command(command)
	if !declared {
		return args, nil
	}
	out, err := c.CheckArgs(args)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArguments, err)
	}
	return out, nil
}

// Execute runs a command on an enabled instance. A disabled instance is
// ErrConflict; a command the plugin does not serve, or one the server
// runs itself, ErrInvalid; arguments that do not fit the declared ones
// ErrInvalidArguments. A failure of the plugin itself is returned as the
// runtime reports it (abi.KindOf names its kind). With an incident, the
// result (or the failure) is also written as an entry, whose id is
// returned with either.
func (cs *Commands) Execute(ctx context.Context, instance string, req ExecuteRequest) (_ ExecuteResult, err error) {
	// Until the instance is found running and serving the command, its
	// names are the client's to make up: the observer gets UnknownLabel.
	obsInstance, obsCommand := UnknownLabel, UnknownLabel
	defer func(start time.Time) { cs.c.observe(obsInstance, obsCommand, TriggerAPI, start, err) }(time.Now())
	c := cs.c
	done, err := c.enter()
	if err != nil {
		return ExecuteResult{}, err
	}
	defer done()
	li, release, err := c.running(ctx, instance)
	if err != nil {
		return ExecuteResult{}, err
	}
	defer release()
	if !serverCommands[req.Command] && li.plugin.Manifest.Supports(req.Command) {
		obsInstance, obsCommand = instance, req.Command
	}
	args, err := checkCommand(li.plugin.Manifest, req.Command, req.Args)
	if err != nil {
		return ExecuteResult{}, fmt.Errorf("instance %q: %w", instance, err)
	}
	if req.IncidentID != "" {
		if _, err := c.st.GetIncident(ctx, req.IncidentID); err != nil {
			return ExecuteResult{}, fmt.Errorf("incident %q: %w", req.IncidentID, fromStore(err))
		}
	}
	if req.Command == abi.CommandFetchIncidents {
		sum, err := cs.fetch(ctx, li)
		if err != nil {
			return ExecuteResult{}, fromStore(err)
		}
		raw, err := json.Marshal(sum)
		return ExecuteResult{Result: raw}, err
	}
	if args == nil {
		args = map[string]any{}
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return ExecuteResult{}, fmt.Errorf("%w: args: %w", ErrInvalid, err)
	}
	res, callErr := li.inst.Execute(ctx, req.Command, raw)
	if callErr != nil {
		cs.recordFailure(instance, pluginRef(li.plugin), req.Command, callErr)
	}
	out := ExecuteResult{Result: res}
	if req.IncidentID == "" {
		return out, callErr
	}
	entry := resultEntry(req, res, callErr)
	added, err := c.st.AddEntries(ctx, []store.Entry{entry})
	if err != nil {
		return out, errors.Join(callErr, fmt.Errorf("incident %q: writing the command's entry: %w", req.IncidentID, fromStore(err)))
	}
	out.EntryID = added[0].ID
	return out, callErr
}

// resultEntry renders a command's outcome as a war-room entry: the readable
// output of a CommandResults as markdown, any other result as JSON, an
// error as an error entry.
func resultEntry(req ExecuteRequest, res json.RawMessage, callErr error) store.Entry {
	e := store.Entry{IncidentID: req.IncidentID, Origin: store.OriginAPI, User: "!" + req.Command}
	if callErr != nil {
		e.Type, e.Format, e.Contents = abi.EntryError, abi.FormatText, callErr.Error()
		return e
	}
	e.Type = abi.EntryNote
	var cr abi.CommandResults
	if json.Unmarshal(res, &cr) == nil && cr.ReadableOutput != "" {
		e.Format, e.Contents = abi.FormatMarkdown, cr.ReadableOutput
		return e
	}
	var v any
	_ = json.Unmarshal(res, &v)
	e.Format, e.Contents = abi.FormatJSON, v
	return e
}

// Test runs test-module. A disabled instance is tested in a temporary
// sandbox, so an operator can check a configuration before enabling it.
func (cs *Commands) Test(ctx context.Context, name string) (err error) {
	defer func(start time.Time) {
		cs.c.observe(knownName(name, err), abi.CommandTestModule, TriggerAPI, start, err)
	}(time.Now())
	c := cs.c
	done, err := c.enter()
	if err != nil {
		return err
	}
	defer done()
	rec, err := c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	li, release := c.hold(rec.ID)
	defer release()
	var (
		inst   runner
		plugin *host.Plugin
	)
	if li != nil {
		inst, plugin = li.inst, li.plugin
	} else {
		tmp, p, err := c.sandbox(ctx, rec)
		if err != nil {
			return fromStore(err)
		}
		defer tmp.Close(context.WithoutCancel(ctx))
		inst, plugin = tmp, p
	}
	if _, err = inst.Execute(ctx, abi.CommandTestModule, json.RawMessage(`{}`)); err != nil {
		cs.recordFailure(name, pluginRef(plugin), abi.CommandTestModule, err)
	}
	return err
}

// Fetch runs fetch-incidents on an enabled instance now and stores the
// incidents it returns together with its new last run, atomically. A
// plugin without fetch-incidents is ErrInvalid.
func (cs *Commands) Fetch(ctx context.Context, name string) (_ FetchSummary, err error) {
	defer func(start time.Time) {
		cs.c.observe(knownName(name, err), abi.CommandFetchIncidents, TriggerAPI, start, err)
	}(time.Now())
	done, err := cs.c.enter()
	if err != nil {
		return FetchSummary{}, err
	}
	defer done()
	li, release, err := cs.c.running(ctx, name)
	if err != nil {
		return FetchSummary{}, err
	}
	defer release()
	if _, err := checkCommand(li.plugin.Manifest, abi.CommandFetchIncidents, nil); err != nil {
		return FetchSummary{}, fmt.Errorf("instance %q: %w", name, err)
	}
	sum, err := cs.fetch(ctx, li)
	if err != nil {
		cs.recordFailure(name, pluginRef(li.plugin), abi.CommandFetchIncidents, err)
	}
	return sum, fromStore(err)
}

// fetch runs fetch-incidents with the stored last run. A failed fetch
// stores neither incidents nor last run.
func (cs *Commands) fetch(ctx context.Context, li *liveInstance) (FetchSummary, error) {
	lastRun, err := cs.c.st.LastRun(ctx, li.rec.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return FetchSummary{}, err
	}
	args, _ := json.Marshal(abi.FetchIncidentsArgs{LastRun: lastRun})
	raw, err := li.inst.Execute(ctx, abi.CommandFetchIncidents, args)
	if err != nil {
		return FetchSummary{}, err
	}
	var res abi.FetchIncidentsResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return FetchSummary{}, &host.CallError{Instance: li.rec.Name, Plugin: pluginRef(li.plugin), Command: abi.CommandFetchIncidents,
			Err: abi.Errorf(abi.KindABIViolation, "fetch-incidents result: %v", err)}
	}
	incs, err := incidentsFromABI(li.rec, li.plugin.Manifest, res.Incidents)
	if err != nil {
		return FetchSummary{}, fmt.Errorf("instance %q plugin %s command fetch-incidents: %w", li.rec.Name, pluginRef(li.plugin), err)
	}
	if res.LastRun == nil {
		res.LastRun = lastRun
	}
	created, err := cs.c.st.CreateIncidentsWithLastRun(ctx, li.rec.ID, incs, res.LastRun)
	if err != nil {
		return FetchSummary{}, err
	}
	ids := make([]string, 0, len(created))
	for _, c := range created {
		if c.New {
			ids = append(ids, c.ID)
		}
	}
	cs.c.log.Info().Str("instance", li.rec.Name).Str("plugin", pluginRef(li.plugin)).Int("fetched", len(incs)).Int("new", len(ids)).Msg("fetch-incidents")
	return FetchSummary{Created: ids, Fetched: len(incs)}, nil
}

// incidentsFromABI converts incidents a connector returned. Mirrored ones
// get the instance as dbotMirrorInstance and, when the instance's plugin
// declares mirror_direction or its settings set one, the instance's mirror
// direction, as XSOAR's incoming mapper would set them. m may be nil.
func incidentsFromABI(rec store.Instance, m *abi.Manifest, in []abi.Incident) ([]store.Incident, error) {
	cfg := mirror.ConfigOf(rec, m)
	direction := ""
	if mirror.Declares(m, mirror.ParamMirrorDirection) || rec.Settings.MirrorDirection != "" {
		direction = cfg.Direction
	}
	out := make([]store.Incident, 0, len(in))
	for i, a := range in {
		if strings.TrimSpace(a.Name) == "" {
			return nil, fmt.Errorf("%w: incidents[%d]: name is required", ErrInvalid, i)
		}
		inc, err := store.IncidentFromABI(rec.Name, a)
		if err != nil {
			return nil, fmt.Errorf("incidents[%d]: %w", i, err)
		}
		if inc.DbotMirrorID != "" {
			inc.DbotMirrorInstance = rec.Name
			if direction != "" {
				inc.DbotMirrorDirection = direction
			}
		}
		inc.Status = abi.StatusActive
		out = append(out, inc)
	}
	return out, nil
}

// pluginRef names a compiled plugin as name@version.
func pluginRef(p *host.Plugin) string { return p.Manifest.Name + "@" + p.Manifest.Version }
