//go:build unix && !linux

package mmapfile

import (
	"os"
	"sync/atomic"
)

// populate faults b's pages in by reading a byte of each, after asking for
// them all at once: these systems have no MADV_POPULATE_READ.
func populate(b []byte) {
	willNeed(b)
	var sum uint32
	for i := 0; i < len(b); i += os.Getpagesize() {
		sum += uint32(b[i])
	}
	populated.Store(sum) // keeps the reads
}

var populated atomic.Uint32
