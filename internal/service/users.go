package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/connhost/connhost/internal/store"
)

// Users keeps the users incidents are owned by and chat users are matched
// to.
type Users struct{ c *core }

// UserInput is a user to create.
type UserInput struct {
	Username string
	Email    string
	Name     string
	Roles    []string
}

// Create adds a user. A bad username or email is ErrInvalid, a taken
// username ErrExists.
func (us *Users) Create(ctx context.Context, in UserInput) (store.User, error) {
	if !instanceNameRe.MatchString(in.Username) {
		return store.User{}, fmt.Errorf("%w: username %q: want letters, digits, '.', '_' or '-', at most 64", ErrInvalid, in.Username)
	}
	if in.Email != "" && (!strings.Contains(in.Email, "@") || strings.ContainsAny(in.Email, " \t\n")) {
		return store.User{}, fmt.Errorf("%w: email %q is not an address", ErrInvalid, in.Email)
	}
	u, err := us.c.st.CreateUser(ctx, store.User{Username: in.Username, Email: in.Email, Name: in.Name, Roles: in.Roles})
	return u, fromStore(err)
}

// Get returns a user by id or, failing that, by username.
func (us *Users) Get(ctx context.Context, idOrName string) (store.User, error) {
	u, err := us.c.st.GetUser(ctx, idOrName)
	if errors.Is(err, store.ErrNotFound) {
		u, err = us.c.st.FindUser(ctx, idOrName, "")
	}
	if err != nil {
		return store.User{}, fmt.Errorf("user %q: %w", idOrName, fromStore(err))
	}
	return u, nil
}

// List returns every user.
func (us *Users) List(ctx context.Context) ([]store.User, error) {
	u, err := us.c.st.ListUsers(ctx)
	return u, fromStore(err)
}
