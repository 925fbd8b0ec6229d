package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/host/api/apitypes"
)

// mountMirror adds the mirroring operations: XSOAR's hidden
// getMirrorStatistics, getSyncMirrorRecords, purgeClosedSyncMirrorRecords and
// triggerDebugMirroringRun, the push path, a cycle on demand, and the remote
// schema (get-mapping-fields).
func (s *Server) mountMirror() {
	p := Prefix
	for _, r := range []route{
		{http.MethodGet, p + "/instances/:name/mirror/stats", s.mirrorStats},
		{http.MethodGet, p + "/instances/:name/mirror/records", s.mirrorRecords},
		{http.MethodPost, p + "/instances/:name/mirror/purge", s.mirrorPurge},
		{http.MethodPost, p + "/instances/:name/mirror/run", s.mirrorRun},
		{http.MethodPost, p + "/instances/:name/mirror/push", s.mirrorPush},
		{http.MethodGet, p + "/instances/:name/remote-schema", s.remoteSchema},
		{http.MethodGet, p + "/incidents/:id/mirror", s.incidentMirror},
		{http.MethodPost, p + "/incidents/:id/mirror/debug", s.incidentMirrorDebug},
	} {
		s.echo.Add(r.method, r.path, r.h)
	}
}

func (s *Server) mirrorStats(c echo.Context) error {
	st, err := s.svc.Mirroring.Stats(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, mirrorStatsOut(st))
}

func (s *Server) mirrorRecords(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	recs, err := s.svc.Mirroring.SyncRecords(ctx(c), c.Param("name"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.SyncRecordList{Records: orEmpty(mapSlice(recs, syncRecordOut))})
}

func (s *Server) mirrorPurge(c echo.Context) error {
	var in apitypes.PurgeRequest
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	if in.OlderThan == nil {
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "olderThan (days) is required")
	}
	n, err := s.svc.Mirroring.PurgeClosed(ctx(c), c.Param("name"), *in.OlderThan)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.PurgeResult{Purged: n})
}

func (s *Server) mirrorRun(c echo.Context) error {
	rep, err := s.svc.Mirroring.RunCycle(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cycleOut(rep))
}

func (s *Server) mirrorPush(c echo.Context) error {
	var in apitypes.PushRequest
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	if strings.TrimSpace(in.RemoteIncidentID) == "" {
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "remoteIncidentId is required")
	}
	if err := s.svc.Mirroring.Push(ctx(c), c.Param("name"), in.RemoteIncidentID); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, apitypes.Status{Status: "queued"})
}

func (s *Server) remoteSchema(c echo.Context) error {
	schema, err := s.svc.Mirroring.RemoteSchema(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	out := apitypes.RemoteSchema{}
	for typ, fields := range schema {
		if fields == nil {
			fields = map[string]string{}
		}
		out[typ] = fields
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) incidentMirror(c echo.Context) error {
	rec, err := s.svc.Mirroring.SyncRecord(ctx(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, syncRecordOut(rec))
}

func (s *Server) incidentMirrorDebug(c echo.Context) error {
	steps, err := s.svc.Mirroring.Debug(ctx(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.MirrorDebug{Steps: orEmpty(steps)})
}
