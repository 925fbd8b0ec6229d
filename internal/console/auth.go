package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/service"
)

// CSP is the console's Content-Security-Policy: its own files only, no
// inline script or style, no framing, forms post only to itself.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// CSRFHeader carries the session's CSRF token on htmx requests; forms
// also carry it as the field "csrf".
const CSRFHeader = "X-CSRF-Token"

// secure sets the security headers of every console response.
func secure(c echo.Context) {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// req is one console request: echo's context, the session (nil on the
// sign-in page) and the action being done.
type req struct {
	echo.Context
	co     *Console
	s      *session
	sid    string
	action string
}

// open serves a page that needs no session (sign-in).
func (co *Console) open(h func(*req) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		secure(c)
		c.Response().Header().Set("Cache-Control", "no-store")
		return h(&req{Context: c, co: co})
	}
}

// signedIn serves a page or an action that needs a live session whose
// key is still valid, within its rate limit, with a valid CSRF token on
// a POST, and whose role allows action ("" for any signed-in key).
func (co *Console) signedIn(action string, h func(*req) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		secure(c)
		c.Response().Header().Set("Cache-Control", "no-store")
		r := &req{Context: c, co: co, action: action}
		var sid string
		if ck, err := c.Cookie(SessionCookie); err == nil {
			sid = ck.Value
		}
		s, ok := co.sessions.get(sid)
		if !ok {
			msg := ""
			if sid != "" {
				msg = "Your session has ended; sign in again."
			}
			return r.toLogin(msg)
		}
		k, err := co.svc.APIKeys.Authenticate(c.Request().Context(), s.key)
		if errors.Is(err, service.ErrUnauthorized) {
			co.sessions.end(sid)
			r.clearCookie(SessionCookie)
			return r.toLogin("Your session has ended: " + err.Error())
		}
		if err != nil {
			return r.errorPage(err)
		}
		r.s, r.sid = s, sid
		if co.allow != nil {
			if wait, ok := co.allow(k.ID); !ok {
				secs := max(1, int((wait+time.Second-1)/time.Second))
				c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
				return r.problem(http.StatusTooManyRequests, apitypes.CodeRateLimited,
					fmt.Sprintf("API key %q is over its rate limit; retry in %d s", k.Name, secs))
			}
		}
		if c.Request().Method == http.MethodPost {
			if fe := r.parseForm(); fe != nil {
				return r.problem(fe.status, fe.code, fe.detail)
			}
			tok := c.Request().Header.Get(CSRFHeader)
			if tok == "" {
				tok = c.Request().PostFormValue("csrf")
			}
			if !sameToken(tok, s.csrf) {
				return r.problem(http.StatusForbidden, apitypes.CodeForbidden, "the form's CSRF token is missing or stale: reload the page and try again")
			}
		}
		if action != "" && !allowed(s.role, action) {
			return r.problem(http.StatusForbidden, apitypes.CodeForbidden, fmt.Sprintf("%s needs an API key with role %s or higher; key %q has role %s",
				actions[action], actionRoles[action], s.keyName, s.role))
		}
		return h(r)
	}
}

// formError is a form the console cannot read.
type formError struct {
	status int
	code   apitypes.ErrorCode
	detail string
}

// parseForm reads a POST body within the console's limits: a plugin
// upload may be as large as the API allows, any other form as large as a
// JSON body.
func (r *req) parseForm() *formError {
	hr := r.Request()
	limit := r.co.opts.MaxBodyBytes
	if r.action == "plugins.install" {
		limit = r.co.opts.MaxPluginBytes + 64<<10
	}
	tooLarge := &formError{http.StatusRequestEntityTooLarge, apitypes.CodeRequestTooLarge, fmt.Sprintf("the request body exceeds the limit of %d bytes", limit)}
	if hr.ContentLength > limit {
		return tooLarge
	}
	hr.Body = http.MaxBytesReader(r.Response(), hr.Body, limit)
	var err error
	if strings.HasPrefix(hr.Header.Get(echo.HeaderContentType), echo.MIMEMultipartForm) {
		err = hr.ParseMultipartForm(8 << 20)
	} else {
		err = hr.ParseForm()
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge
	}
	if err != nil {
		return &formError{http.StatusBadRequest, apitypes.CodeInvalidRequest, "reading the form: " + err.Error()}
	}
	return nil
}

