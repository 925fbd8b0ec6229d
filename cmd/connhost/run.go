package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/config"
)

func runCommand() *command {
	return &command{
		name:    "run",
		summary: "run one command of a plugin locally, on a temporary in-memory store",
		run:     runRun,
	}
}

// secretMask replaces secret parameter values wherever the runner echoes
// parameters.
const secretMask = "********"

// localInstance identifies the runner's one connector instance.
var localInstance = abi.InstanceInfo{ID: "local", Name: "local"}

func runRun(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost run", "FILE.wasm COMMAND [flags]",
		"Loads the plugin, validates --param values against its manifest and the command's arguments,\n"+
			"runs COMMAND in the sandbox on a temporary in-memory store and prints the result and its side\n"+
			"effects. Exit codes: 1 the command failed, 2 usage or bad input, 3 plugin incompatible.")
	params := fs.StringArray("param", nil, "instance parameter `NAME=VALUE` (repeatable)")
	argKV := fs.StringArray("arg", nil, "command argument `NAME=VALUE` (repeatable; overrides --args-json keys)")
	argsJSON := fs.String("args-json", "", "command arguments as a JSON object")
	asJSON := fs.Bool("json", false, "print only the raw JSON result")
	timeout := fs.Duration("timeout", 0, "call deadline (default: limits.call_timeout)")
	egress := fs.StringArray("egress", nil, "allow http_request to `HOST` (host, host:port or *.domain; repeatable; default: the manifest's egress)")
	lastRunPath := fs.String("last-run", "", "JSON `FILE` with the last run: read before the command, written after it")
	config.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return usageErr("run: want FILE.wasm and COMMAND")
	}
	file, cmdName := fs.Arg(0), fs.Arg(1)
	paramKV, err := keyValues("param", *params)
	if err != nil {
		return err
	}
	argValues, err := keyValues("arg", *argKV)
	if err != nil {
		return err
	}
	wasm, err := os.ReadFile(file)
	if err != nil {
		return usageErr("run: %w", err)
	}
	lastRun, err := readLastRun(*lastRunPath)
	if err != nil {
		return usageErr("run: --last-run: %w", err)
	}

	cfg, _, rt, err := openRuntime(ctx, a, fs)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	p, err := rt.Load(ctx, wasm)
	if err != nil {
		return withCode(exitIncompatible, fmt.Errorf("plugin %s: %w", file, err))
	}
	defer p.Close(ctx)
	m := p.Manifest
	label := m.Name + "@" + m.Version

	raw := make(map[string]any, len(paramKV))
	for k, v := range paramKV {
		raw[k] = v
	}
	values, err := m.ValidateParams(raw)
	if err != nil {
		return usageErr("plugin %s: invalid params:\n%w", label, err)
	}
	if !m.Supports(cmdName) {
		return usageErr("plugin %s does not support command %q (supported: %s)", label, cmdName, strings.Join(supported(m), ", "))
	}
	callArgs, err := buildArgs(m, cmdName, *argsJSON, argValues)
	if err != nil {
		return usageErr("plugin %s command %q: %w", label, cmdName, err)
	}

	info := localInstance
	info.Brand = m.Name
	svc := &recorder{Services: host.NewMemServices()}
	if lastRun != nil {
		// Seed the store directly so the seed is not reported as a side effect.
		if err := svc.Services.SetLastRun(ctx, info, lastRun); err != nil {
			return fmt.Errorf("run: seeding last run: %w", err)
		}
	}
	if _, given := callArgs["last_run"]; cmdName == abi.CommandFetchIncidents && !given {
		callArgs["last_run"] = lastRun
	}
	limits := hostLimits(cfg.Limits)
	if *timeout > 0 {
		limits.CallTimeout = *timeout
	}
	var allow []string
	if len(*egress) > 0 {
		allow = *egress
	}
	if !*asJSON {
		fmt.Fprintf(a.stderr, "plugin %s (sha256 %s), command %s\nparams: %s\n", label, p.SHA256[:12], cmdName, echoParams(m, values))
	}

	inst, err := rt.NewInstance(ctx, p, host.InstanceSpec{Info: info, Params: values, Services: svc, Egress: allow, Limits: limits})
	if err != nil {
		code := exitFailed
		if abi.KindOf(err) == abi.KindIncompatible {
			code = exitIncompatible
		}
		return withCode(code, fmt.Errorf("plugin %s: starting instance: %w", label, err))
	}
	defer inst.Close(ctx)
	argBytes, err := json.Marshal(callArgs)
	if err != nil {
		return usageErr("run: arguments: %w", err)
	}
	result, callErr := inst.Execute(ctx, cmdName, argBytes)
	if callErr == nil && cmdName == abi.CommandFetchIncidents {
		callErr = storeFetch(ctx, svc, info, result)
	}
	if callErr == nil && *lastRunPath != "" {
		if err := writeLastRun(ctx, svc, info, *lastRunPath); err != nil {
			return fmt.Errorf("run: --last-run: %w", err)
		}
	}
	if callErr == nil {
		if err := printResult(a.stdout, cmdName, result, *asJSON); err != nil {
			return err
		}
	}
	if !*asJSON {
		printEffects(a.stdout, svc)
	}
	if callErr != nil {
		var ce *host.CallError
		if errors.As(callErr, &ce) {
			return withCode(exitFailed, fmt.Errorf("%w (plugin %s, command %s)", ce.Err, ce.Plugin, ce.Command))
		}
		return withCode(exitFailed, callErr)
	}
	return nil
}

