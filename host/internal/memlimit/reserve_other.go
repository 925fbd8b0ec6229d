//go:build !linux

package memlimit

import "errors"

// reserve is not available here: the Allocator falls back to Go slices.
func reserve(uint64) ([]byte, error) { return nil, errors.ErrUnsupported }

func unreserve([]byte) error { return nil }
