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

func dotF16Generic(a []uint16, b []float32) float32 {
	n := len(a)
	b = b[:n]
	t := f16Table
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		aa := a[i : i+4 : i+4]
		bb := b[i : i+4 : i+4]
		s0 += t[aa[0]] * bb[0]
		s1 += t[aa[1]] * bb[1]
		s2 += t[aa[2]] * bb[2]
		s3 += t[aa[3]] * bb[3]
	}
	for ; i < n; i++ {
		s0 += t[a[i]] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func dotBF16Generic(a []uint16, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		aa := a[i : i+4 : i+4]
		bb := b[i : i+4 : i+4]
		s0 += math.Float32frombits(uint32(aa[0])<<16) * bb[0]
		s1 += math.Float32frombits(uint32(aa[1])<<16) * bb[1]
		s2 += math.Float32frombits(uint32(aa[2])<<16) * bb[2]
		s3 += math.Float32frombits(uint32(aa[3])<<16) * bb[3]
	}
	for ; i < n; i++ {
		s0 += math.Float32frombits(uint32(a[i])<<16) * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
