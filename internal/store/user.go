package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/connhost/connhost/abi"
)

// User is a connhost user. Username and Email (when set) are unique,
// ignoring case.
type User struct {
	ID       string    `json:"id"`
	Username string    `json:"username"`
	Email    string    `json:"email,omitempty"`
	Name     string    `json:"name,omitempty"`
	Roles    []string  `json:"roles,omitempty"`
	Created  time.Time `json:"created"`
}

// ABI returns the user as the find_user host function reports it.
func (u User) ABI() abi.User {
	return abi.User{ID: u.ID, Username: u.Username, Email: u.Email, Name: u.Name, Roles: u.Roles}
}

func usrKey(id string) []byte { return key(pUsr, id) }

func usrNameKey(username string) []byte { return key(pIdxUsrName, strings.ToLower(username)) }

func usrMailKey(email string) []byte { return key(pIdxUsrMail, strings.ToLower(email)) }

// CreateUser stores a new user and returns it with its id. A taken
// username or email fails with ErrExists.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	if strings.TrimSpace(u.Username) == "" {
		return User{}, fmt.Errorf("create user: empty username: %w", ErrInvalid)
	}
	var out User
	err := s.update(ctx, func(txn *badger.Txn) error {
		now := s.now().UTC()
		u.ID, u.Created = s.ids.next(now), now
		idx := [][]byte{usrNameKey(u.Username)}
		if u.Email != "" {
			idx = append(idx, usrMailKey(u.Email))
		}
		for _, k := range idx {
			taken, err := exists(txn, k)
			if err != nil {
				return err
			}
			if taken {
				return fmt.Errorf("%s: %w", strings.TrimPrefix(string(k), "idx/usr/"), ErrExists)
			}
			if err := txn.Set(k, []byte(u.ID)); err != nil {
				return err
			}
		}
		out = u
		return setJSON(txn, usrKey(u.ID), u)
	})
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return out, nil
}

// GetUser returns the user with id.
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	var u User
	if err := s.view(ctx, func(txn *badger.Txn) error { return getJSON(txn, usrKey(id), &u) }); err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// FindUser returns the user with the given username or, failing that,
// email, ignoring case; empty arguments are not looked up.
func (s *Store) FindUser(ctx context.Context, username, email string) (User, error) {
	var u User
	err := s.view(ctx, func(txn *badger.Txn) error {
		var keys [][]byte
		if username != "" {
			keys = append(keys, usrNameKey(username))
		}
		if email != "" {
			keys = append(keys, usrMailKey(email))
		}
		for _, k := range keys {
			id, err := getString(txn, k)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			return getJSON(txn, usrKey(id), &u)
		}
		return ErrNotFound
	})
	if err != nil {
		return User{}, fmt.Errorf("user %q / %q: %w", username, email, err)
	}
	return u, nil
}

// ListUsers returns all users in creation order. User counts are small
// (people, not events), so there is no paging.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	var out []User
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanJSON(txn, pUsr, func() any { out = append(out, User{}); return &out[len(out)-1] })
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// scanJSON decodes every value under prefix into the value slot returns.
func scanJSON(txn *badger.Txn, prefix string, slot func() any) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if err := item.Value(func(b []byte) error { return decode(item.Key(), b, slot()) }); err != nil {
			return err
		}
	}
	return nil
}
