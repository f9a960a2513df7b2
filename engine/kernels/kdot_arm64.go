//go:build arm64 && !purego

package kernels

import "encoding/binary"

// The NEON K-quant dots: the assembly (kdot_arm64.s) takes a super-block's
// exact integer sums per sub-block (widening multiplies, like the Q4_0 and
// Q8_0 dots); the scales, mins and kdot.go's float32 step are done here, so
// the results are the generic dots' bits.

func dotQ4KNEON(w, x []byte) float32 { return dotQ45KNEON(w, x, false) }
func dotQ5KNEON(w, x []byte) float32 { return dotQ45KNEON(w, x, true) }

func dotQ45KNEON(w, x []byte, q5 bool) float32 {
	bb := 144
	if q5 {
		bb = 176
	}
	var acc float32
	var s [8]int32
	for b := 0; b < kBlocks(w, x, bb); b++ {
		blk, xb := w[b*bb:(b+1)*bb], x[b*q8KBytes:(b+1)*q8KBytes]
		if q5 {
			q5KSumsNEON(&s, &blk[16], &xb[q8KQuants])
		} else {
			q4KSumsNEON(&s, &blk[16], &xb[q8KQuants])
		}
		var sumi, summ int32
		for j := 0; j < 8; j++ {
			sc, m := scaleMinK4(j, blk[4:16])
			sumi += int32(sc) * s[j]
			summ += int32(m) * (q8KSum(xb, 2*j) + q8KSum(xb, 2*j+1))
		}
		acc = kStep4(acc, F16ToF32(binary.LittleEndian.Uint16(blk[0:])), F16ToF32(binary.LittleEndian.Uint16(blk[2:])),
			q8KScale(xb), sumi, summ)
	}
	return acc
}

func dotQ6KNEON(w, x []byte) float32 {
	var acc float32
	var s [16]int32
	for b := 0; b < kBlocks(w, x, 210); b++ {
		blk, xb := w[b*210:(b+1)*210], x[b*q8KBytes:(b+1)*q8KBytes]
		q6KSumsNEON(&s, &blk[0], &xb[q8KQuants])
		var sumi int32
		for g := 0; g < 16; g++ {
			sumi += int32(int8(blk[192+g])) * (s[g] - 32*q8KSum(xb, g))
		}
		acc = kStep6(acc, F16ToF32(binary.LittleEndian.Uint16(blk[208:])), q8KScale(xb), sumi)
	}
	return acc
}

// kBlocks is the number of whole super-blocks of bb bytes in w, checked
// against the activations' length, so the assembly never reads past either.
func kBlocks(w, x []byte, bb int) int {
	nb := len(w) / bb
	if len(x) < nb*q8KBytes {
		panic("kernels: K-quant dot: short activations")
	}
	return nb
}

// q4KSumsNEON sets s[j] = Σ q·x over sub-block j of the 128 bytes of Q4_K
// quants at q (nibbles as stored) and the 256 activation quants at x.
//
//go:noescape
func q4KSumsNEON(s *[8]int32, q, x *byte)

// q5KSumsNEON is q4KSumsNEON for Q5_K: h points at the 32 bytes of fifth
// bits, followed by the 128 bytes of nibbles.
//
//go:noescape
func q5KSumsNEON(s *[8]int32, h, x *byte)

// q6KSumsNEON sets s[g] = Σ q·x over the 16 values of block g, q the
// unsigned 6-bit quants of the Q6_K super-block at w (ql, then qh).
//
//go:noescape
func q6KSumsNEON(s *[16]int32, w, x *byte)
