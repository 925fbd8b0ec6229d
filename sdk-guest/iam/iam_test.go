package iam_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/iam"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// memApp is an application with users in memory: the smallest Client.
type memApp struct {
	users map[string]*iam.AppUser
	calls []string
	fail  error
}

func (a *memApp) GetUser(_ context.Context, attr, value string) (*iam.AppUser, error) {
	a.calls = append(a.calls, "get:"+attr+"="+value)
	for _, u := range a.users {
		if (attr == "id" && u.ID == value) || (attr == "userName" && u.Username == value) || (attr == "mail" && u.Email == value) {
			c := *u
			return &c, nil
		}
	}
	return nil, nil
}

func (a *memApp) CreateUser(_ context.Context, f map[string]any) (*iam.AppUser, error) {
	a.calls = append(a.calls, "create")
	if a.fail != nil {
		return nil, a.fail
	}
	u := &iam.AppUser{ID: fmt.Sprintf("u%d", len(a.users)+1), Active: true, Data: f}
	u.Username, _ = f["userName"].(string)
	u.Email, _ = f["mail"].(string)
	a.users[u.ID] = u
	c := *u
	return &c, nil
}

func (a *memApp) UpdateUser(_ context.Context, id string, f map[string]any) (*iam.AppUser, error) {
	a.calls = append(a.calls, "update:"+id)
	u := a.users[id]
	data := maps.Clone(u.Data)
	maps.Copy(data, f)
	u.Data = data
	if s, ok := f["userName"].(string); ok {
		u.Username = s
	}
	c := *u
	return &c, nil
}

func (a *memApp) SetActive(_ context.Context, id string, active bool) (*iam.AppUser, error) {
	a.calls = append(a.calls, fmt.Sprintf("active:%s=%v", id, active))
	a.users[id].Active = active
	c := *a.users[id]
	return &c, nil
}

func (a *memApp) AppFields(context.Context) (map[string]string, error) {
	return map[string]string{"userName": "login", "mail": "email address"}, nil
}

type statusErr struct{ code int }

func (e statusErr) Error() string   { return fmt.Sprintf("app said %d", e.code) }
func (e statusErr) StatusCode() int { return e.code }

func kit(app *memApp) iam.Kit {
	return iam.Kit{
		NewClient:   func(context.Context, *sdk.Host) (iam.Client, error) { return app, nil },
		LookupAttrs: []string{"id", "userName", "mail"},
		MapperOut:   iam.Mapping{"userName": "username", "mail": "email", "name.given": "givenname"},
		MapperIn:    iam.Mapping{"username": "userName", "givenname": "name.given"},
	}
}

func jdoe(active bool) *iam.AppUser {
	return &iam.AppUser{ID: "u9", Username: "jdoe", Email: "jdoe@example.com", Active: active,
		Data: map[string]any{"userName": "jdoe", "mail": "jdoe@example.com"}}
}

