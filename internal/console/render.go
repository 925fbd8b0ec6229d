package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/store"
)

// pageTemplate is the layout with one page's "content".
type pageTemplate = template.Template

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"join": strings.Join,
	"list": func(s ...string) []string { return s },
	// settingsForm is the settings fieldset of an instance of a plugin
	// with manifest m; newSettingsForm that of a new one.
	"settingsForm":    newSettingsForm,
	"newSettingsForm": func(m *abi.Manifest) settingsForm { return newSettingsForm(store.Settings{}, m) },
	"has": func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	},
}

// parsePages parses templates/layout.html with each templates/page_*.html.
func parsePages() (map[string]*pageTemplate, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(templateFS, "templates/page_*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*pageTemplate{}
	for _, f := range files {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, f)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(path.Base(f), "page_"), ".html")
		pages[name] = t
	}
	return pages, nil
}

// flash is the outcome of an action, shown at the top of the page.
type flash struct {
	OK     bool
	Title  string
	Detail string
	// Pre is preformatted output: a command's result.
	Pre string
	// Lines are steps, one per line: mirroring's debug log.
	Lines []string
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string
	CSRF    string
	KeyName string
	Role    string
	Flash   *flash
	Data    any
	s       *session
}

// Can reports whether the signed-in key may do action: the template shows
// an action's controls only then.
func (v *view) Can(action string) bool { return v.s != nil && allowed(v.s.role, action) }

// render writes page with the layout.
func (r *req) render(status int, page, title, nav string, data any, f *flash) error {
	t, ok := r.co.pages[page]
	if !ok {
		return fmt.Errorf("console: no page template %q", page)
	}
	v := &view{Title: title, Nav: nav, Flash: f, Data: data, s: r.s}
	if r.s != nil {
		v.CSRF, v.KeyName, v.Role = r.s.csrf, r.s.keyName, string(r.s.role)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		r.co.log.Error().Err(err).Str("page", page).Msg("console: rendering")
		return fmt.Errorf("console: rendering page %s: %w", page, err)
	}
	return r.HTMLBlob(status, buf.Bytes())
}

// errFlash is err as the API would answer it: status and {error, detail}.
func errFlash(err error) (int, *flash) {
	status, body := api.ErrorBody(err)
	title := string(body.Error)
	if body.Kind != "" {
		title += " (" + string(body.Kind) + ")"
	}
	return status, &flash{Title: title, Detail: body.Detail}
}

// okFlash is a success message.
func okFlash(title, detail string) *flash { return &flash{OK: true, Title: title, Detail: detail} }

// problem renders the error page with a status, code and detail.
func (r *req) problem(status int, code apitypes.ErrorCode, detail string) error {
	return r.render(status, "error", "Error", "", nil, &flash{Title: string(code), Detail: detail})
}

// errorPage renders err as the API would answer it, on the error page.
func (r *req) errorPage(err error) error {
	status, f := errFlash(err)
	if status >= http.StatusInternalServerError {
		r.co.log.Error().Err(err).Str("path", r.Request().URL.Path).Msg("console")
	}
	return r.render(status, "error", "Error", "", nil, f)
}
