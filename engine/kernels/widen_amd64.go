//go:build amd64 && !purego

package kernels

// widenF16AVX2 converts src to float32 in dst: groups of eight with F16C
// (exact), the last few through the table.
func widenF16AVX2(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	n := len(src) &^ 7
	if n > 0 {
		widenF16AVX2Asm(dst[:n], src[:n])
	}
	for i := n; i < len(src); i++ {
		dst[i] = f16Table[src[i]]
	}
}

//go:noescape
func widenF16AVX2Asm(dst []float32, src []uint16)
