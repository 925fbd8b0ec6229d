package store

import (
	"context"
	"errors"
	"testing"
)

func TestUsers(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	ann, err := s.CreateUser(ctx, User{Username: "Ann", Email: "Ann@Example.com", Name: "Ann A", Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.CreateUser(ctx, User{Username: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	creates := []struct {
		name    string
		in      User
		wantErr error
	}{
		{"username taken, other case", User{Username: "ANN"}, ErrExists},
		{"email taken, other case", User{Username: "carl", Email: "ann@example.COM"}, ErrExists},
		{"empty username", User{Email: "x@y"}, ErrInvalid},
		{"no email is fine twice", User{Username: "dora"}, nil},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.CreateUser(ctx, tc.in); !errors.Is(err, tc.wantErr) {
				t.Errorf("CreateUser: %v, want %v", err, tc.wantErr)
			}
		})
	}
	finds := []struct {
		name            string
		username, email string
		want            string
	}{
		{"by username", "ann", "", ann.ID},
		{"by email", "", "ANN@example.com", ann.ID},
		{"username first", "bob", "ann@example.com", bob.ID},
		{"unknown username falls back to email", "zed", "ann@example.com", ann.ID},
		{"nobody", "zed", "zed@example.com", ""},
		{"empty", "", "", ""},
	}
	for _, tc := range finds {
		t.Run(tc.name, func(t *testing.T) {
			u, err := s.FindUser(ctx, tc.username, tc.email)
			if tc.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("FindUser = %+v, %v; want ErrNotFound", u, err)
				}
				return
			}
			if err != nil || u.ID != tc.want {
				t.Errorf("FindUser = %+v, %v; want %s", u, err, tc.want)
			}
		})
	}
	got, err := s.GetUser(ctx, ann.ID)
	if err != nil || got.Name != "Ann A" || got.ABI().Roles[0] != "admin" || got.ABI().Email != "Ann@Example.com" {
		t.Errorf("GetUser = %+v, %v", got, err)
	}
	if _, err := s.GetUser(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetUser(nope): %v", err)
	}
	all, err := s.ListUsers(ctx)
	if err != nil || len(all) != 3 || all[0].ID != ann.ID || all[1].ID != bob.ID {
		t.Errorf("ListUsers = %+v, %v", all, err)
	}
	checkIndexes(t, s)
}