// buildArgs merges --args-json and --arg and, for a command the manifest
// declares, rejects unknown arguments, fills defaults, and checks required
// arguments and options.
func buildArgs(m *abi.Manifest, cmdName, argsJSON string, kv map[string]string) (map[string]any, error) {
	args := map[string]any{}
	if argsJSON != "" {
		dec := json.NewDecoder(strings.NewReader(argsJSON))
		dec.UseNumber()
		if err := dec.Decode(&args); err != nil || args == nil {
			return nil, fmt.Errorf("--args-json: want a JSON object: %v", err)
		}
	}
	for k, v := range kv {
		args[k] = v
	}
	c, declared := m.Command(cmdName)
	if !declared {
		return args, nil
	}
	var errs []error
	names := make([]string, 0, len(c.Arguments))
	for _, d := range c.Arguments {
		names = append(names, d.Name)
	}
	given := make([]string, 0, len(args))
	for k := range args {
		given = append(given, k)
	}
	sort.Strings(given)
	for _, k := range given {
		if !slices.Contains(names, k) {
			errs = append(errs, fmt.Errorf("argument %q: not declared (declared: %s)", k, orNone(names)))
		}
	}
	for _, d := range c.Arguments {
		v, ok := args[d.Name]
		if !ok || v == "" || v == nil {
			switch {
			case d.Default != "":
				args[d.Name] = d.Default
			case d.Required:
				errs = append(errs, fmt.Errorf("argument %q: required", d.Name))
			}
			continue
		}
		if s, isString := v.(string); isString && len(d.Options) > 0 && !slices.Contains(d.Options, s) {
			errs = append(errs, fmt.Errorf("argument %q: %q is not one of %s", d.Name, s, strings.Join(d.Options, ", ")))
		}
	}
	return args, errors.Join(errs...)
}

func supported(m *abi.Manifest) []string {
	out := reservedCommands(m)
	for _, c := range m.Commands {
		out = append(out, c.Name)
	}
	return out
}

// echoParams renders the effective parameters with secrets masked.
func echoParams(m *abi.Manifest, values map[string]any) string {
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		v := fmt.Sprint(values[k])
		if p, _ := m.Param(k); p.Type == abi.ParamSecret {
			v = secretMask
		}
		parts = append(parts, k+"="+v)
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}

