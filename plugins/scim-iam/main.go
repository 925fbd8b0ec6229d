// Command scim-iam is connhost's SCIM 2.0 IAM connector: XSOAR's generic
// IAM commands (iam-get-user, iam-create-user, iam-update-user,
// iam-disable-user, iam-enable-user) and get-mapping-fields against any
// SCIM 2.0 service (RFC 7643/7644 Users), authenticating with OAuth 2.0
// client credentials, a static bearer token or HTTP basic auth (param
// auth_type). Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared ./plugins/scim-iam
//
// docs/iam.md describes the commands, the mappers and the token cache.
package main

import (
	"context"
	"net/url"
	"strings"

	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/iam"
)

func main() {}

func init() { sdk.Register(connector) }

// Instance parameters of the connector itself; the IAM switches and
// mappers are iam.ManifestParams.
const (
	paramURL           = "url"
	paramAuthType      = "auth_type"
	paramTokenURL      = "token_url"
	paramClientID      = "client_id"
	paramClientSecret  = "client_secret"
	paramScope         = "scope"
	paramBearerToken   = "bearer_token"
	paramBasicUsername = "basic_username"
	paramBasicPassword = "basic_password"
)

// Values of auth_type; absent means authOAuth2, as before the param existed.
const (
	authOAuth2 = "oauth2_client_credentials"
	authBearer = "bearer_token"
	authBasic  = "basic"
)

// kit maps XSOAR's User Profile to SCIM core User attributes. Users are
// looked up by id, then userName, then email.
var kit = iam.Kit{
	NewClient:   newClient,
	LookupAttrs: []string{"id", "userName", "emails"},
	MapperOut: iam.Mapping{
		"userName":        "username",
		"emails.0.value":  "email",
		"name.givenName":  "givenname",
		"name.familyName": "surname",
		"displayName":     "displayname",
		"title":           "title",
		"externalId":      "employeeid",
	},
	MapperIn: iam.Mapping{
		"username":    "userName",
		"email":       "emails.0.value",
		"givenname":   "name.givenName",
		"surname":     "name.familyName",
		"displayname": "displayName",
		"title":       "title",
		"employeeid":  "externalId",
	},
}

var connector = sdk.Connector{
	Configure:        configure,
	TestModule:       testModule,
	GetMappingFields: kit.GetMappingFields,
	Commands:         kit.Commands(),
}

// configure checks the parameters once per module instance, so a wrong
// URL or mapper shows when the instance starts rather than per command.
func configure(_ context.Context, h *sdk.Host) error {
	p := h.Params()
	urls := []string{paramURL}
	switch authType(p) {
	case authOAuth2:
		urls = append(urls, paramTokenURL)
		if p.String(paramClientID) == "" || p.Secret(paramClientSecret) == "" {
			return sdk.BadRequest("parameters %s and %s are required with %s %s", paramClientID, paramClientSecret, paramAuthType, authOAuth2)
		}
	case authBearer:
		if p.Secret(paramBearerToken) == "" {
			return sdk.BadRequest("parameter %s is required with %s %s", paramBearerToken, paramAuthType, authBearer)
		}
	case authBasic:
		if p.String(paramBasicUsername) == "" || p.Secret(paramBasicPassword) == "" {
			return sdk.BadRequest("parameters %s and %s are required with %s %s", paramBasicUsername, paramBasicPassword, paramAuthType, authBasic)
		}
	default:
		return sdk.BadRequest("parameter %s: %q is not one of %s, %s, %s", paramAuthType, p.String(paramAuthType), authOAuth2, authBearer, authBasic)
	}
	for _, name := range urls {
		u, err := url.Parse(p.String(name))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return sdk.BadRequest("parameter %s: want an absolute http(s) URL", name)
		}
	}
	for _, name := range []string{iam.ParamMapperOut, iam.ParamMapperIn} {
		if _, err := iam.ParseMapping(p.String(name)); err != nil {
			return sdk.BadRequest("parameter %s: %v", name, err)
		}
	}
	return nil
}

// authType is the auth_type param, authOAuth2 when unset.
func authType(p sdk.Params) string {
	if t := p.String(paramAuthType); t != "" {
		return t
	}
	return authOAuth2
}

// testModule authenticates (getting a token for OAuth2) and lists one user.
func testModule(ctx context.Context, h *sdk.Host) error {
	c, err := newSCIMClient(h)
	if err != nil {
		return err
	}
	return c.ping(ctx)
}

func newClient(_ context.Context, h *sdk.Host) (iam.Client, error) {
	return newSCIMClient(h)
}

// scopes splits the scope parameter on spaces and commas.
func scopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}