func TestCommands(t *testing.T) {
	profile := `{"email":"jdoe@example.com","username":"jdoe","givenname":"John"}`
	tests := []struct {
		name     string
		params   map[string]any
		existing *iam.AppUser
		fail     error
		cmd      string
		args     map[string]string
		want     iam.Result // fields compared: Action, Success, Skipped, Reason, ErrorCode, ID
		active   *bool      // want result.active
		unknown  bool       // want result.active null
		calls    string     // want app calls, comma-separated
	}{
		{name: "get existing", existing: jdoe(true), cmd: iam.CommandGetUser,
			want: iam.Result{Action: "get", Success: true, ID: "u9"}, active: ptr(true), calls: "get:userName=jdoe"},
		{name: "get missing", cmd: iam.CommandGetUser,
			want: iam.Result{Action: "get", ErrorCode: float64(404)}, calls: "get:userName=jdoe"},
		{name: "create", cmd: iam.CommandCreateUser,
			want: iam.Result{Action: "create", Success: true, ID: "u1"}, active: ptr(true), calls: "get:userName=jdoe,create"},
		{name: "create existing updates", existing: jdoe(true), cmd: iam.CommandCreateUser,
			want: iam.Result{Action: "update", Success: true, ID: "u9"}, calls: "get:userName=jdoe,update:u9"},
		{name: "create disabled", params: map[string]any{iam.ParamCreateEnabled: false}, cmd: iam.CommandCreateUser,
			want: iam.Result{Action: "create", Success: true, Skipped: true, Reason: "Command is disabled."}},
		{name: "create fails with app status", fail: statusErr{409}, cmd: iam.CommandCreateUser,
			want: iam.Result{Action: "create", ErrorCode: float64(409)}, calls: "get:userName=jdoe,create"},
		{name: "update enables when allowed", existing: jdoe(false), cmd: iam.CommandUpdateUser,
			args: map[string]string{"allow-enable": "true"},
			want: iam.Result{Action: "update", Success: true, ID: "u9"}, active: ptr(true), calls: "get:userName=jdoe,active:u9=true,update:u9"},
		{name: "update does not enable when not allowed", existing: jdoe(false), cmd: iam.CommandUpdateUser,
			args: map[string]string{"allow-enable": "false"},
			want: iam.Result{Action: "update", Success: true, ID: "u9"}, active: ptr(false), calls: "get:userName=jdoe,update:u9"},
		{name: "update missing skipped", cmd: iam.CommandUpdateUser,
			want: iam.Result{Action: "update", Success: true, Skipped: true, Reason: "User does not exist"}, calls: "get:userName=jdoe"},
		{name: "update missing creates", params: map[string]any{iam.ParamCreateIfNotExists: true}, cmd: iam.CommandUpdateUser,
			want: iam.Result{Action: "create", Success: true, ID: "u1"}, calls: "get:userName=jdoe,create"},
		{name: "stale id falls back to the username", existing: jdoe(true), cmd: iam.CommandCreateUser,
			args: map[string]string{iam.ArgUserProfile: `{"id":"u404","username":"jdoe"}`},
			want: iam.Result{Action: "update", Success: true, ID: "u9"}, calls: "get:id=u404,get:userName=jdoe,update:u9"},
		{name: "active unknown is reported null", existing: &iam.AppUser{ID: "u9", Username: "jdoe", ActiveUnknown: true, Data: map[string]any{"userName": "jdoe"}},
			cmd: iam.CommandGetUser, want: iam.Result{Action: "get", Success: true, ID: "u9"}, unknown: true, calls: "get:userName=jdoe"},
		{name: "update disabled", params: map[string]any{iam.ParamUpdateEnabled: false}, existing: jdoe(true), cmd: iam.CommandUpdateUser,
			want: iam.Result{Action: "update", Success: true, Skipped: true, Reason: "Command is disabled."}},
		{name: "disable", existing: jdoe(true), cmd: iam.CommandDisableUser,
			want: iam.Result{Action: "disable", Success: true, ID: "u9"}, active: ptr(false), calls: "get:userName=jdoe,active:u9=false"},
		{name: "disable missing skipped", cmd: iam.CommandDisableUser,
			want: iam.Result{Action: "disable", Success: true, Skipped: true, Reason: "User does not exist"}, calls: "get:userName=jdoe"},
		{name: "disable disabled", params: map[string]any{iam.ParamDisableEnabled: false}, existing: jdoe(true), cmd: iam.CommandDisableUser,
			want: iam.Result{Action: "disable", Success: true, Skipped: true, Reason: "Command is disabled."}},
		{name: "enable", existing: jdoe(false), cmd: iam.CommandEnableUser,
			want: iam.Result{Action: "enable", Success: true, ID: "u9"}, active: ptr(true), calls: "get:userName=jdoe,active:u9=true"},
		{name: "lookup by id first", existing: jdoe(true), cmd: iam.CommandGetUser, args: map[string]string{iam.ArgUserProfile: `{"id":"u9","username":"other"}`},
			want: iam.Result{Action: "get", Success: true, ID: "u9"}, calls: "get:id=u9"},
		{name: "lookup by old user data", existing: jdoe(true), cmd: iam.CommandUpdateUser,
			args: map[string]string{iam.ArgUserProfile: `{"username":"jdoe2","olduserdata":{"username":"jdoe"}}`},
			want: iam.Result{Action: "update", Success: true, ID: "u9"}, calls: "get:userName=jdoe,update:u9"},
		{name: "mapper_out param overrides default", params: map[string]any{iam.ParamMapperOut: `{"mail":"email"}`}, existing: jdoe(true), cmd: iam.CommandGetUser,
			want: iam.Result{Action: "get", Success: true, ID: "u9"}, calls: "get:mail=jdoe@example.com"},
		{name: "bad profile reported", cmd: iam.CommandGetUser, args: map[string]string{iam.ArgUserProfile: `not json`},
			want: iam.Result{Action: "get", ErrorCode: float64(400)}},
		{name: "no identifying attribute", cmd: iam.CommandGetUser, args: map[string]string{iam.ArgUserProfile: `{"title":"x"}`},
			want: iam.Result{Action: "get", ErrorCode: float64(400)}},
		{name: "bad mapper reported", params: map[string]any{iam.ParamMapperOut: `[1]`}, cmd: iam.CommandGetUser,
			want: iam.Result{Action: "get", ErrorCode: float64(400)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &memApp{users: map[string]*iam.AppUser{}, fail: tt.fail}
			if tt.existing != nil {
				app.users[tt.existing.ID] = tt.existing
			}
			h := sdktest.New(sdk.Connector{Commands: kit(app).Commands()}, tt.params)
			args := map[string]string{iam.ArgUserProfile: profile}
			maps.Copy(args, tt.args)
			raw, err := h.Command(context.Background(), tt.cmd, args)
			if err != nil {
				t.Fatalf("management command failed as an error: %v", err)
			}
			var cr struct {
				ReadableOutput string     `json:"readable_output"`
				OutputsPrefix  string     `json:"outputs_prefix"`
				Outputs        iam.Result `json:"outputs"`
			}
			if err := json.Unmarshal(raw, &cr); err != nil {
				t.Fatal(err)
			}
			got := cr.Outputs
			if got.Action != tt.want.Action || got.Success != tt.want.Success || got.Skipped != tt.want.Skipped ||
				got.Reason != tt.want.Reason || got.ErrorCode != tt.want.ErrorCode || got.ID != tt.want.ID {
				t.Errorf("result = %+v, want %+v", got, tt.want)
			}
			if tt.active != nil && (got.Active == nil || *got.Active != *tt.active) {
				t.Errorf("active = %v, want %v", got.Active, *tt.active)
			}
			if tt.unknown && got.Active != nil {
				t.Errorf("active = %v, want null: the app did not say", *got.Active)
			}
			if c := strings.Join(app.calls, ","); c != tt.calls {
				t.Errorf("app calls = %s, want %s", c, tt.calls)
			}
			if cr.OutputsPrefix != iam.OutputsPrefix || got.Brand != "test" || got.InstanceName != "test" {
				t.Errorf("prefix %q brand %q instance %q", cr.OutputsPrefix, got.Brand, got.InstanceName)
			}
			if !strings.HasPrefix(cr.ReadableOutput, "### ") || !strings.Contains(cr.ReadableOutput, "|") {
				t.Errorf("readable output is not a markdown table: %q", cr.ReadableOutput)
			}
		})
	}
}

