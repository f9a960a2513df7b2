//go:build (amd64 || arm64) && !purego

package kernels

//go:noescape
func prefetchAsm(p *float32, lines int)

// Prefetch asks the CPU for b's cache lines ahead of their use (a hint:
// it changes no value). Attention calls it on a head's next block of
// cached keys or values, which sits in another part of memory than the
// block it reads now, where the hardware's stream prefetchers would start
// cold.
func Prefetch(b []float32) {
	if len(b) > 0 {
		prefetchAsm(&b[0], (len(b)+15)/16)
	}
}
