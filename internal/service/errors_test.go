package service

import (
	"errors"
	"fmt"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// TestFromStore: a store error comes out matching the service's sentinel
// (and still the store's), with its text unchanged; service errors and
// other errors pass through.
func TestFromStore(t *testing.T) {
	other := errors.New("disk on fire")
	for _, tc := range []struct {
		name string
		in   error
		want []error // service sentinels it must match
		not  []error // service sentinels it must not match
	}{
		{"not found", fmt.Errorf("get incident 7: %w", store.ErrNotFound), []error{ErrNotFound}, []error{ErrConflict, ErrInvalid, ErrExists}},
		{"exists", fmt.Errorf("create instance x: %w", store.ErrExists), []error{ErrExists}, []error{ErrConflict}},
		{"invalid", fmt.Errorf("put: %w", store.ErrInvalid), []error{ErrInvalid}, []error{ErrInvalidArguments}},
		{"conflict", fmt.Errorf("set context: %w", store.ErrConflict), []error{ErrConflict}, []error{ErrNotFound}},
		{"no space", fmt.Errorf("create incidents: %w", store.ErrNoSpace), []error{ErrNoSpace}, []error{ErrConflict, ErrInvalid}},
		{"two kinds", errors.Join(store.ErrConflict, fmt.Errorf("x: %w", store.ErrInvalid)), []error{ErrConflict, ErrInvalid}, []error{ErrNotFound}},
		{"service error kept", fmt.Errorf("%w: incident is already closed", ErrConflict), []error{ErrConflict}, []error{ErrNotFound}},
		{"service error wrapping the store's", fmt.Errorf("%w: %w", ErrConflict, store.ErrInvalid), []error{ErrConflict, ErrInvalid}, nil},
		{"other", other, nil, []error{ErrNotFound, ErrConflict, ErrInvalid, ErrExists}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fromStore(tc.in)
			if got.Error() != tc.in.Error() {
				t.Errorf("text %q, want %q", got, tc.in)
			}
			if !errors.Is(got, tc.in) {
				t.Error("the store's error is no longer in the chain")
			}
			for _, w := range tc.want {
				if !errors.Is(got, w) {
					t.Errorf("does not match %v", w)
				}
			}
			for _, n := range tc.not {
				if errors.Is(got, n) {
					t.Errorf("matches %v", n)
				}
			}
			if again := fromStore(got); again != got {
				t.Errorf("translating twice wrapped again: %#v", again)
			}
		})
	}
	if fromStore(nil) != nil {
		t.Error("fromStore(nil) != nil")
	}
	if errors.Is(ErrNotFound, store.ErrNotFound) || errors.Is(store.ErrNotFound, ErrNotFound) {
		t.Error("the service's sentinels are the store's")
	}
}

// TestTyped: what a guest sees of the store's and the service's errors.
func TestTyped(t *testing.T) {
	for _, tc := range []struct {
		in   error
		want abi.ErrorKind
	}{
		{fmt.Errorf("ctx: %w", store.ErrConflict), abi.KindConflict},
		{fmt.Errorf("incident: %w", store.ErrNotFound), abi.KindNotFound},
		{fmt.Errorf("%w: name is required", ErrInvalid), abi.KindBadRequest},
		{fmt.Errorf("entry: %w", store.ErrInvalid), abi.KindBadRequest},
	} {
		if got := abi.KindOf(typed(tc.in)); got != tc.want {
			t.Errorf("typed(%v) kind %q, want %q", tc.in, got, tc.want)
		}
	}
	if typed(nil) != nil {
		t.Error("typed(nil) != nil")
	}
}
