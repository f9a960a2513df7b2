package kernels

import (
	"encoding/binary"
	"math"
)

// The generic kernels for the packed (x8) layouts: the reference the
// assembly is tested against, and what a set without x8 assembly carries.
// They mirror the AVX-512 kernels step by step, so they give their bits
// (and the AVX2 ones', which give the same):
//
//   - lane 2r of row r takes the elements {0–3, 8–11, 16–19, 24–27} of
//     each block, lane 2r+1 the others;
//   - per block and lane the integer sum of the unsigned weights (Q4_0: the
//     nibbles q; Q8_0: q+128) times the activation quants, plus the
//     prepared correction (x8Prep: −8·Σx or −128·Σx over the lane's
//     elements): exact, in int32, as VPDPBUSD adds;
//   - that sum converted to float32 and added into the lane's accumulator
//     times d_w·d_x (float32 product) with one rounding (fma32, the FMA);
//   - blocks in order, accumulators starting at +0, and at the end
//     out[r] = lane 2r + lane 2r+1.
//
// The tile runs the one-token sequence for each of its four tokens.

// x8GemvGeneric is the one-token kernel for dt (Q4_0 or Q8_0); wrap it in
// x8Gemv for the operand checks.
func x8GemvGeneric(dt DType) func(out *[8]float32, w, p []byte, blocks int) {
	bb := x8BlockBytes(dt)
	return func(out *[8]float32, w, p []byte, blocks int) {
		var acc [2 * x8Rows]float32
		for b := 0; b < blocks; b++ {
			x8BlockGeneric(&acc, dt, w[b*bb:(b+1)*bb], p[b*x8PrepBytes:(b+1)*x8PrepBytes])
		}
		for r := range out {
			out[r] = acc[2*r] + acc[2*r+1]
		}
	}
}

// x8TileGeneric is the four-token kernel for dt; wrap it in x8Tile for the
// operand checks.
func x8TileGeneric(dt DType) func(out *[32]float32, w, p []byte, blocks, pstride int) {
	gemv := x8GemvGeneric(dt)
	return func(out *[32]float32, w, p []byte, blocks, pstride int) {
		for t := 0; t < x8Tokens; t++ {
			gemv((*[8]float32)(out[t*x8Rows:]), w, p[t*pstride:], blocks)
		}
	}
}

// x8BlockGeneric adds one packed block w of eight rows times the prepared
// activation block p into the sixteen lane accumulators.
func x8BlockGeneric(acc *[2 * x8Rows]float32, dt DType, w, p []byte) {
	w, p = w[:x8BlockBytes(dt)], p[:x8PrepBytes]
	corr := 32 // the offset of −8·Σx (Q4_0), or of −128·Σx (Q8_0)
	if dt == Q8_0 {
		corr = 40
	}
	dx := math.Float32frombits(binary.LittleEndian.Uint32(p[48:]))
	for r := 0; r < x8Rows; r++ {
		var s [2]int32
		s[0] = int32(binary.LittleEndian.Uint32(p[corr:]))
		s[1] = int32(binary.LittleEndian.Uint32(p[corr+4:]))
		for e := 0; e < QK; e++ {
			s[e/4%2] += int32(x8Unsigned(dt, w, r, e)) * int32(int8(p[e]))
		}
		dw := f16Table[binary.LittleEndian.Uint16(w[2*r:])]
		d := float32(dw * dx) // rounded here, as VMULPS does
		for l, v := range s {
			acc[2*r+l] = fma32(float32(v), d, acc[2*r+l])
		}
	}
}

// x8Unsigned is element e of row r in the packed block w, made unsigned
// as the kernels take it (Q4_0: the nibble as stored; Q8_0: q+128).
func x8Unsigned(dt DType, w []byte, r, e int) byte {
	if dt == Q4_0 {
		// Byte j of the row holds elements j (low nibble) and j+16 (high);
		// bytes 0–7 are at 16+8r, bytes 8–15 at 80+8r.
		j := e % 16
		q := w[16+64*(j/8)+8*r+j%8]
		if e >= 16 {
			return q >> 4
		}
		return q & 0x0f
	}
	return w[16+64*(e/8)+8*r+e%8] ^ 0x80
}

// fma32 is a·b+c rounded once to float32 (to nearest, ties to even), as a
// fused multiply-add instruction computes it; Go has no float32 FMA, and
// the compiler fuses a*b+c only on some architectures. a·b is exact in
// float64; the sum is rounded to float64 "to odd" (its error, by TwoSum,
// decides the last bit), which float64's 29 extra bits make safe to round
// again to float32.
func fma32(a, b, c float32) float32 {
	p := float64(float64(a) * float64(b)) // exact; the conversion forbids fusing with the add
	z := float64(c)
	s := float64(p + z)
	if math.IsInf(s, 0) || math.IsNaN(s) {
		return float32(s)
	}
	// TwoSum: s + e = p + z exactly.
	bv := float64(s - p)
	e := float64(float64(p-float64(s-bv)) + float64(z-bv))
	if e != 0 && math.Float64bits(s)&1 == 0 {
		// Inexact with an even last bit: step to the neighbour towards
		// the exact sum, which has an odd one.
		bits := math.Float64bits(s)
		if (e > 0) == (s > 0) {
			bits++
		} else {
			bits--
		}
		s = math.Float64frombits(bits)
	}
	return float32(s)
}
