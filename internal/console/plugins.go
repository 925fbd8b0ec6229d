package console

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/service"
)

// overviewRow is one instance on the overview.
type overviewRow struct {
	V          service.InstanceView
	LR         *service.LongRunningStatus
	Mirror     *mirror.Stats
	MirrorNote string
}

func (co *Console) overview(r *req) error { return r.overviewPage(http.StatusOK, nil) }

func (r *req) overviewPage(status int, f *flash) error {
	ctx := r.Request().Context()
	insts, err := r.co.svc.Instances.List(ctx)
	if err != nil {
		return r.errorPage(err)
	}
	rows := make([]overviewRow, 0, len(insts))
	for _, v := range insts {
		row := overviewRow{V: v}
		if lr, err := r.co.svc.LongRunning.Status(ctx, v.Name); err == nil && lr.Supervised {
			row.LR = &lr
		}
		if st, err := r.co.svc.Mirroring.Stats(ctx, v.Name); err == nil {
			row.Mirror = &st
		} else {
			_, fl := errFlash(err)
			row.MirrorNote = fl.Detail
		}
		rows = append(rows, row)
	}
	return r.render(status, "overview", "Overview", "overview", map[string]any{
		"Instances": rows, "Failures": r.co.svc.Commands.RecentFailures(),
	}, f)
}

func (co *Console) pluginsPage(r *req) error { return r.pluginsList(http.StatusOK, nil) }

func (r *req) pluginsList(status int, f *flash) error {
	ps, err := r.co.svc.Plugins.List(r.Request().Context())
	if err != nil {
		return r.errorPage(err)
	}
	return r.render(status, "plugins", "Plugins", "plugins", map[string]any{"Plugins": ps}, f)
}

// formFile reads an uploaded file field; a missing field is nil.
func formFile(r *req, name string) ([]byte, error) {
	fh, err := r.FormFile(name)
	if err == http.ErrMissingFile {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return readPart(fh)
}

func readPart(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func (co *Console) uploadPlugin(r *req) error {
	wasm, err := formFile(r, "wasm")
	if err != nil {
		return r.problem(http.StatusBadRequest, apitypes.CodeInvalidRequest, "reading the .wasm file: "+err.Error())
	}
	if len(wasm) == 0 {
		return r.pluginsList(http.StatusBadRequest, &flash{Title: string(apitypes.CodeInvalidRequest), Detail: "choose the plugin's .wasm file"})
	}
	sig, err := formFile(r, "minisig")
	if err != nil {
		return r.problem(http.StatusBadRequest, apitypes.CodeInvalidRequest, "reading the .minisig file: "+err.Error())
	}
	res, err := co.svc.Plugins.Install(r.Request().Context(), service.InstallRequest{
		Wasm: wasm, Signature: sig, By: r.by(), Force: r.FormValue("force") == "true",
	})
	if err != nil {
		status, f := errFlash(err)
		return r.pluginsList(status, f)
	}
	verb := "Installed"
	if !res.Created {
		verb = "Already installed; made current"
	}
	detail := fmt.Sprintf("%s %s@%s (sha256 %s).", verb, res.Name, res.Version, res.SHA256[:12])
	if res.Signed {
		detail += " Signature: signed by trusted key " + res.KeyID + "."
	} else {
		detail += " Signature: unsigned."
	}
	if res.Warning != "" {
		detail += " " + res.Warning
	}
	if len(res.Switched) > 0 {
		detail += " Switched instances: " + strings.Join(res.Switched, ", ") + "."
	}
	return r.pluginsList(http.StatusOK, okFlash("Plugin installed", detail))
}

// by is who the console acts as, for audit fields.
func (r *req) by() string { return "console:" + r.s.keyName }

func (co *Console) pluginPage(r *req) error { return r.pluginDetail(http.StatusOK, nil) }

func (r *req) pluginDetail(status int, f *flash) error {
	name := r.Param("name")
	vs, err := r.co.svc.Plugins.Versions(r.Request().Context(), name)
	if err != nil {
		if f != nil && f.OK { // the last version was deleted
			return r.pluginsList(status, f)
		}
		return r.errorPage(err)
	}
	var cur service.PluginInfo
	for _, v := range vs {
		if v.Current {
			cur = v
		}
	}
	return r.render(status, "plugin", "Plugin "+name, "plugins", map[string]any{"Name": name, "Versions": vs, "Current": cur}, f)
}

func (r *req) switchOptions() service.SwitchOptions {
	return service.SwitchOptions{By: r.by(), Force: r.FormValue("force") == "true"}
}

func (co *Console) setCurrent(r *req) error {
	res, err := co.svc.Plugins.SetCurrent(r.Request().Context(), r.Param("name"), r.FormValue("version"), r.switchOptions())
	if err != nil {
		status, f := errFlash(err)
		return r.pluginDetail(status, f)
	}
	return r.pluginDetail(http.StatusOK, okFlash("Current version changed", switched(res)))
}

func (co *Console) rollback(r *req) error {
	res, err := co.svc.Plugins.Rollback(r.Request().Context(), r.Param("name"), r.switchOptions())
	if err != nil {
		status, f := errFlash(err)
		return r.pluginDetail(status, f)
	}
	return r.pluginDetail(http.StatusOK, okFlash("Rolled back", switched(res)))
}

func switched(res service.SwitchResult) string {
	s := fmt.Sprintf("%s@%s is current.", res.Name, res.Version)
	if len(res.Switched) > 0 {
		s += " Switched instances: " + strings.Join(res.Switched, ", ") + "."
	}
	return s
}

func (co *Console) deletePlugin(r *req) error {
	name, version := r.Param("name"), r.FormValue("version")
	if err := co.svc.Plugins.Delete(r.Request().Context(), name, version); err != nil {
		status, f := errFlash(err)
		return r.pluginDetail(status, f)
	}
	what := name
	if version != "" {
		what += "@" + version
	} else {
		what += " (every version)"
	}
	return r.pluginDetail(http.StatusOK, okFlash("Deleted", what))
}
