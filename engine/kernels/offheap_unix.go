//go:build unix

package kernels

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// offHeap is memory outside the Go heap, for repacked weights: a model's
// worth of live heap would raise the garbage collector's target by as much
// (GOGC), letting garbage pile up to gigabytes. The mapping is returned to
// the system once the offHeap is unreachable; every slice of it must keep
// the offHeap reachable (Matrix holds both), or free releases it at once.
type offHeap struct {
	b       []byte
	m       []byte // the whole mapping
	cleanup runtime.Cleanup
}

// free returns the memory now; nothing may use b afterwards.
func (h *offHeap) free() {
	if h == nil || h.m == nil {
		return
	}
	h.cleanup.Stop()
	_ = unix.Munmap(h.m)
	h.b, h.m = nil, nil
}

func allocOffHeap(n int) *offHeap {
	if n == 0 {
		return &offHeap{}
	}
	// Map 2 MB more than needed and start at a 2 MB boundary, so that the
	// whole range can be backed by large pages.
	const huge = 2 << 20
	m, err := unix.Mmap(-1, 0, n+huge, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil { // no mapping to be had: the heap will do
		return &offHeap{b: make([]byte, n)}
	}
	off := int((huge - uintptr(unsafe.Pointer(unsafe.SliceData(m)))%huge) % huge)
	b := m[off : off+n : off+n]
	// Large pages, where the kernel offers them on request: a decode step
	// streams all of this, and 4 KB pages cost a TLB miss every 4 KB.
	adviseHuge(b)
	h := &offHeap{b: b, m: m}
	h.cleanup = runtime.AddCleanup(h, func(m []byte) { _ = unix.Munmap(m) }, m)
	return h
}

func (h *offHeap) populate() {
	if h == nil || len(h.b) == 0 || h.m == nil { // heap memory: the Go runtime faulted it in
		return
	}
	if populateWrite(h.b) {
		return
	}
	for i := 0; i < len(h.b); i += 4096 { // kernels before 5.14
		h.b[i] = 0
	}
}
