// Package iam is the SDK's identity-and-access-management kit: XSOAR's
// generic IAM commands (iam-get-user, iam-create-user, iam-update-user,
// iam-disable-user, iam-enable-user) with the semantics of XSOAR's
// IAMApiModule, over a small Client a connector implements for its
// application.
//
// Management commands never fail as errors: every outcome, including a bad
// user profile or an application error, is an IAM result (IAM.Vendor)
// returned as the command's CommandResults, so a playbook can branch on
// success, skipped and errorCode.
//
// Instance parameters read by the kit (declare them in the manifest; Params
// lists them): create_user_enabled, update_user_enabled,
// disable_user_enabled, enable_user_enabled (default true when absent),
// create_if_not_exists (default false), mapper_out and mapper_in (JSON
// Mapping; empty uses the Kit's defaults).
package iam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

// Command names.
const (
	CommandGetUser     = "iam-get-user"
	CommandCreateUser  = "iam-create-user"
	CommandUpdateUser  = "iam-update-user"
	CommandDisableUser = "iam-disable-user"
	CommandEnableUser  = "iam-enable-user"
)

// Actions, as XSOAR's IAMActions.
const (
	ActionGet     = "get"
	ActionCreate  = "create"
	ActionUpdate  = "update"
	ActionDisable = "disable"
	ActionEnable  = "enable"
)

// Instance parameter names.
const (
	ParamCreateEnabled     = "create_user_enabled"
	ParamUpdateEnabled     = "update_user_enabled"
	ParamDisableEnabled    = "disable_user_enabled"
	ParamEnableEnabled     = "enable_user_enabled"
	ParamCreateIfNotExists = "create_if_not_exists"
	ParamMapperOut         = "mapper_out"
	ParamMapperIn          = "mapper_in"
)

// Command arguments.
const (
	ArgUserProfile = "user-profile"
	ArgAllowEnable = "allow-enable"
)

// Error codes and messages, as XSOAR's IAMErrors.
const (
	CodeBadRequest        = 400
	CodeUserDoesNotExist  = 404
	CodeUserAlreadyExists = 409

	MessageUserDoesNotExist = "User does not exist"
	ReasonCommandDisabled   = "Command is disabled."
)

// OutputsPrefix is the context path of IAM results.
const OutputsPrefix = "IAM.Vendor"

// MappingTypeName is the type get-mapping-fields reports the app fields
// under (XSOAR's IAMUserProfile.DEFAULT_INCIDENT_TYPE).
const MappingTypeName = "User Profile"

// AppUser is a user as the application stores it.
type AppUser struct {
	ID       string
	Username string
	Email    string
	Active   bool
	// ActiveUnknown means the application's record does not say whether
	// the user is active (RFC 7643 gives "active" no default): the result
	// reports active as null, and update's allow-enable treats the user as
	// not active, as XSOAR's IAMCommand does with is_active None.
	ActiveUnknown bool
	// Data is the application's whole record: the source of mapper_in and
	// the result's details.
	Data map[string]any
}

// Client is what a connector implements for its application. Errors may
// implement StatusCoder to set the result's errorCode.
type Client interface {
	// GetUser returns the user whose app attribute attr (one of
	// Kit.LookupAttrs) equals value, or nil when there is none.
	GetUser(ctx context.Context, attr, value string) (*AppUser, error)
	// CreateUser creates a user from app fields (the profile after
	// mapper_out).
	CreateUser(ctx context.Context, fields map[string]any) (*AppUser, error)
	// UpdateUser changes the given app fields of user id.
	UpdateUser(ctx context.Context, id string, fields map[string]any) (*AppUser, error)
	// SetActive enables or disables user id.
	SetActive(ctx context.Context, id string, active bool) (*AppUser, error)
	// AppFields describes the app's user fields: name → description.
	AppFields(ctx context.Context) (map[string]string, error)
}

// StatusCoder is implemented by client errors that carry the application's
// status code (HTTP status, typically); it becomes the result's errorCode.
type StatusCoder interface {
	StatusCode() int
}

