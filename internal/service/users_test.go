package service_test

import (
	"context"
	"testing"

	"github.com/connhost/connhost/internal/service"
)

// TestUsers: users are checked, unique by username, and found by id or
// username.
func TestUsers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var ann string
	for _, tc := range []struct {
		name string
		in   service.UserInput
		want error
	}{
		{"bad username", service.UserInput{Username: "ann smith"}, service.ErrInvalid},
		{"bad email", service.UserInput{Username: "ann", Email: "ann at example"}, service.ErrInvalid},
		{"ok", service.UserInput{Username: "ann", Email: "ann@example.com", Name: "Ann", Roles: []string{"analyst"}}, nil},
		{"taken username", service.UserInput{Username: "ann"}, service.ErrExists},
		{"another", service.UserInput{Username: "bob"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := e.svc.Users.Create(ctx, tc.in)
			wantErr(t, err, tc.want)
			if err == nil && (u.ID == "" || u.Username != tc.in.Username || u.Created.IsZero()) {
				t.Errorf("user %+v", u)
			}
			if u.Username == "ann" {
				ann = u.ID
			}
		})
	}
	for _, tc := range []struct {
		key  string
		want error
	}{{ann, nil}, {"ann", nil}, {"nosuch", service.ErrNotFound}} {
		t.Run("get "+tc.key, func(t *testing.T) {
			u, err := e.svc.Users.Get(ctx, tc.key)
			wantErr(t, err, tc.want)
			if err == nil && (u.ID != ann || u.Email != "ann@example.com" || u.Name != "Ann") {
				t.Errorf("user %+v", u)
			}
		})
	}
	if us, err := e.svc.Users.List(ctx); err != nil || len(us) != 2 {
		t.Errorf("list %+v, %v", us, err)
	}
}
