//go:build unix && !linux

package kernels

// adviseHuge: these systems give large pages by themselves where they can
// (superpages), with no advice to ask for them.
func adviseHuge([]byte) {}

// populateWrite: no call faults a range in; the caller writes every page.
func populateWrite([]byte) bool { return false }
