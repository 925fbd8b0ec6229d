package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/service"
)

// Incident list paging, as the API's.
const (
	defaultPage = 50
	maxPage     = 500
	maxEntries  = 1000
)

var statuses = []struct {
	Name  string
	Value abi.IncidentStatus
}{{"pending", abi.StatusPending}, {"active", abi.StatusActive}, {"done", abi.StatusDone}, {"archive", abi.StatusArchive}}

func statusName(s abi.IncidentStatus) string {
	for _, x := range statuses {
		if x.Value == s {
			return x.Name
		}
	}
	return strconv.Itoa(int(s))
}

func (co *Console) incidentsPage(r *req) error {
	q := service.IncidentQuery{Instance: r.QueryParam("instance"), Type: r.QueryParam("type"), Text: r.QueryParam("q"),
		Cursor: r.QueryParam("cursor"), Limit: defaultPage}
	if v := r.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			return r.problem(http.StatusBadRequest, apitypes.CodeInvalidRequest, fmt.Sprintf("limit %q: want an integer from 1 to %d", v, maxPage))
		}
		q.Limit = n
	}
	if v := r.QueryParam("status"); v != "" {
		found := false
		for _, s := range statuses {
			if s.Name == v {
				st := s.Value
				q.Status, found = &st, true
			}
		}
		if !found {
			return r.problem(http.StatusBadRequest, apitypes.CodeInvalidRequest, fmt.Sprintf("status %q: want pending, active, done or archive", v))
		}
	}
	if v := r.QueryParam("modifiedAfter"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return r.problem(http.StatusBadRequest, apitypes.CodeInvalidRequest, fmt.Sprintf("modified after %q: want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z", v))
		}
		q.ModifiedAfter = t
	}
	incs, next, err := co.svc.Incidents.Search(r.Request().Context(), q)
	if err != nil {
		return r.errorPage(err)
	}
	nextURL := ""
	if next != "" {
		v := url.Values{}
		for _, k := range []string{"q", "status", "instance", "type", "modifiedAfter", "limit"} {
			if x := r.QueryParam(k); x != "" {
				v.Set(k, x)
			}
		}
		v.Set("cursor", next)
		nextURL = "/incidents?" + v.Encode()
	}
	insts, _ := co.svc.Instances.List(r.Request().Context())
	return r.render(http.StatusOK, "incidents", "Incidents", "incidents", map[string]any{
		"Incidents": incs, "Next": nextURL, "Statuses": statuses, "Instances": insts, "StatusName": statusName,
		"Q": r.QueryParam("q"), "Status": r.QueryParam("status"), "Instance": r.QueryParam("instance"),
		"Type": r.QueryParam("type"), "ModifiedAfter": r.QueryParam("modifiedAfter"), "Limit": q.Limit,
	}, nil)
}

func (co *Console) incidentPage(r *req) error { return r.incidentDetail(http.StatusOK, nil) }

// incidentDetail renders an incident: fields, war room, mirroring record.
func (r *req) incidentDetail(status int, f *flash) error {
	ctx := r.Request().Context()
	id := r.Param("id")
	inc, err := r.co.svc.Incidents.Get(ctx, id)
	if err != nil {
		return r.errorPage(err)
	}
	entries, more, err := r.co.svc.Incidents.ListEntries(ctx, id, service.EntryQuery{Limit: maxEntries})
	if err != nil {
		return r.errorPage(err)
	}
	data := map[string]any{"Inc": inc, "Entries": entries, "MoreEntries": more != "", "Status": statusName(inc.Status),
		"Open": inc.Status != abi.StatusDone && inc.Status != abi.StatusArchive}
	if inc.DbotMirrorID != "" {
		if rec, err := r.co.svc.Mirroring.SyncRecord(ctx, id); err == nil {
			data["Sync"] = rec
		} else {
			_, fl := errFlash(err)
			data["SyncErr"] = fl.Detail
		}
	}
	return r.render(status, "incident", inc.Name, "incidents", data, f)
}

