package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/engines"
)

// EngineHub is the server side of engines the API reports on and enrolls
// with; *engines.Hub implements it.
type EngineHub interface {
	// Engines lists the enrolled engines with their state.
	Engines() []engines.Status
	// Enroll registers an engine and returns its seed, once.
	Enroll(ctx context.Context, name, group string) (engines.Enrolled, []byte, error)
	// Remove revokes an engine's key and closes its connections.
	Remove(ctx context.Context, name string) error
	// ClientURL is the NATS endpoint engines connect to.
	ClientURL() string
	// Ready reports whether engines can connect.
	Ready() bool
}

func (s *Server) mountEngines() {
	s.echo.GET(Prefix+"/engines", s.listEngines)
	s.echo.POST(Prefix+"/engines", s.enrollEngine)
	s.echo.DELETE(Prefix+"/engines/:name", s.removeEngine)
}

// removeEngine revokes an engine: its key is refused and its connections
// closed.
func (s *Server) removeEngine(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	if s.opts.Engines == nil {
		return apiErr(http.StatusNotFound, apitypes.CodeNotFound, "engine %q: engines are not enabled on this server (engines.enable)", c.Param("name"))
	}
	err := s.opts.Engines.Remove(ctx(c), c.Param("name"))
	switch {
	case errors.Is(err, engines.ErrNotFound):
		return apiErr(http.StatusNotFound, apitypes.CodeNotFound, "%v", err)
	case errors.Is(err, engines.ErrExternal):
		return apiErr(http.StatusConflict, apitypes.CodeConflict, "%v", err)
	case err != nil:
		return err
	}
	s.log.Info().Str("apikey", keyName(c)).Str("engine", c.Param("name")).Msg("engine removed")
	return c.NoContent(http.StatusNoContent)
}

func engineOut(st engines.Status) apitypes.Engine {
	return apitypes.Engine{Name: st.Name, Group: st.Group, Version: st.Version, Connected: st.Connected,
		ConnectedSince: st.ConnectedSince, LastHeartbeat: st.LastHeartbeat, Capacity: st.Capacity,
		CallsInFlight: st.InFlight, Instances: orEmpty(st.Instances), LongRunning: orEmpty(st.LongRunning),
		Calls: st.Calls, Failures: st.Failures}
}

func (s *Server) listEngines(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	if s.opts.Engines == nil {
		return c.JSON(http.StatusOK, apitypes.EngineList{Engines: []apitypes.Engine{}})
	}
	return c.JSON(http.StatusOK, apitypes.EngineList{Enabled: true, Engines: orEmpty(mapSlice(s.opts.Engines.Engines(), engineOut))})
}

// enrollEngine answers the engine's seed in clear: the only time it is
// shown.
func (s *Server) enrollEngine(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	if s.opts.Engines == nil {
		return apiErr(http.StatusConflict, apitypes.CodeConflict, "engines are not enabled on this server (engines.enable)")
	}
	var in apitypes.EngineInput
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	en, seed, err := s.opts.Engines.Enroll(ctx(c), in.Name, in.Group)
	switch {
	case errors.Is(err, engines.ErrBadName):
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "%v", err)
	case errors.Is(err, engines.ErrExists):
		return apiErr(http.StatusConflict, apitypes.CodeAlreadyExists, "%v", err)
	case errors.Is(err, engines.ErrExternal):
		return apiErr(http.StatusConflict, apitypes.CodeConflict, "%v", err)
	case err != nil:
		return err
	}
	s.log.Info().Str("apikey", keyName(c)).Str("engine", en.Name).Str("group", en.Group).Msg("engine enrolled")
	return c.JSON(http.StatusCreated, apitypes.EngineEnrollment{Name: en.Name, Group: en.Group, PublicKey: en.PublicKey,
		Seed: string(seed), URL: s.opts.Engines.ClientURL()})
}
