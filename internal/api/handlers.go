package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/service"
)

// Page limits of list endpoints.
const (
	defaultPageLimit = 50
	maxPageLimit     = 500
)

func (s *Server) listPlugins(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	ps, err := s.svc.Plugins.List(ctx(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.PluginList{Plugins: orEmpty(mapSlice(ps, pluginOut))})
}

func (s *Server) getPlugin(c echo.Context) error {
	vs, err := s.svc.Plugins.Versions(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.PluginDetail{Name: c.Param("name"), Versions: orEmpty(mapSlice(vs, pluginOut))})
}

func (s *Server) deletePlugin(c echo.Context) error {
	if err := checkQuery(c, "version"); err != nil {
		return err
	}
	if err := s.svc.Plugins.Delete(ctx(c), c.Param("name"), c.QueryParam("version")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) createInstance(c echo.Context) error {
	var in apitypes.InstanceInput
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	v, err := s.svc.Instances.Create(ctx(c), instanceIn(in))
	if errors.Is(err, service.ErrNotFound) {
		// The missing thing is the plugin the body names, not this URL.
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "%v", err)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, instanceOut(v))
}

func (s *Server) listInstances(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	vs, err := s.svc.Instances.List(ctx(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.InstanceList{Instances: orEmpty(mapSlice(vs, instanceOut))})
}

func (s *Server) getInstance(c echo.Context) error {
	v, err := s.svc.Instances.Get(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, instanceOut(v))
}

func (s *Server) updateInstance(c echo.Context) error {
	var in apitypes.InstancePatch
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	v, err := s.svc.Instances.Update(ctx(c), c.Param("name"), instancePatchIn(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, instanceOut(v))
}

func (s *Server) deleteInstance(c echo.Context) error {
	if err := s.svc.Instances.Delete(ctx(c), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) enableInstance(c echo.Context) error  { return s.setEnabled(c, true) }
func (s *Server) disableInstance(c echo.Context) error { return s.setEnabled(c, false) }

func (s *Server) setEnabled(c echo.Context, on bool) error {
	v, err := s.svc.Instances.SetEnabled(ctx(c), c.Param("name"), on)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, instanceOut(v))
}

func (s *Server) testInstance(c echo.Context) error {
	name := c.Param("name")
	start := time.Now()
	err := s.svc.Commands.Test(ctx(c), name)
	s.metrics.command(name, abi.CommandTestModule, !errors.Is(err, service.ErrNotFound), err, time.Since(start))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.TestResult{OK: true})
}

func (s *Server) execute(c echo.Context) error {
	var req apitypes.ExecuteRequest
	if err := s.decode(c, &req, false); err != nil {
		return err
	}
	if strings.TrimSpace(req.Command) == "" {
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "command is required")
	}
	start := time.Now()
	res, err := s.svc.Commands.Execute(ctx(c), c.Param("name"), service.ExecuteRequest{Command: req.Command, Args: req.Args, IncidentID: req.IncidentID})
	s.metrics.command(c.Param("name"), req.Command, res.Served, err, time.Since(start))
	if err != nil {
		// The entry that recorded the failure, if any, goes with the error.
		status, body := classify(err)
		body.EntryID = res.EntryID
		return &apiError{status, body}
	}
	return c.JSON(http.StatusOK, apitypes.ExecuteResult{Result: resultOut(res.Result), EntryID: res.EntryID})
}

func (s *Server) fetch(c echo.Context) error {
	start := time.Now()
	sum, err := s.svc.Commands.Fetch(ctx(c), c.Param("name"))
	s.metrics.command(c.Param("name"), abi.CommandFetchIncidents, !errors.Is(err, service.ErrNotFound), err, time.Since(start))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, fetchOut(sum))
}

func (s *Server) health(c echo.Context) error {
	h, err := s.svc.Instances.Health(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, healthOut(h))
}