func (r *req) incidentResult(err error, title, detail string) error {
	if err != nil {
		status, f := errFlash(err)
		return r.incidentDetail(status, f)
	}
	return r.incidentDetail(http.StatusOK, okFlash(title, detail))
}

// tags splits a comma-separated tag list.
func tags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func (co *Console) addEntry(r *req) error {
	e, err := co.svc.Incidents.AddEntry(r.Request().Context(), r.Param("id"), service.EntryInput{
		Contents: r.FormValue("contents"), Tags: tags(r.FormValue("tags")), Note: r.FormValue("note") == "true",
		User: r.s.keyName,
	})
	detail := "entry " + e.ID
	if len(e.Tags) > 0 {
		detail += " tagged " + strings.Join(e.Tags, ", ")
	}
	return r.incidentResult(err, "Entry added", detail)
}

func (co *Console) closeIncident(r *req) error {
	_, err := co.svc.Incidents.Close(r.Request().Context(), r.Param("id"), r.FormValue("closeReason"), r.FormValue("closeNotes"))
	return r.incidentResult(err, "Closed", "")
}

func (co *Console) reopenIncident(r *req) error {
	_, err := co.svc.Incidents.Reopen(r.Request().Context(), r.Param("id"))
	return r.incidentResult(err, "Reopened", "")
}

func (co *Console) mirrorDebug(r *req) error {
	start := time.Now()
	steps, err := co.svc.Mirroring.Debug(r.Request().Context(), r.Param("id"))
	if err != nil {
		return r.incidentResult(err, "", "")
	}
	f := okFlash("Mirrored now", fmt.Sprintf("%d steps in %s", len(steps), time.Since(start).Round(time.Millisecond)))
	f.Lines = steps
	return r.incidentDetail(http.StatusOK, f)
}

func (co *Console) keysPage(r *req) error { return r.keysList(http.StatusOK, nil) }

func (r *req) keysList(status int, f *flash) error {
	keys, err := r.co.svc.APIKeys.List(r.Request().Context())
	if err != nil {
		return r.errorPage(err)
	}
	return r.render(status, "keys", "API keys", "keys", map[string]any{"Keys": keys, "Roles": service.Roles}, f)
}

func (co *Console) createKey(r *req) error {
	spec := service.APIKeySpec{Name: strings.TrimSpace(r.FormValue("name")), Role: service.Role(r.FormValue("role"))}
	if v := r.FormValue("expires"); v != "" {
		t, err := time.ParseInLocation("2006-01-02", v, time.UTC)
		if err != nil {
			return r.keysList(http.StatusBadRequest, &flash{Title: string(apitypes.CodeInvalidRequest), Detail: fmt.Sprintf("expires %q: want a date, e.g. 2026-12-31", v)})
		}
		spec.Expires = t
	}
	key, v, err := co.svc.APIKeys.Issue(r.Request().Context(), spec)
	if err != nil {
		status, f := errFlash(err)
		return r.keysList(status, f)
	}
	co.log.Info().Str("apikey", r.s.keyName).Str("created", v.Name).Str("id", v.ID).Str("role", string(v.Role)).Msg("API key created in the console")
	f := okFlash("API key created", fmt.Sprintf("%s (%s). Copy the key now: it is shown only this once.", v.Name, v.Role))
	f.Pre = key
	return r.keysList(http.StatusOK, f)
}

func (co *Console) revokeKey(r *req) error {
	id := r.Param("id")
	if err := co.svc.APIKeys.Revoke(r.Request().Context(), id); err != nil {
		status, f := errFlash(err)
		return r.keysList(status, f)
	}
	co.sessions.endKey(id)
	co.log.Info().Str("apikey", r.s.keyName).Str("revoked", id).Msg("API key revoked in the console")
	if id == r.s.keyID {
		return r.redirect("/login")
	}
	return r.keysList(http.StatusOK, okFlash("API key revoked", id))
}
