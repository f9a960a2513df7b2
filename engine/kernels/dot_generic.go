package kernels

import "math"

// dotF32Generic accumulates in eight lanes, like an 8-wide SIMD kernel, so
// its rounding is close to what vector code produces.
func dotF32Generic(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		aa := a[i : i+8 : i+8]
		bb := b[i : i+8 : i+8]
		s0 += aa[0] * bb[0]
		s1 += aa[1] * bb[1]
		s2 += aa[2] * bb[2]
		s3 += aa[3] * bb[3]
		s4 += aa[4] * bb[4]
		s5 += aa[5] * bb[5]
		s6 += aa[6] * bb[6]
		s7 += aa[7] * bb[7]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// The 16-bit dots widen each weight and accumulate exactly as dotF32Generic
// does (same lanes, same order), so a product over 16-bit weights gives the
// same bits whether it runs row by row (decode) or on rows widened first
// (prefill): a replayed prompt rebuilds a KV cache bit for bit.

func dotF16Generic(a []uint16, b []float32) float32 {
	n := len(a)
	b = b[:n]
	t := f16Table
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		aa := a[i : i+8 : i+8]
		bb := b[i : i+8 : i+8]
		s0 += t[aa[0]] * bb[0]
		s1 += t[aa[1]] * bb[1]
		s2 += t[aa[2]] * bb[2]
		s3 += t[aa[3]] * bb[3]
		s4 += t[aa[4]] * bb[4]
		s5 += t[aa[5]] * bb[5]
		s6 += t[aa[6]] * bb[6]
		s7 += t[aa[7]] * bb[7]
	}
	for ; i < n; i++ {
		s0 += t[a[i]] * b[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

func bf16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func dotBF16Generic(a []uint16, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		aa := a[i : i+8 : i+8]
		bb := b[i : i+8 : i+8]
		s0 += bf16(aa[0]) * bb[0]
		s1 += bf16(aa[1]) * bb[1]
		s2 += bf16(aa[2]) * bb[2]
		s3 += bf16(aa[3]) * bb[3]
		s4 += bf16(aa[4]) * bb[4]
		s5 += bf16(aa[5]) * bb[5]
		s6 += bf16(aa[6]) * bb[6]
		s7 += bf16(aa[7]) * bb[7]
	}
	for ; i < n; i++ {
		s0 += bf16(a[i]) * b[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}