func TestCreateMapsProfileAndUpdatesUserProfile(t *testing.T) {
	app := &memApp{users: map[string]*iam.AppUser{}}
	h := sdktest.New(sdk.Connector{Commands: kit(app).Commands()}, nil)
	raw, err := h.Command(context.Background(), iam.CommandCreateUser,
		map[string]string{iam.ArgUserProfile: `{"email":"a@example.com","username":"a","givenname":"Ann"}`})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"userName": "a", "mail": "a@example.com", "name": map[string]any{"given": "Ann"}}
	if got := app.users["u1"].Data; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("app fields = %v, want %v", got, want)
	}
	var cr abi.CommandResults
	json.Unmarshal(raw, &cr)
	up := cr.RawResponse.(map[string]any)["UserProfile"].(map[string]any)
	if up["givenname"] != "Ann" || up["username"] != "a" || up["email"] != "a@example.com" {
		t.Errorf("updated user profile = %v", up)
	}
}

func TestMapping(t *testing.T) {
	tests := []struct {
		m    iam.Mapping
		src  string
		want string
	}{
		{iam.Mapping{"a.b": "x"}, `{"x":1}`, `{"a":{"b":1}}`},
		{iam.Mapping{"emails.0.value": "email", "emails.0.primary": "p"}, `{"email":"e","p":true}`, `{"emails":[{"primary":true,"value":"e"}]}`},
		{iam.Mapping{"mail": "emails.0.value"}, `{"emails":[{"value":"e"}]}`, `{"mail":"e"}`},
		{iam.Mapping{"a": "missing", "b": "n"}, `{"n":null}`, `{}`},
	}
	for _, tt := range tests {
		var src map[string]any
		json.Unmarshal([]byte(tt.src), &src)
		got, _ := json.Marshal(tt.m.Apply(src))
		if string(got) != tt.want {
			t.Errorf("%v.Apply(%s) = %s, want %s", tt.m, tt.src, got, tt.want)
		}
	}
	if _, err := iam.ParseMapping(`{"a":""}`); err == nil {
		t.Error("ParseMapping accepted an empty path")
	}
}

func TestGetMappingFields(t *testing.T) {
	app := &memApp{users: map[string]*iam.AppUser{}}
	k := kit(app)
	h := sdktest.New(sdk.Connector{GetMappingFields: k.GetMappingFields}, nil)
	got, err := h.GetMappingFields(context.Background())
	if err != nil || got[iam.MappingTypeName]["userName"] != "login" {
		t.Fatalf("get-mapping-fields = %v, %v", got, err)
	}
	k.NewClient = func(context.Context, *sdk.Host) (iam.Client, error) { return nil, errors.New("no url") }
	h = sdktest.New(sdk.Connector{GetMappingFields: k.GetMappingFields}, nil)
	if _, err := h.GetMappingFields(context.Background()); err == nil {
		t.Error("get-mapping-fields without a client succeeded")
	}
}

func ptr[T any](v T) *T { return &v }
