//go:build (amd64 || arm64) && !purego

package kernels

import "unsafe"

//go:noescape
func prefetchAsm(p unsafe.Pointer, lines int)

// Prefetch asks the CPU for b's cache lines ahead of their use (a hint:
// it changes no value). Attention calls it on a head's next block of
// cached keys or values, which sits in another part of memory than the
// block it reads now, where the hardware's stream prefetchers would start
// cold.
func Prefetch[T float32 | uint16](b []T) {
	if len(b) > 0 {
		prefetchAsm(unsafe.Pointer(&b[0]), (len(b)*int(unsafe.Sizeof(b[0]))+63)/64)
	}
}
