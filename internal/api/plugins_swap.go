package api

import (
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/host/api/apitypes"

	"github.com/connhost/connhost/internal/service"
)

// SignatureHeader carries a plugin upload's detached .minisig, base64.
const SignatureHeader = "X-Connhost-Signature"

// Multipart parts of a plugin upload.
const (
	partWasm    = "wasm"
	partMinisig = "minisig"
)

// mountPluginSwap registers the routes that choose the version instances
// run: rollback, current version and instance pinning.
func (s *Server) mountPluginSwap() {
	s.echo.POST(Prefix+"/plugins/:name/rollback", s.rollbackPlugin)
	s.echo.PUT(Prefix+"/plugins/:name/current", s.setCurrentPlugin)
	s.echo.PUT(Prefix+"/instances/:name/version", s.pinInstance)
}

// switchOptions reads ?force and ?verifyInstances.
func switchOptions(c echo.Context) (service.SwitchOptions, error) {
	if err := checkQuery(c, "force", "verifyInstances"); err != nil {
		return service.SwitchOptions{}, err
	}
	o := service.SwitchOptions{By: "apikey:" + keyName(c)}
	for name, dst := range map[string]*bool{"force": &o.Force, "verifyInstances": &o.VerifyInstances} {
		v := c.QueryParam(name)
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return service.SwitchOptions{}, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "query %s=%q: want true or false", name, v)
		}
		*dst = b
	}
	return o, nil
}

// installPlugin is POST /plugins: the .wasm as the body (signature in
// SignatureHeader) or a multipart form with parts wasm and minisig.
func (s *Server) installPlugin(c echo.Context) error {
	o, err := switchOptions(c)
	if err != nil {
		return err
	}
	wasm, sig, err := s.readUpload(c)
	if err != nil {
		return err
	}
	res, err := s.svc.Plugins.Install(ctx(c), service.InstallRequest{
		Wasm: wasm, Signature: sig, By: o.By, Force: o.Force, VerifyInstances: o.VerifyInstances,
	})
	if errors.Is(err, service.ErrUntrusted) {
		return apiErr(http.StatusForbidden, apitypes.CodeUntrustedPlugin, "%v", err)
	}
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if !res.Created {
		status = http.StatusOK
	}
	return c.JSON(status, installOut(res))
}

// readUpload returns the plugin file and its signature (nil if none).
func (s *Server) readUpload(c echo.Context) (wasm, sig []byte, err error) {
	ct, params, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	switch ct {
	case "application/wasm", echo.MIMEOctetStream:
		if wasm, err = readBody(c, s.opts.MaxPluginBytes); err != nil {
			return nil, nil, err
		}
		if h := c.Request().Header.Get(SignatureHeader); h != "" {
			if sig, err = base64.StdEncoding.DecodeString(strings.TrimSpace(h)); err != nil {
				return nil, nil, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "%s: not base64: %v", SignatureHeader, err)
			}
		}
	case "multipart/form-data":
		if wasm, sig, err = s.readMultipart(c, params["boundary"]); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, apiErr(http.StatusUnsupportedMediaType, apitypes.CodeUnsupportedMediaType,
			"Content-Type %q: send the .wasm file as application/wasm or application/octet-stream, or a multipart/form-data with parts %q and %q", ct, partWasm, partMinisig)
	}
	if len(wasm) == 0 {
		return nil, nil, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "the request body is empty: send the .wasm file")
	}
	return wasm, sig, nil
}

// readMultipart reads the wasm and minisig parts within the plugin size
// limit; other parts are refused so a misnamed part is not ignored.
func (s *Server) readMultipart(c echo.Context, boundary string) (wasm, sig []byte, err error) {
	if boundary == "" {
		return nil, nil, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "multipart/form-data without a boundary")
	}
	r := c.Request()
	limit := s.opts.MaxPluginBytes + 64<<10
	if r.ContentLength > limit {
		return nil, nil, tooLarge(limit)
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "multipart body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return wasm, sig, nil
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, tooLarge(limit)
		}
		if err != nil {
			return nil, nil, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "multipart body: %v", err)
		}
		b, err := io.ReadAll(part)
		if errors.As(err, &mbe) {
			return nil, nil, tooLarge(limit)
		}
		if err != nil {
			return nil, nil, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "multipart part %q: %v", part.FormName(), err)
		}
		switch part.FormName() {
		case partWasm:
			wasm = b
		case partMinisig:
			sig = b
		default:
			return nil, nil, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "multipart part %q: want %q and optionally %q", part.FormName(), partWasm, partMinisig)
		}
	}
}

func (s *Server) rollbackPlugin(c echo.Context) error {
	o, err := switchOptions(c)
	if err != nil {
		return err
	}
	res, err := s.svc.Plugins.Rollback(ctx(c), c.Param("name"), o)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, switchOut(res))
}

func (s *Server) setCurrentPlugin(c echo.Context) error {
	o, err := switchOptions(c)
	if err != nil {
		return err
	}
	var b apitypes.VersionInput
	if err := s.decode(c, &b, false); err != nil {
		return err
	}
	if b.Version == "" {
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "version is required")
	}
	res, err := s.svc.Plugins.SetCurrent(ctx(c), c.Param("name"), b.Version, o)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, switchOut(res))
}

func (s *Server) pinInstance(c echo.Context) error {
	o, err := switchOptions(c)
	if err != nil {
		return err
	}
	var b apitypes.VersionInput
	if err := s.decode(c, &b, false); err != nil {
		return err
	}
	v, err := s.svc.Plugins.Pin(ctx(c), c.Param("name"), b.Version, o)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, instanceOut(v))
}