// storeFetch does what the server does with a successful fetch: store the
// incidents and the last run together.
func storeFetch(ctx context.Context, svc host.Services, info abi.InstanceInfo, result json.RawMessage) error {
	var fr abi.FetchIncidentsResult
	if err := json.Unmarshal(result, &fr); err != nil {
		return fmt.Errorf("fetch-incidents result: %w", err)
	}
	if len(fr.Incidents) > 0 {
		if _, err := svc.CreateIncidents(ctx, info, abi.CreateIncidentsRequest{Incidents: fr.Incidents, LastRun: fr.LastRun}); err != nil {
			return fmt.Errorf("storing incidents: %w", err)
		}
	}
	if fr.LastRun != nil {
		if err := svc.SetLastRun(ctx, info, fr.LastRun); err != nil {
			return fmt.Errorf("storing last run: %w", err)
		}
	}
	return nil
}

func readLastRun(path string) (map[string]any, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // first run
	}
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object: %w", path, err)
	}
	return v, nil
}

func writeLastRun(ctx context.Context, svc host.Services, info abi.InstanceInfo, path string) error {
	v, err := svc.LastRun(ctx, info)
	if err != nil || v == nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func printResult(w io.Writer, cmdName string, result json.RawMessage, raw bool) error {
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	if raw {
		_, err := fmt.Fprintf(w, "%s\n", result)
		return err
	}
	var s string
	if json.Unmarshal(result, &s) == nil {
		// test-module's "ok", update-remote-system's id: print the bare string.
		_, err := fmt.Fprintln(w, s)
		return err
	}
	// A CommandResults with readable output reads like the XSOAR war room:
	// the Markdown, then the context outputs; --json gives the whole result.
	var cr abi.CommandResults
	if json.Unmarshal(result, &cr) == nil && cr.ReadableOutput != "" {
		fmt.Fprintf(w, "%s\n", strings.TrimRight(cr.ReadableOutput, "\n"))
		if cr.Outputs == nil {
			return nil
		}
		out, err := json.MarshalIndent(cr.Outputs, "", "  ")
		if err != nil {
			return err
		}
		label := "outputs"
		if cr.OutputsPrefix != "" {
			label += " (" + cr.OutputsPrefix + ")"
		}
		_, err = fmt.Fprintf(w, "\n%s:\n%s\n", label, out)
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, result, "", "  "); err != nil {
		return fmt.Errorf("command %s: result is not JSON: %w", cmdName, err)
	}
	buf.WriteByte('\n')
	_, err := buf.WriteTo(w)
	return err
}

// printEffects lists what the command wrote through the host services.
func printEffects(w io.Writer, r *recorder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.incidents)+len(r.entries)+len(r.health)+len(r.contexts)+r.lastRuns == 0 {
		return
	}
	fmt.Fprintln(w, "\nside effects:")
	if len(r.incidents) > 0 {
		fmt.Fprintf(w, "  incidents created: %d\n", len(r.incidents))
		for _, inc := range r.incidents {
			fmt.Fprintf(w, "    %s  %s\n", inc.ID, inc.Name)
		}
	}
	if len(r.entries) > 0 {
		fmt.Fprintf(w, "  entries added: %d\n", len(r.entries))
		for _, e := range r.entries {
			fmt.Fprintf(w, "    incident %s: type %d: %s\n", e.IncidentID, e.Entry.Type, short(e.Entry.Contents))
		}
	}
	for _, h := range r.health {
		state := "ok"
		if h.IsError {
			state = "error"
		}
		fmt.Fprintf(w, "  module health: %s: %s\n", state, h.Message)
	}
	if n := len(r.contexts); n > 0 {
		fmt.Fprintf(w, "  integration context: written %d time(s), now version %d\n", n, r.contexts[n-1])
	}
	if r.lastRuns > 0 {
		fmt.Fprintf(w, "  last run: set %d time(s)\n", r.lastRuns)
	}
}

// short renders entry contents on one line, cut to 100 characters.
func short(v any) string {
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 100 {
		s = string(r[:99]) + "…"
	}
	return s
}
