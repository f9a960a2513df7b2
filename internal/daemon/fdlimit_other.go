//go:build !unix

package daemon

// fileLimit is unknown here: the connection limit defaults to 1024.
func fileLimit() (soft, hard uint64) { return 0, 0 }
