//go:build linux || darwin || freebsd

package store

import "golang.org/x/sys/unix"

// freeBytes returns the space on dir's filesystem available to this
// (unprivileged or not) process.
func freeBytes(dir string) (uint64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
