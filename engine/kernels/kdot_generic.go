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
func dotQ4KGeneric(w, x []byte) float32 {
	var acc float32
	for b := 0; b < len(w)/144; b++ {
		blk, xb := w[b*144:(b+1)*144], x[b*q8KBytes:(b+1)*q8KBytes]
		scales, qs, xq := blk[4:16], blk[16:144], xb[q8KQuants:]
		var sumi, summ int32
		for j := 0; j < 8; j++ { // sub-block j: values 32j…32j+31
			sc, m := scaleMinK4(j, scales)
			q := qs[32*(j/2) : 32*(j/2)+32] // low nibbles for even j, high for odd
			var s int32
			for l, v := range q {
				if j%2 == 1 {
					v >>= 4
				}
				s += int32(v&0x0f) * int32(int8(xq[32*j+l]))
			}
			sumi += int32(sc) * s
			summ += int32(m) * (q8KSum(xb, 2*j) + q8KSum(xb, 2*j+1))
		}
		acc = kStep4(acc, F16ToF32(binary.LittleEndian.Uint16(blk[0:])), F16ToF32(binary.LittleEndian.Uint16(blk[2:])),
			q8KScale(xb), sumi, summ)
	}
	return acc
}

// dotQ5KGeneric is a row of Q5_K weights times a row of Q8_K activations.
func dotQ5KGeneric(w, x []byte) float32 {
	var acc float32
	for b := 0; b < len(w)/176; b++ {
		blk, xb := w[b*176:(b+1)*176], x[b*q8KBytes:(b+1)*q8KBytes]
		scales, qh, qs, xq := blk[4:16], blk[16:48], blk[48:176], xb[q8KQuants:]
		var sumi, summ int32
		for j := 0; j < 8; j++ {
			sc, m := scaleMinK4(j, scales)
			q := qs[32*(j/2) : 32*(j/2)+32]
			var s int32
			for l, v := range q {
				if j%2 == 1 {
					v >>= 4
				}
				v = v&0x0f | (qh[l]>>j&1)<<4 // bit j of qh[l] is the fifth bit
				s += int32(v) * int32(int8(xq[32*j+l]))
			}
			sumi += int32(sc) * s
			summ += int32(m) * (q8KSum(xb, 2*j) + q8KSum(xb, 2*j+1))
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
			for l := 0; l < 32; l++ {
				q := [4]byte{
					ql[l]&0x0f | (qh[l]&3)<<4,
					ql[l+32]&0x0f | (qh[l]>>2&3)<<4,
					ql[l]>>4 | (qh[l]>>4&3)<<4,
					ql[l+32]>>4 | (qh[l]>>6&3)<<4,
				}
				for k, v := range q { // value 128h + 32k + l, block sum 8h + 2k + l/16
					sumi += int32(int8(sc[2*k+l/16])) * int32(v) * int32(int8(xq[128*h+32*k+l]))
				}
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
