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
	"sort"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/config"
)

// secretMask replaces secret parameter values wherever the runner echoes
// parameters.
const secretMask = "********"

// localInstance identifies the runner's one connector instance.
var localInstance = abi.InstanceInfo{ID: "local", Name: "local"}

// runFlags are the flags of `connhost run`.
type runFlags struct {
	params    *[]string
	paramFile *string
	args      *[]string
	argsJSON  *string
	asJSON    *bool
	egress    *[]string
	lastRun   *string
}

func runCommand(a *app) *cobra.Command {
	c := leaf("run FILE.wasm COMMAND", "run one command of a plugin locally, on a temporary in-memory store",
		"Loads the plugin, validates its params and the command's arguments against its manifest, runs\n"+
			"COMMAND in the sandbox on a temporary in-memory store and prints the result and its side effects.\n\n"+
			"Params come from, in rising precedence: --param-file (a JSON object of NAME: VALUE), environment\n"+
			"variables "+config.EnvParamPrefix+"<NAME> (NAME upper-cased, other characters than letters and digits\n"+
			"as _: "+config.EnvParamPrefix+"API_KEY sets api_key), and --param NAME=VALUE. Give secrets by file or\n"+
			"environment: the command line of a process is visible to every user of the machine (ps).\n\n"+
			"Compiled plugins are cached in connhost/ under the user cache directory (e.g. ~/.cache/connhost)\n"+
			"unless --cache-dir says otherwise.\n\n"+
			"Exit codes: 1 the command failed, 2 usage or bad input, 3 plugin incompatible.")
	f := c.Flags()
	o := runFlags{
		paramFile: f.String("param-file", "", "instance params from a JSON object in `FILE` (for secrets: not in argv)"),
		params:    f.StringArray("param", nil, "instance param `NAME=VALUE` (repeatable; visible in ps: give secrets by --param-file or "+config.EnvParamPrefix+"<NAME>)"),
		args:      f.StringArray("arg", nil, "command argument `NAME=VALUE` (repeatable; overrides --args-json keys)"),
		argsJSON:  f.String("args-json", "", "command arguments as a JSON object"),
		asJSON:    f.Bool("json", false, "print only the raw JSON result"),
		egress:    f.StringArray("egress", nil, "allow http_request to `HOST` (host, host:port or *.domain; repeatable; default: the manifest's egress)"),
		lastRun:   f.String("last-run", "", "JSON `FILE` with the last run: read before the command, written after it"),
	}
	config.RegisterFlags(f, runtimeOptions...)
	aliasFlag(a, f, "timeout", "limits-call-timeout")
	_ = c.MarkFlagFilename("param-file", "json")
	_ = c.MarkFlagFilename("last-run", "json")
	c.ValidArgsFunction = completeRunArgs
	_ = c.RegisterFlagCompletionFunc("param", completeRunParams)
	_ = c.RegisterFlagCompletionFunc("arg", completeRunArguments)
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 2 {
			return argsErr("run: want FILE.wasm and COMMAND")
		}
		return runRun(c.Context(), a, c.Flags(), o, args[0], args[1])
	}
	return c
}

