//go:build unix

package daemon

import "syscall"

// fileLimit is RLIMIT_NOFILE (soft, hard); 0, 0 when unknown. The Go
// runtime raises the soft limit to the hard one (hard - 1 in current
// releases) in syscall's init, so the daemons need not.
func fileLimit() (soft, hard uint64) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0
	}
	return uint64(l.Cur), uint64(l.Max)
}
