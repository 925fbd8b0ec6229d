package memlimit

import "syscall"

// reserve maps n bytes of zeroed, private address space without committing
// memory: pages count against the host only once the guest touches them.
func reserve(n uint64) ([]byte, error) {
	const page = 64 << 10
	n = (n + page - 1) &^ (page - 1)
	if n == 0 {
		n = page
	}
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, err
	}
	return b[:0], nil
}

func unreserve(b []byte) error { return syscall.Munmap(b) }