// toLogin answers a request without a live session with the sign-in page
// (401), which signs in and returns to the page asked for.
func (r *req) toLogin(msg string) error {
	next := ""
	if r.Request().Method == http.MethodGet {
		next = r.Request().URL.RequestURI()
	}
	return r.loginForm(http.StatusUnauthorized, msg, next)
}

// cookie sets a console cookie that lasts ttl: HttpOnly, SameSite=Strict,
// Secure when the request came over TLS (directly or, as a proxy says, to
// it). Its expiry is on the wall clock, which is the browser's.
func (r *req) cookie(name, value string, ttl time.Duration) {
	hr := r.Request()
	r.SetCookie(&http.Cookie{
		Name: name, Value: value, Path: "/", Expires: time.Now().Add(ttl), MaxAge: int(ttl.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: hr.TLS != nil || strings.EqualFold(hr.Header.Get("X-Forwarded-Proto"), "https"),
	})
}

func (r *req) clearCookie(name string) {
	r.SetCookie(&http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// safeNext returns where to go after sign-in: a local path, else "/".
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/login") || strings.HasPrefix(next, "/logout") {
		return "/"
	}
	return next
}

func (co *Console) loginPage(r *req) error {
	return r.loginForm(http.StatusOK, "", r.QueryParam("next"))
}

// loginForm renders the sign-in page with a fresh sign-in CSRF token.
func (r *req) loginForm(status int, msg, next string) error {
	tok := token()
	r.cookie(loginCookie, tok, time.Hour)
	var f *flash
	if msg != "" {
		f = &flash{Title: "Signed out", Detail: msg}
	}
	return r.render(status, "login", "Sign in", "", map[string]string{"Token": tok, "Next": next}, f)
}

func (co *Console) login(r *req) error {
	hr := r.Request()
	hr.Body = http.MaxBytesReader(r.Response(), hr.Body, co.opts.MaxBodyBytes)
	if err := hr.ParseForm(); err != nil {
		return r.problem(http.StatusBadRequest, apitypes.CodeInvalidRequest, "reading the form: "+err.Error())
	}
	ck, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(ck.Value, hr.PostFormValue("csrf")) {
		return r.loginForm(http.StatusForbidden, "The sign-in form expired or did not come from this console; try again.", hr.PostFormValue("next"))
	}
	key := strings.TrimSpace(hr.PostFormValue("key"))
	k, err := co.svc.APIKeys.Authenticate(hr.Context(), key)
	if errors.Is(err, service.ErrUnauthorized) {
		return r.loginForm(http.StatusUnauthorized, err.Error(), hr.PostFormValue("next"))
	}
	if err != nil {
		return r.errorPage(err)
	}
	id, s := co.sessions.create(key, k)
	r.cookie(SessionCookie, id, s.expires.Sub(co.opts.Now()))
	r.clearCookie(loginCookie)
	co.log.Info().Str("apikey", k.Name).Str("role", string(k.Role)).Msg("console sign-in")
	return r.redirect(safeNext(hr.PostFormValue("next")))
}

func (co *Console) logout(r *req) error {
	co.sessions.end(r.sid)
	r.clearCookie(SessionCookie)
	co.log.Info().Str("apikey", r.s.keyName).Msg("console sign-out")
	return r.redirect("/login")
}

// redirect sends the browser to path: a full page load under htmx (the
// page's CSRF token changes), a 303 otherwise.
func (r *req) redirect(path string) error {
	if r.Request().Header.Get("HX-Request") == "true" {
		r.Response().Header().Set("HX-Redirect", path)
		return r.NoContent(http.StatusOK)
	}
	return r.Redirect(http.StatusSeeOther, path)
}