// Kit turns a Client into the IAM commands.
type Kit struct {
	// NewClient builds the client for a call from the instance parameters.
	NewClient func(ctx context.Context, h *sdk.Host) (Client, error)
	// LookupAttrs are the app attributes that identify a user, in order of
	// precedence (XSOAR get_user_iam_attrs). "id" is also read from the
	// user profile itself, since mappers do not map it. Default ["id",
	// "email"].
	LookupAttrs []string
	// MapperOut and MapperIn are used when the instance parameters
	// mapper_out and mapper_in are empty.
	MapperOut Mapping
	MapperIn  Mapping
}

// Commands returns the IAM commands, for sdk.Connector.Commands.
func (k Kit) Commands() map[string]sdk.CommandFunc {
	cmd := func(action string) sdk.CommandFunc {
		return func(ctx context.Context, h *sdk.Host, args sdk.Args) (any, error) {
			return k.Run(ctx, h, action, args).CommandResults(), nil
		}
	}
	return map[string]sdk.CommandFunc{
		CommandGetUser:     cmd(ActionGet),
		CommandCreateUser:  cmd(ActionCreate),
		CommandUpdateUser:  cmd(ActionUpdate),
		CommandDisableUser: cmd(ActionDisable),
		CommandEnableUser:  cmd(ActionEnable),
	}
}

// GetMappingFields reports the app's user fields under MappingTypeName,
// for sdk.Connector.GetMappingFields.
func (k Kit) GetMappingFields(ctx context.Context, h *sdk.Host) (abi.GetMappingFieldsResponse, error) {
	c, err := k.NewClient(ctx, h)
	if err != nil {
		return nil, err
	}
	fields, err := c.AppFields(ctx)
	if err != nil {
		return nil, fmt.Errorf("get-mapping-fields: %w", err)
	}
	return abi.GetMappingFieldsResponse{MappingTypeName: fields}, nil
}

// Run performs one IAM action (ActionGet, …) with the command's arguments
// and returns its result; it never fails.
func (k Kit) Run(ctx context.Context, h *sdk.Host, action string, args sdk.Args) Result {
	o := &op{k: k, h: h, base: Result{Brand: h.Instance().Brand, InstanceName: h.Instance().Name, Action: action}}
	if err := o.setup(ctx, args); err != nil {
		return o.fail(action, err)
	}
	switch action {
	case ActionGet:
		return o.get(ctx)
	case ActionCreate:
		return o.create(ctx, false)
	case ActionUpdate:
		return o.update(ctx, false)
	case ActionDisable:
		return o.setActive(ctx, false)
	case ActionEnable:
		return o.setActive(ctx, true)
	}
	return o.fail(action, fmt.Errorf("unknown IAM action %q", action))
}

// op is one IAM command's state.
type op struct {
	k    Kit
	h    *sdk.Host
	c    Client
	base Result

	profile     map[string]any
	mapped      map[string]any // profile after mapper_out
	in          Mapping
	allowEnable bool

	// found memoises find: create→update and update→create look the
	// user up once, not once per step.
	found   *AppUser
	didFind bool
}

// badRequest marks setup errors, reported with CodeBadRequest.
type badRequest struct{ error }

func (badRequest) StatusCode() int { return CodeBadRequest }

func (o *op) setup(ctx context.Context, args sdk.Args) error {
	raw := args.String(ArgUserProfile)
	if raw == "" {
		return badRequest{fmt.Errorf("argument %q is required", ArgUserProfile)}
	}
	if err := json.Unmarshal([]byte(raw), &o.profile); err != nil || o.profile == nil {
		return badRequest{fmt.Errorf("argument %q: want a JSON object", ArgUserProfile)}
	}
	p := o.h.Params()
	out, err := mappingParam(p, ParamMapperOut, o.k.MapperOut)
	if err != nil {
		return err
	}
	if o.in, err = mappingParam(p, ParamMapperIn, o.k.MapperIn); err != nil {
		return err
	}
	o.mapped = out.Apply(o.profile)
	if old, ok := o.profile["olduserdata"].(map[string]any); ok {
		// Old values identify a user whose identifying fields change.
		o.mapped["olduserdata"] = out.Apply(old)
	}
	if o.allowEnable, err = args.Bool(ArgAllowEnable, true); err != nil {
		return badRequest{err}
	}
	if o.c, err = o.k.NewClient(ctx, o.h); err != nil {
		return err
	}
	return nil
}

