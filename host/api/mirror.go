package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// mountMirror adds the mirroring operations: XSOAR's hidden
// getMirrorStatistics, getSyncMirrorRecords, purgeClosedSyncMirrorRecords and
// triggerDebugMirroringRun, the push path, a cycle on demand, and the remote
// schema (get-mapping-fields).
func (s *Server) mountMirror() {
	p := Prefix
	for _, r := range []route{
		{http.MethodGet, p + "/instances/:name/mirror/stats", s.mirrorStats, false},
		{http.MethodGet, p + "/instances/:name/mirror/records", s.mirrorRecords, false},
		{http.MethodPost, p + "/instances/:name/mirror/purge", s.mirrorPurge, false},
		{http.MethodPost, p + "/instances/:name/mirror/run", s.mirrorRun, false},
		{http.MethodPost, p + "/instances/:name/mirror/push", s.mirrorPush, false},
		{http.MethodGet, p + "/instances/:name/remote-schema", s.remoteSchema, false},
		{http.MethodGet, p + "/incidents/:id/mirror", s.incidentMirror, false},
		{http.MethodPost, p + "/incidents/:id/mirror/debug", s.incidentMirrorDebug, false},
	} {
		s.echo.Add(r.method, r.path, r.h, s.authenticate)
	}
}

func (s *Server) mirrorStats(c echo.Context) error {
	st, err := s.svc.MirrorStats(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) mirrorRecords(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	recs, err := s.svc.SyncRecords(ctx(c), c.Param("name"), limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"records": recs})
}

// purgeRequest is the body of POST .../mirror/purge.
type purgeRequest struct {
	// OlderThan is in days, as XSOAR's purgeClosedSyncMirrorRecords.
	OlderThan *float64 `json:"olderThan"`
}

func (s *Server) mirrorPurge(c echo.Context) error {
	var in purgeRequest
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	if in.OlderThan == nil {
		return apiErr(http.StatusBadRequest, "invalid request", "olderThan (days) is required")
	}
	n, err := s.svc.PurgeClosedMirrors(ctx(c), c.Param("name"), *in.OlderThan)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]int{"purged": n})
}

func (s *Server) mirrorRun(c echo.Context) error {
	rep, err := s.svc.RunMirrorCycle(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}

// pushRequest is the body of POST .../mirror/push.
type pushRequest struct {
	RemoteIncidentID string `json:"remoteIncidentId"`
}

func (s *Server) mirrorPush(c echo.Context) error {
	var in pushRequest
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	if strings.TrimSpace(in.RemoteIncidentID) == "" {
		return apiErr(http.StatusBadRequest, "invalid request", "remoteIncidentId is required")
	}
	if err := s.svc.PushMirror(ctx(c), c.Param("name"), in.RemoteIncidentID); err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]string{"status": "queued"})
}

func (s *Server) remoteSchema(c echo.Context) error {
	schema, err := s.svc.RemoteSchema(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, schema)
}

func (s *Server) incidentMirror(c echo.Context) error {
	rec, err := s.svc.SyncRecord(ctx(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rec)
}

func (s *Server) incidentMirrorDebug(c echo.Context) error {
	steps, err := s.svc.DebugMirror(ctx(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"steps": steps})
}
