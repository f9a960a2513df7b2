package mmapfile

import "golang.org/x/sys/unix"

// populate faults b's pages in, reading ahead as one call
// (MADV_POPULATE_READ, Linux 5.14; older kernels ignore the advice).
func populate(b []byte) { adviseWidened(b, unix.MADV_POPULATE_READ) }
