package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/service"
)

// mountAPIKeys registers key management: admins list, create and revoke
// keys while the server runs.
func (s *Server) mountAPIKeys() {
	s.echo.GET(Prefix+"/apikeys", s.listAPIKeys)
	s.echo.POST(Prefix+"/apikeys", s.createAPIKey)
	s.echo.DELETE(Prefix+"/apikeys/:id", s.revokeAPIKey)
}

func apiKeyOut(v service.APIKeyView) apitypes.APIKey {
	return apitypes.APIKey{ID: v.ID, Name: v.Name, Prefix: v.Prefix, Role: string(v.Role), Created: v.Created,
		Expires: v.Expires, LastUsed: v.LastUsed, Revoked: v.Revoked}
}

func (s *Server) listAPIKeys(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	keys, err := s.svc.APIKeys.List(ctx(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apitypes.APIKeyList{Keys: orEmpty(mapSlice(keys, apiKeyOut))})
}

// createAPIKey answers the new key in clear: the only time it is shown.
func (s *Server) createAPIKey(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	var in apitypes.APIKeyInput
	if err := s.decode(c, &in, false); err != nil {
		return err
	}
	spec := service.APIKeySpec{Name: in.Name, Role: service.Role(in.Role)}
	if in.Expires != nil {
		spec.Expires = *in.Expires
	}
	key, v, err := s.svc.APIKeys.Issue(ctx(c), spec)
	if err != nil {
		return err
	}
	s.log.Info().Str("apikey", keyName(c)).Str("created", v.Name).Str("id", v.ID).Str("role", string(v.Role)).
		Time("expires", v.Expires).Msg("API key created")
	return c.JSON(http.StatusCreated, apitypes.APIKeyCreated{Key: key, APIKey: apiKeyOut(v)})
}

// revokeAPIKey revokes a key; its next request is refused (Authenticate
// reads the store each time).
func (s *Server) revokeAPIKey(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	id := c.Param("id")
	if err := s.svc.APIKeys.Revoke(ctx(c), id); err != nil {
		return err
	}
	s.limits.forget(id)
	s.log.Info().Str("apikey", keyName(c)).Str("revoked", id).Msg("API key revoked")
	return c.NoContent(http.StatusNoContent)
}
