//go:build unix

package kernels

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// offHeap is memory outside the Go heap, for repacked weights: a model's
// worth of live heap would raise the garbage collector's target by as much
// (GOGC), letting garbage pile up to gigabytes. The mapping is returned to
// the system once the offHeap is unreachable; every slice of it must keep
// the offHeap reachable (Matrix holds both).
type offHeap struct{ b []byte }

func allocOffHeap(n int) *offHeap {
	if n == 0 {
		return &offHeap{}
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil { // no mapping to be had: the heap will do
		return &offHeap{b: make([]byte, n)}
	}
	h := &offHeap{b: b}
	runtime.AddCleanup(h, func(b []byte) { _ = unix.Munmap(b) }, b)
	return h
}
