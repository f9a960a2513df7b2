package kernels

import "golang.org/x/sys/unix"

// adviseHuge asks for large pages (transparent huge pages, on request).
func adviseHuge(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }

// populateWrite faults b in for writing in one call (MADV_POPULATE_WRITE,
// Linux 5.14); false where the kernel lacks it.
func populateWrite(b []byte) bool { return unix.Madvise(b, unix.MADV_POPULATE_WRITE) == nil }
