package kernels

import (
	"encoding/binary"
	"math"
)

// The generic K-quant dots (kdot.go has the rules they fix): exact integer
// sums per super-block, then kStep4 or kStep6.

// q8KSum is block sum g (16 values) of a Q8_K super-block.
func q8KSum(x []byte, g int) int32 {
	return int32(int16(binary.LittleEndian.Uint16(x[q8KSums+2*g:])))
}

func q8KScale(x []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(x)) }

// dotQ4KGeneric is a row of Q4_K weights times a row of Q8_K activations.
func dotQ4KGeneric(w, x []byte) float32 { return dotQ45KGeneric(w, x, false) }

// dotQ5KGeneric is a row of Q5_K weights times a row of Q8_K activations.
func dotQ5KGeneric(w, x []byte) float32 { return dotQ45KGeneric(w, x, true) }

// dotQ45KGeneric is dotQ4KGeneric (q5 false) or dotQ5KGeneric.
func dotQ45KGeneric(w, x []byte, q5 bool) float32 {
	bb, qsOff := 144, 16
	if q5 {
		bb, qsOff = 176, 48
	}
	var acc float32
	var qh []byte
	for b := 0; b < len(w)/bb; b++ {
		blk, xb := w[b*bb:(b+1)*bb], x[b*q8KBytes:(b+1)*q8KBytes]
		scales, qs, xq := blk[4:16], blk[qsOff:qsOff+128], xb[q8KQuants:q8KQuants+QKK]
		if q5 {
			qh = blk[16:48]
		}
		var sumi, summ int32
		for c := 0; c < 4; c++ { // values 64c…64c+63: sub-blocks 2c (low nibbles) and 2c+1 (high)
			q, xl, xh := qs[32*c:32*c+32], xq[64*c:64*c+32], xq[64*c+32:64*c+64]
			var sl, sh int32
			for l, v := range q {
				lo, hi := v&0x0f, v>>4
				if q5 { // bit j of qh[l] is sub-block j's fifth bit
					lo |= (qh[l] >> (2 * c) & 1) << 4
					hi |= (qh[l] >> (2*c + 1) & 1) << 4
				}
				sl += int32(lo) * int32(int8(xl[l]))
				sh += int32(hi) * int32(int8(xh[l]))
			}
			sc, m := scaleMinK4(2*c, scales)
			sumi += int32(sc) * sl
			summ += int32(m) * (q8KSum(xb, 4*c) + q8KSum(xb, 4*c+1))
			sc, m = scaleMinK4(2*c+1, scales)
			sumi += int32(sc) * sh
			summ += int32(m) * (q8KSum(xb, 4*c+2) + q8KSum(xb, 4*c+3))
		}
		acc = kStep4(acc, F16ToF32(binary.LittleEndian.Uint16(blk[0:])), F16ToF32(binary.LittleEndian.Uint16(blk[2:])),
			q8KScale(xb), sumi, summ)
	}
	return acc
}

// dotQ6KGeneric is a row of Q6_K weights times a row of Q8_K activations.
// The quants are taken unsigned (0…63) and 32 times the block sums
// subtracted, as the assembly does; the integer result is the same.
func dotQ6KGeneric(w, x []byte) float32 {
	var acc float32
	for b := 0; b < len(w)/210; b++ {
		blk, xb := w[b*210:(b+1)*210], x[b*q8KBytes:(b+1)*q8KBytes]
		xq := xb[q8KQuants:]
		var sumi int32
		for h := 0; h < 2; h++ { // halves of 128 values
			ql, qh, sc := blk[64*h:64*h+64], blk[128+32*h:128+32*h+32], blk[192+8*h:192+8*h+8]
			xh := xq[128*h : 128*h+128]
			for g := 0; g < 8; g++ { // block g of 16 values: 32k + 16i + l
				k, i := g/2, g%2
				var s int32
				for l := 16 * i; l < 16*i+16; l++ {
					var v byte
					switch k {
					case 0:
						v = ql[l]&0x0f | (qh[l]&3)<<4
					case 1:
						v = ql[l+32]&0x0f | (qh[l]>>2&3)<<4
					case 2:
						v = ql[l]>>4 | (qh[l]>>4&3)<<4
					case 3:
						v = ql[l+32]>>4 | (qh[l]>>6&3)<<4
					}
					s += int32(v) * int32(int8(xh[32*k+l]))
				}
				sumi += int32(int8(sc[g])) * s
			}
		}
		var corr int32
		for g := 0; g < 16; g++ {
			corr += int32(int8(blk[192+g])) * q8KSum(xb, g)
		}
		acc = kStep6(acc, F16ToF32(binary.LittleEndian.Uint16(blk[208:])), q8KScale(xb), sumi-32*corr)
	}
	return acc
}
