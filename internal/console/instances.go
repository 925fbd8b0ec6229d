package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
)

// paramField is one manifest param as a form control.
type paramField struct {
	abi.Param
	// Value is the current value (or, on create, the default) as text.
	Value string
	// Checked is a bool param's value.
	Checked bool
	// IsSet says whether a secret param has a value; its value is never
	// shown.
	IsSet bool
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// paramFields builds the param controls of m: from v's values when
// editing (v != nil), else from the defaults.
func paramFields(m *abi.Manifest, v *service.InstanceView) []paramField {
	out := make([]paramField, 0, len(m.Params))
	for _, p := range m.Params {
		f := paramField{Param: p}
		val := p.Default
		if v != nil {
			val = v.Params[p.Name]
			for _, s := range v.SecretsSet {
				if s == p.Name {
					f.IsSet = true
				}
			}
		}
		if p.Type == abi.ParamSecret {
			val = nil
		}
		f.Value = text(val)
		if b, ok := val.(bool); ok {
			f.Checked = b
		}
		out = append(out, f)
	}
	return out
}

// formParams reads the "p.NAME" fields of m's params. On create an empty
// field is left out (the default applies); on update it removes the value,
// except a secret, which an empty field keeps ("clear.NAME" removes it).
func formParams(r *req, m *abi.Manifest, update bool) map[string]any {
	out := map[string]any{}
	for _, p := range m.Params {
		key := "p." + p.Name
		v := strings.TrimSpace(r.FormValue(key))
		switch {
		case p.Type == abi.ParamBool:
			out[p.Name] = r.FormValue(key) == "true"
		case p.Type == abi.ParamSecret:
			if v != "" {
				out[p.Name] = r.FormValue(key) // secrets as typed
			} else if update && r.FormValue("clear."+p.Name) == "true" {
				out[p.Name] = nil
			}
		case v != "":
			out[p.Name] = v
		case update:
			out[p.Name] = nil
		}
	}
	return out
}

// settingsForm is what the settings fieldset shows: the instance's
// settings, and which conventional params the manifest declares, whose
// settings the form leaves out (the param drives the host: docs/api.md,
// "Instance settings").
type settingsForm struct {
	S        store.Settings
	Declared map[string]bool
}

// newSettingsForm returns the settings fieldset of st for manifest m.
func newSettingsForm(st store.Settings, m *abi.Manifest) settingsForm {
	f := settingsForm{S: st, Declared: map[string]bool{}}
	for _, p := range mirror.ConventionalParams {
		f.Declared[p] = m != nil && mirror.Declares(m, p)
	}
	return f
}

// formSettings applies the settings fields of the instance form to st;
// settings the form does not show (those of conventional params m
// declares) keep their value.
func formSettings(r *req, st store.Settings, m *abi.Manifest) (store.Settings, error) {
	shown := func(param string) bool { return !mirror.Declares(m, param) }
	if shown(mirror.ParamIsFetch) {
		st.FetchEnabled = r.FormValue("s.isFetch") == "true"
	}
	if shown(mirror.ParamCloseIncident) {
		st.CloseIncident = r.FormValue("s.close_incident") == "true"
	}
	if shown(mirror.ParamCloseOut) {
		st.CloseOut = r.FormValue("s.close_out") == "true"
	}
	if shown(mirror.ParamMirrorDirection) {
		st.MirrorDirection = r.FormValue("s.mirror_direction")
	}
	if shown(mirror.ParamCommentTag) {
		st.CommentTag = strings.TrimSpace(r.FormValue("s.comment_tag"))
	}
	if shown(mirror.ParamWorkNotesTag) {
		st.WorkNotesTag = strings.TrimSpace(r.FormValue("s.work_notes_tag"))
	}
	st.LongRunning = r.FormValue("s.longRunning") == "true"
	if shown(mirror.ParamFetchInterval) {
		st.FetchIntervalMinutes = 0
		if v := strings.TrimSpace(r.FormValue("s.incidentFetchInterval")); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return st, fmt.Errorf("%w: fetch interval %q: want whole minutes", service.ErrInvalid, v)
			}
			st.FetchIntervalMinutes = n
		}
	}
	return st, nil
}

// manifestOf returns the manifest of plugin@version ("" for the current).
func (r *req) manifestOf(plugin, version string) (*abi.Manifest, []service.PluginInfo, error) {
	vs, err := r.co.svc.Plugins.Versions(r.Request().Context(), plugin)
	if err != nil {
		return nil, nil, err
	}
	for _, v := range vs {
		if (version == "" && v.Current) || v.Version == version {
			return v.Manifest, vs, nil
		}
	}
	return nil, vs, fmt.Errorf("plugin %s@%s: %w", plugin, version, service.ErrNotFound)
}

