package kernels

import "testing"

// Prefetch is a hint: any slice, empty, short, unaligned or ending on the
// last float of its array, changes nothing and does not fault.
func TestPrefetch(t *testing.T) {
	b := make([]float32, 1000)
	for i := range b {
		b[i] = float32(i)
	}
	for _, s := range [][]float32{nil, b[:0], b[:1], b[3:20], b[999:], b[1:], b} {
		Prefetch(s)
	}
	h := make([]uint16, 999)
	for _, s := range [][]uint16{nil, h[:1], h[5:], h} {
		Prefetch(s)
	}
	for i := range b {
		if b[i] != float32(i) {
			t.Fatalf("b[%d] = %v after Prefetch", i, b[i])
		}
	}
}