func (s *Server) getContext(c echo.Context) error {
	v, ver, err := s.svc.Instances.Context(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	if v == nil {
		v = map[string]any{}
	}
	return c.JSON(http.StatusOK, apitypes.Context{Context: v, Version: ver})
}

func (s *Server) putContext(c echo.Context) error {
	var in apitypes.ContextInput
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	if in.Version == nil {
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "version is required: the version read, or -1 to write unconditionally")
	}
	if *in.Version < -1 {
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "version %d: want the version read, or -1", *in.Version)
	}
	ver, err := s.svc.Instances.SetContext(ctx(c), c.Param("name"), in.Context, *in.Version)
	if err != nil {
		return err
	}
	if in.Context == nil {
		in.Context = map[string]any{}
	}
	return c.JSON(http.StatusOK, apitypes.Context{Context: in.Context, Version: ver})
}

func (s *Server) createIncident(c echo.Context) error {
	var in apitypes.IncidentInput
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	inc, err := s.svc.Incidents.Create(ctx(c), incidentIn(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, incidentOut(inc))
}

func (s *Server) getIncident(c echo.Context) error {
	inc, err := s.svc.Incidents.Get(ctx(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, incidentOut(inc))
}

var statusNames = map[string]abi.IncidentStatus{
	"pending": abi.StatusPending, "active": abi.StatusActive, "done": abi.StatusDone, "closed": abi.StatusDone, "archive": abi.StatusArchive,
}

func (s *Server) listIncidents(c echo.Context) error {
	if err := checkQuery(c, "status", "instance", "type", "q", "modifiedAfter", "limit", "cursor"); err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	q := service.IncidentQuery{Instance: c.QueryParam("instance"), Type: c.QueryParam("type"), Text: c.QueryParam("q"),
		Limit: limit, Cursor: c.QueryParam("cursor")}
	if v := c.QueryParam("status"); v != "" {
		st, ok := statusNames[strings.ToLower(v)]
		if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 3 {
			st, ok = abi.IncidentStatus(n), true
		}
		if !ok {
			return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "status %q: want pending, active, done, archive or 0-3", v)
		}
		q.Status = &st
	}
	if v := c.QueryParam("modifiedAfter"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "modifiedAfter %q: want an RFC 3339 time, e.g. 2025-01-02T15:04:05Z", v)
		}
		q.ModifiedAfter = t
	}
	incs, next, err := s.svc.Incidents.Search(ctx(c), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.IncidentPage{Incidents: orEmpty(mapSlice(incs, incidentOut)), Next: next})
}

func pageLimit(c echo.Context) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return defaultPageLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPageLimit {
		return 0, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "limit %q: want an integer from 1 to %d", v, maxPageLimit)
	}
	return n, nil
}

func (s *Server) updateIncident(c echo.Context) error {
	var in apitypes.IncidentInput
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	inc, err := s.svc.Incidents.Update(ctx(c), c.Param("id"), incidentIn(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, incidentOut(inc))
}

func (s *Server) deleteIncident(c echo.Context) error {
	if err := s.svc.Incidents.Delete(ctx(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) closeIncident(c echo.Context) error {
	var in apitypes.CloseRequest
	if err := s.decode(c, &in, true); err != nil {
		return err
	}
	inc, err := s.svc.Incidents.Close(ctx(c), c.Param("id"), in.CloseReason, in.CloseNotes)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, incidentOut(inc))
}

func (s *Server) reopenIncident(c echo.Context) error {
	inc, err := s.svc.Incidents.Reopen(ctx(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, incidentOut(inc))
}

func (s *Server) listEntries(c echo.Context) error {
	if err := checkQuery(c, "limit", "cursor"); err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	es, next, err := s.svc.Incidents.ListEntries(ctx(c), c.Param("id"), service.EntryQuery{Cursor: c.QueryParam("cursor"), Limit: limit})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.EntryPage{Entries: orEmpty(mapSlice(es, entryOut)), Next: next})
}

func (s *Server) addEntry(c echo.Context) error {
	var in apitypes.EntryInput
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	e, err := s.svc.Incidents.AddEntry(ctx(c), c.Param("id"), entryIn(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, entryOut(e))
}

func (s *Server) createUser(c echo.Context) error {
	var in apitypes.UserInput
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	u, err := s.svc.Users.Create(ctx(c), userIn(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, userOut(u))
}

func (s *Server) listUsers(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	us, err := s.svc.Users.List(ctx(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.UserList{Users: orEmpty(mapSlice(us, userOut))})
}

func (s *Server) getUser(c echo.Context) error {
	u, err := s.svc.Users.Get(ctx(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, userOut(u))
}