func (co *Console) instancesPage(r *req) error { return r.instancesList(http.StatusOK, nil) }

// instancesList renders the instance list and, for a key that may create
// instances, the form for the plugin chosen in ?plugin= (or posted).
func (r *req) instancesList(status int, f *flash) error {
	ctx := r.Request().Context()
	insts, err := r.co.svc.Instances.List(ctx)
	if err != nil {
		return r.errorPage(err)
	}
	plugins, err := r.co.svc.Plugins.List(ctx)
	if err != nil {
		return r.errorPage(err)
	}
	data := map[string]any{"Instances": insts, "Plugins": plugins}
	if p := r.FormValue("plugin"); p != "" && allowed(r.s.role, "instances.create") {
		m, vs, err := r.manifestOf(p, "")
		if err != nil {
			if f == nil {
				status, f = errFlash(err)
			}
		} else {
			fields := paramFields(m, nil)
			if r.Request().Method == http.MethodPost { // a refused create keeps what was typed, but no secret
				for i := range fields {
					if fields[i].Type != abi.ParamSecret {
						fields[i].Value = r.FormValue("p." + fields[i].Name)
						fields[i].Checked = r.FormValue("p."+fields[i].Name) == "true"
					}
				}
			}
			data["Plugin"], data["Manifest"], data["Versions"], data["Params"] = p, m, vs, fields
			data["Name"] = r.FormValue("name")
		}
	}
	return r.render(status, "instances", "Instances", "instances", data, f)
}

func (co *Console) createInstance(r *req) error {
	plugin, version := r.FormValue("plugin"), r.FormValue("version")
	m, _, err := r.manifestOf(plugin, version)
	if err != nil {
		status, f := errFlash(err)
		return r.instancesList(status, f)
	}
	settings, err := formSettings(r, store.Settings{}, m)
	if err != nil {
		status, f := errFlash(err)
		return r.instancesList(status, f)
	}
	on := r.FormValue("enabled") == "true"
	in := service.InstanceInput{Name: strings.TrimSpace(r.FormValue("name")), Plugin: plugin, Enabled: &on,
		Params: formParams(r, m, false), Settings: &settings}
	if version != "" {
		in.Version = &version
	}
	v, err := co.svc.Instances.Create(r.Request().Context(), in)
	if err != nil {
		status, f := errFlash(err)
		return r.instancesList(status, f)
	}
	r.SetParamNames("name")
	r.SetParamValues(v.Name)
	return r.instanceDetail(http.StatusOK, okFlash("Instance created", fmt.Sprintf("%s runs %s@%s.", v.Name, v.Plugin, v.Version)))
}

func (co *Console) instancePage(r *req) error { return r.instanceDetail(http.StatusOK, nil) }

// instanceDetail renders an instance: state, actions, the edit form, the
// command runner and the integration context, as the key's role allows.
func (r *req) instanceDetail(status int, f *flash) error {
	ctx := r.Request().Context()
	name := r.Param("name")
	v, err := r.co.svc.Instances.Get(ctx, name)
	if err != nil {
		if f != nil {
			return r.instancesList(status, f)
		}
		return r.errorPage(err)
	}
	m, vs, err := r.manifestOf(v.Plugin, v.Version)
	if err != nil {
		return r.errorPage(fmt.Errorf("instance %q: %w", name, err))
	}
	data := map[string]any{"V": v, "Manifest": m, "Versions": vs, "Params": paramFields(m, &v)}
	if lr, err := r.co.svc.LongRunning.Status(ctx, name); err == nil && lr.Supervised {
		data["LR"] = lr
	}
	if st, err := r.co.svc.Mirroring.Stats(ctx, name); err == nil {
		data["Mirror"] = st
	}
	if cmd := r.FormValue("command"); cmd != "" { // the command runner's form, from ?command= or the run just posted
		for i := range m.Commands {
			if m.Commands[i].Name == cmd {
				data["Command"] = &m.Commands[i]
			}
		}
	}
	if allowed(r.s.role, "instances.context.read") {
		val, ver, err := r.co.svc.Instances.Context(ctx, name)
		if err != nil {
			_, fl := errFlash(err)
			data["ContextErr"] = fl.Detail
		} else {
			if val == nil {
				val = map[string]any{}
			}
			b, _ := json.MarshalIndent(val, "", "  ")
			data["Context"], data["ContextVersion"] = string(b), ver
		}
	}
	return r.render(status, "instance", "Instance "+name, "instances", data, f)
}

// instanceResult renders the instance page with an action's outcome.
func (r *req) instanceResult(err error, title, detail string) error {
	if err != nil {
		status, f := errFlash(err)
		return r.instanceDetail(status, f)
	}
	return r.instanceDetail(http.StatusOK, okFlash(title, detail))
}

