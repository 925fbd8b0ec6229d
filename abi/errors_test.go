package abi_test

import (
	"testing"

	"github.com/connhost/connhost/abi"
)

// TestNormalizeGuest: a guest keeps its own kinds; host kinds and unknown
// ones become failed, naming what the guest reported, before the sentinel
// rule.
func TestNormalizeGuest(t *testing.T) {
	tests := []struct {
		in   abi.Error
		want abi.Error
	}{
		{abi.Error{Kind: abi.KindBadRequest, Message: "no id"}, abi.Error{Kind: abi.KindBadRequest, Message: "no id"}},
		{abi.Error{Kind: abi.KindFailed, Message: "API rate limit hit"}, abi.Error{Kind: abi.KindRateLimited, Message: "API rate limit hit"}},
		{abi.Error{Kind: abi.KindTimeout, Message: "slow"}, abi.Error{Kind: abi.KindFailed, Message: "guest reported kind timeout: slow"}},
		{abi.Error{Kind: abi.KindCanceled}, abi.Error{Kind: abi.KindFailed, Message: "guest reported kind canceled"}},
		{abi.Error{Kind: abi.KindDenied, Message: "skip update"}, abi.Error{Kind: abi.KindSkipUpdate, Message: "guest reported kind denied: skip update"}},
		{abi.Error{Kind: "teapot", Message: "x"}, abi.Error{Kind: abi.KindFailed, Message: "guest reported kind teapot: x"}},
	}
	for _, tt := range tests {
		if got := abi.NormalizeGuest(&tt.in); *got != tt.want {
			t.Errorf("NormalizeGuest(%+v) = %+v, want %+v", tt.in, *got, tt.want)
		}
	}
	for _, k := range []abi.ErrorKind{abi.KindTrap, abi.KindMemoryLimit, abi.KindOutputLimit, abi.KindABIViolation, abi.KindIncompatible, abi.KindUnavailable, abi.KindInternalError, abi.KindConflict, abi.KindNotFound} {
		if k.FromGuest() {
			t.Errorf("%s reported as a guest kind", k)
		}
	}
}