func runRun(ctx context.Context, a *app, fs *pflag.FlagSet, o runFlags, file, cmdName string) error {
	paramKV, err := keyValues("param", *o.params)
	if err != nil {
		return err
	}
	argValues, err := keyValues("arg", *o.args)
	if err != nil {
		return err
	}
	wasm, err := os.ReadFile(file)
	if err != nil {
		return usageErr("run: %w", err)
	}
	lastRun, err := readLastRun(*o.lastRun)
	if err != nil {
		return usageErr("run: --last-run: %w", err)
	}
	cfg, err := loadRuntimeConfig(a, fs)
	if err != nil {
		return err
	}
	// Everything is checked before the runtime starts, so bad input
	// creates no cache directory.
	m, err := precheck(ctx, cfg, file, wasm)
	if err != nil {
		return err
	}
	label := m.Name + "@" + m.Version
	raw, err := gatherParams(m, *o.paramFile, a.environ, paramKV)
	if err != nil {
		return usageErr("plugin %s: %w", label, err)
	}
	values, err := m.ValidateParams(raw)
	if err != nil {
		return usageErr("plugin %s: invalid params:\n%w", label, err)
	}
	if !m.Supports(cmdName) {
		return usageErr("plugin %s does not support command %q (supported: %s)", label, cmdName, strings.Join(supported(m), ", "))
	}
	callArgs, err := buildArgs(m, cmdName, *o.argsJSON, argValues)
	if err != nil {
		return usageErr("plugin %s command %q: %w", label, cmdName, err)
	}

	_, rt, err := openRuntime(ctx, a, cfg)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	p, err := rt.Load(ctx, wasm)
	if err != nil {
		return withCode(exitIncompatible, fmt.Errorf("plugin %s: %w", file, err))
	}
	defer p.Close(ctx)

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
	var allow []string
	if len(*o.egress) > 0 {
		allow = *o.egress
	}
	if !*o.asJSON {
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
	if callErr == nil && *o.lastRun != "" {
		if err := writeLastRun(ctx, svc, info, *o.lastRun); err != nil {
			return fmt.Errorf("run: --last-run: %w", err)
		}
	}
	if callErr == nil {
		if err := printResult(a.stdout, cmdName, result, *o.asJSON); err != nil {
			return err
		}
	}
	if !*o.asJSON {
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

// precheck reads and checks the plugin as the runtime's Load does, short
// of compiling it: the manifest, its ABI version and the module gate.
func precheck(ctx context.Context, cfg *config.Config, file string, wasm []byte) (*abi.Manifest, error) {
	m, err := abi.ReadManifest(wasm)
	if err != nil {
		return nil, withCode(exitIncompatible, fmt.Errorf("plugin %s: %w", file, err))
	}
	label := m.Name + "@" + m.Version
	if m.ABIVersion != abi.Version {
		return nil, withCode(exitIncompatible, fmt.Errorf("plugin %s: incompatible: manifest abi_version %d, this host serves %d", label, m.ABIVersion, abi.Version))
	}
	if err := m.Validate(); err != nil {
		return nil, withCode(exitIncompatible, fmt.Errorf("plugin %s: invalid manifest: %w", label, err))
	}
	if err := host.CheckModule(ctx, wasm, runtimeConfig(cfg, zerolog.Nop()).Module); err != nil {
		return nil, withCode(exitIncompatible, fmt.Errorf("plugin %s: %w", label, err))
	}
	return m, nil
}

// gatherParams merges the params of --param-file, the environment and
// --param, each overriding the one before.
func gatherParams(m *abi.Manifest, file string, environ []string, flags map[string]string) (map[string]any, error) {
	raw := map[string]any{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--param-file: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil || raw == nil {
			return nil, fmt.Errorf("--param-file %s: want a JSON object of NAME: VALUE: %v", file, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("--param-file %s: data after the JSON object", file)
		}
	}
	env, err := envParams(m, environ)
	if err != nil {
		return nil, err
	}
	for k, v := range env {
		raw[k] = v
	}
	for k, v := range flags {
		raw[k] = v
	}
	return raw, nil
}

// paramEnvName is the environment variable of param name.
func paramEnvName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return config.EnvParamPrefix + string(b)
}

// envParams reads the CONNHOST_PARAM_ variables. One that names no param
// of the plugin is an error, as an undeclared --param is, and so is one
// that names two params (apiKey and apikey are both CONNHOST_PARAM_APIKEY).
func envParams(m *abi.Manifest, environ []string) (map[string]string, error) {
	byEnv := map[string][]string{}
	for _, p := range m.Params {
		byEnv[paramEnvName(p.Name)] = append(byEnv[paramEnvName(p.Name)], p.Name)
	}
	out := map[string]string{}
	var unknown []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, config.EnvParamPrefix) {
			continue
		}
		names, ok := byEnv[k]
		switch {
		case !ok:
			unknown = append(unknown, k)
			continue
		case len(names) > 1:
			return nil, fmt.Errorf("%s is ambiguous: params %s of plugin %s both map to it; give them by --param-file", k, strings.Join(names, " and "), m.Name)
		}
		out[names[0]] = v
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		known := make([]string, 0, len(byEnv))
		for k := range byEnv {
			known = append(known, k)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("%s: no such param of plugin %s (it takes %s)", strings.Join(unknown, ", "), m.Name, orNone(known))
	}
	return out, nil
}

// keyValues parses repeated k=v flag values.
func keyValues(flag string, items []string) (map[string]string, error) {
	out := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, usageErr("--%s %q: want NAME=VALUE", flag, it)
		}
		out[k] = v
	}
	return out, nil
}

// completeRunArgs completes FILE.wasm, then the plugin's commands.
func completeRunArgs(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return []cobra.Completion{"wasm"}, cobra.ShellCompDirectiveFilterFileExt
	case 1:
		m := manifestOf(args[0])
		if m == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, name := range reservedCommands(m) {
			out = append(out, cobra.CompletionWithDesc(name, "reserved command"))
		}
		for _, cmd := range m.Commands {
			out = append(out, cobra.CompletionWithDesc(cmd.Name, cmd.Description))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeRunParams completes --param with the plugin's param names.
func completeRunParams(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	if len(args) > 0 {
		if m := manifestOf(args[0]); m != nil {
			for _, p := range m.Params {
				out = append(out, cobra.CompletionWithDesc(p.Name+"=", string(p.Type)))
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// completeRunArguments completes --arg with the command's argument names.
func completeRunArguments(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	if len(args) > 1 {
		if m := manifestOf(args[0]); m != nil {
			if cmd, ok := m.Command(args[1]); ok {
				for _, arg := range cmd.Arguments {
					out = append(out, cobra.CompletionWithDesc(arg.Name+"=", arg.Description))
				}
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// manifestOf reads the manifest of a plugin file for completion; nil when
// there is none to read.
func manifestOf(file string) *abi.Manifest {
	wasm, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	m, err := abi.ReadManifest(wasm)
	if err != nil {
		return nil
	}
	return m
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
	return c.CheckArgs(args)
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