func (co *Console) updateInstance(r *req) error {
	ctx := r.Request().Context()
	name := r.Param("name")
	old, err := co.svc.Instances.Get(ctx, name)
	if err != nil {
		return r.instanceResult(err, "", "")
	}
	m, _, err := r.manifestOf(old.Plugin, old.Version)
	if err != nil {
		return r.instanceResult(err, "", "")
	}
	settings, err := formSettings(r, old.Settings, m)
	if err != nil {
		return r.instanceResult(err, "", "")
	}
	on := r.FormValue("enabled") == "true"
	_, err = co.svc.Instances.Update(ctx, name, service.InstanceInput{Params: formParams(r, m, true), Settings: &settings, Enabled: &on})
	return r.instanceResult(err, "Instance saved", name+" was updated and restarted.")
}

func (co *Console) testInstance(r *req) error {
	err := co.svc.Commands.Test(r.Request().Context(), r.Param("name"))
	return r.instanceResult(err, "Test passed", "test-module answered ok.")
}

func (co *Console) enable(r *req) error {
	_, err := co.svc.Instances.SetEnabled(r.Request().Context(), r.Param("name"), true)
	return r.instanceResult(err, "Enabled", r.Param("name")+" is running.")
}

func (co *Console) disable(r *req) error {
	_, err := co.svc.Instances.SetEnabled(r.Request().Context(), r.Param("name"), false)
	return r.instanceResult(err, "Disabled", r.Param("name")+" is stopped.")
}

func (co *Console) pin(r *req) error {
	version := r.FormValue("version")
	v, err := co.svc.Plugins.Pin(r.Request().Context(), r.Param("name"), version, r.switchOptions())
	detail := "follows the current version (" + v.Version + ")"
	if version != "" {
		detail = "pinned to " + version
	}
	return r.instanceResult(err, "Version set", r.Param("name")+" "+detail+".")
}

func (co *Console) execute(r *req) error {
	name, cmd := r.Param("name"), r.FormValue("command")
	if cmd == "" {
		return r.instanceResult(fmt.Errorf("%w: choose a command", service.ErrInvalid), "", "")
	}
	args := map[string]any{}
	for k, vs := range r.Request().PostForm {
		if a, ok := strings.CutPrefix(k, "a."); ok && len(vs) > 0 && vs[0] != "" {
			args[a] = vs[0]
		}
	}
	res, err := co.svc.Commands.Execute(r.Request().Context(), name, service.ExecuteRequest{
		Command: cmd, Args: args, IncidentID: strings.TrimSpace(r.FormValue("incident")),
	})
	if err != nil {
		return r.instanceResult(err, "", "")
	}
	f := okFlash("Command done", cmd+" on "+name)
	var out bytes.Buffer
	if json.Indent(&out, res.Result, "", "  ") == nil {
		f.Pre = out.String()
	} else {
		f.Pre = string(res.Result)
	}
	if res.EntryID != "" {
		f.Detail += "; written to the incident as entry " + res.EntryID
	}
	return r.instanceDetail(http.StatusOK, f)
}

func (co *Console) fetch(r *req) error {
	sum, err := co.svc.Commands.Fetch(r.Request().Context(), r.Param("name"))
	return r.instanceResult(err, "Fetched", fmt.Sprintf("%d incidents fetched, %d new: %s", sum.Fetched, len(sum.Created), strings.Join(sum.Created, ", ")))
}

func (co *Console) setContext(r *req) error {
	var val map[string]any
	if err := json.Unmarshal([]byte(r.FormValue("context")), &val); err != nil {
		return r.instanceResult(fmt.Errorf("%w: integration context: want a JSON object: %v", service.ErrInvalid, err), "", "")
	}
	ver, err := strconv.ParseInt(r.FormValue("version"), 10, 64)
	if err != nil {
		return r.instanceResult(fmt.Errorf("%w: context version %q: want the version read", service.ErrInvalid, r.FormValue("version")), "", "")
	}
	nv, err := co.svc.Instances.SetContext(r.Request().Context(), r.Param("name"), val, ver)
	return r.instanceResult(err, "Integration context saved", fmt.Sprintf("now at version %d", nv))
}

func (co *Console) mirrorRun(r *req) error {
	rep, err := co.svc.Mirroring.RunCycle(r.Request().Context(), r.Param("name"))
	return r.instanceResult(err, "Mirroring cycle done", fmt.Sprintf("mode %s: %d candidates, %d synced, %d skipped, %d failed, %d new entries in %s",
		rep.Mode, rep.Candidate, rep.Synced, rep.Skipped, rep.Failed, rep.Entries, rep.Duration))
}