func mappingParam(p sdk.Params, name string, def Mapping) (Mapping, error) {
	m, err := ParseMapping(p.String(name))
	if err != nil {
		return nil, badRequest{fmt.Errorf("parameter %s: %w", name, err)}
	}
	if m == nil {
		return def, nil
	}
	return m, nil
}

// enabled reads an instance switch; absent switches are on, as in XSOAR's
// IAM integrations whose switches default to true.
func (o *op) enabled(name string) bool {
	p := o.h.Params()
	return !p.Has(name) || p.Bool(name)
}

// candidate is one identifying attribute value to look a user up by.
type candidate struct{ attr, value string }

// lookups returns the identifying attribute values of the profile in
// order of precedence: attributes in LookupAttrs order, each from the old
// user data of an update before the profile itself. Each distinct pair
// appears once.
func (o *op) lookups() ([]candidate, error) {
	attrs := o.k.LookupAttrs
	if len(attrs) == 0 {
		attrs = []string{"id", "email"}
	}
	oldRaw, _ := o.profile["olduserdata"].(map[string]any)
	oldMapped, _ := o.mapped["olduserdata"].(map[string]any)
	// The unmapped profile is consulted for "id" only: mappers do not map it.
	sources := []struct {
		m   map[string]any
		raw bool
	}{{oldRaw, true}, {oldMapped, false}, {o.profile, true}, {o.mapped, false}}
	var out []candidate
	for _, attr := range attrs {
		for _, src := range sources {
			if src.m == nil || (src.raw && attr != "id") {
				continue
			}
			if v, ok := Lookup(src.m, attr); ok {
				if c := (candidate{attr, scalar(v)}); c.value != "" && !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, badRequest{fmt.Errorf("the user profile must contain at least one attribute that the outgoing mapper maps to one of %v", attrs)}
	}
	return out, nil
}

// find looks the profile's user up in the app, once per command, by the
// first identifying value; an id that matches nobody falls through to the
// next value, so a stale id (a user recreated in the app) falls back to the
// username instead of a create that conflicts.
func (o *op) find(ctx context.Context) (*AppUser, error) {
	if o.didFind {
		return o.found, nil
	}
	cands, err := o.lookups()
	if err != nil {
		return nil, err
	}
	for _, c := range cands {
		u, err := o.c.GetUser(ctx, c.attr, c.value)
		if err != nil {
			return nil, fmt.Errorf("get user by %s: %w", c.attr, err)
		}
		if u != nil || c.attr != "id" {
			// An id goes stale when the app recreates a user; the other
			// attributes identify the user by themselves.
			o.found = u
			break
		}
	}
	o.didFind = true
	return o.found, nil
}

// fields returns the mapped profile to send to the app.
func (o *op) fields() map[string]any {
	f := make(map[string]any, len(o.mapped))
	for k, v := range o.mapped {
		if k != "olduserdata" {
			f[k] = v
		}
	}
	return f
}

func (o *op) get(ctx context.Context) Result {
	u, err := o.find(ctx)
	if err != nil {
		return o.fail(ActionGet, err)
	}
	if u == nil {
		r := o.result(ActionGet)
		r.Success, r.ErrorCode, r.ErrorMessage = false, CodeUserDoesNotExist, MessageUserDoesNotExist
		return r
	}
	return o.ok(ActionGet, u)
}

// create creates the user, or updates it when it exists (XSOAR
// IAMCommand.create_user). fromUpdate guards against a create→update→create cycle
// when the user vanishes in between.
func (o *op) create(ctx context.Context, fromUpdate bool) Result {
	if !o.enabled(ParamCreateEnabled) {
		return o.skip(ActionCreate, ReasonCommandDisabled)
	}
	u, err := o.find(ctx)
	if err != nil {
		return o.fail(ActionCreate, err)
	}
	if u != nil && !fromUpdate {
		return o.update(ctx, true)
	}
	if u, err = o.c.CreateUser(ctx, o.fields()); err != nil {
		return o.fail(ActionCreate, fmt.Errorf("create user: %w", err))
	}
	return o.ok(ActionCreate, u)
}

// update changes the user, enabling it first when allow-enable says so;
// a missing user is created or skipped (XSOAR IAMCommand.update_user).
func (o *op) update(ctx context.Context, fromCreate bool) Result {
	if !o.enabled(ParamUpdateEnabled) {
		return o.skip(ActionUpdate, ReasonCommandDisabled)
	}
	u, err := o.find(ctx)
	if err != nil {
		return o.fail(ActionUpdate, err)
	}
	if u == nil {
		if o.h.Params().Bool(ParamCreateIfNotExists) && !fromCreate {
			return o.create(ctx, true)
		}
		return o.skip(ActionUpdate, MessageUserDoesNotExist)
	}
	if o.allowEnable && o.enabled(ParamEnableEnabled) && !u.Active {
		if _, err := o.c.SetActive(ctx, u.ID, true); err != nil {
			return o.fail(ActionUpdate, fmt.Errorf("enable user %s: %w", u.ID, err))
		}
	}
	if u, err = o.c.UpdateUser(ctx, u.ID, o.fields()); err != nil {
		return o.fail(ActionUpdate, fmt.Errorf("update user: %w", err))
	}
	return o.ok(ActionUpdate, u)
}

// setActive disables or enables the user; a missing user is skipped.
func (o *op) setActive(ctx context.Context, active bool) Result {
	action, param := ActionDisable, ParamDisableEnabled
	if active {
		action, param = ActionEnable, ParamEnableEnabled
	}
	if !o.enabled(param) {
		return o.skip(action, ReasonCommandDisabled)
	}
	u, err := o.find(ctx)
	if err != nil {
		return o.fail(action, err)
	}
	if u == nil {
		return o.skip(action, MessageUserDoesNotExist)
	}
	if u, err = o.c.SetActive(ctx, u.ID, active); err != nil {
		return o.fail(action, fmt.Errorf("%s user: %w", action, err))
	}
	return o.ok(action, u)
}

// result starts a result for action: success, with the profile's email
// and the mapped profile as details until the app says more.
func (o *op) result(action string) Result {
	r := o.base
	r.Action, r.Success = action, true
	if o.profile != nil {
		r.Email, _ = o.profile["email"].(string)
	}
	if o.mapped != nil {
		r.Details = o.fields()
	}
	return r
}

func (o *op) ok(action string, u *AppUser) Result {
	r := o.result(action)
	r.ID, r.Username = u.ID, u.Username
	if !u.ActiveUnknown {
		active := u.Active
		r.Active = &active
	}
	if u.Email != "" {
		r.Email = u.Email
	}
	if u.Data != nil {
		r.Details = u.Data
		profile := make(map[string]any, len(o.profile))
		for k, v := range o.profile {
			if k != "olduserdata" {
				profile[k] = v
			}
		}
		for k, v := range o.in.Apply(u.Data) {
			profile[k] = v
		}
		r.UserProfile = profile
	}
	return r
}

func (o *op) skip(action, reason string) Result {
	r := o.result(action)
	r.Skipped, r.Reason = true, reason
	return r
}

func (o *op) fail(action string, err error) Result {
	r := o.result(action)
	r.Success, r.ErrorMessage = false, err.Error()
	r.ErrorCode = CodeBadRequest
	var sc StatusCoder
	if errors.As(err, &sc) {
		r.ErrorCode = sc.StatusCode()
	} else if abi.KindOf(err) != abi.KindBadRequest {
		r.ErrorCode = nil // XSOAR leaves it unset for errors without a code
	}
	return r
}
