package kernels

import (
	"encoding/binary"
	"math"
)

// K-quant products. Q4_K, Q5_K and Q6_K weights are dotted with the
// activations in an 8-bit form, Q8_K (ours, after ggml's block_q8_K), made
// once per product: per 256 values
//
//	d (float32) | 256 int8 q | 16 int16 sums of q over each 16 values   292 bytes
//
// with d = max|x|/127 and q = round(x·127/max|x|) (ties away from zero),
// so |q| ≤ 127. A super-block's products are then exact integer sums: the
// quants times the activation quants per sub-block, times the sub-block's
// scale, added over the super-block (and, for Q4_K and Q5_K, the mins times
// the block sums likewise), all in int32 without overflow. Only what follows
// is float32, once per super-block and in this order, in every set:
//
//	Q4_K, Q5_K: d = d_w·d_x, dm = dmin_w·d_x,
//	            acc = acc + (d·float32(Σ sc·q·x) − dm·float32(Σ m·bsum))
//	Q6_K:       acc = acc + (d_w·d_x)·float32(Σ sc·(q−32)·x)
//
// each operation rounded to float32 (no fused multiply-add), the
// super-blocks in order from acc = +0. Since the integer parts are exact,
// every kernel that keeps this float sequence gives the generic kernels'
// bits, however it arranges the integer work; a row's result does not
// depend on the other rows or tokens of the product, so decode and prefill
// agree bit for bit.
const (
	q8KBytes    = 292 // one Q8_K super-block of activations
	q8KQuants   = 4   // offset of the 256 quants
	q8KSums     = 260 // offset of the 16 block sums
	kSubSumVals = 16  // values per block sum
)

// kTileToks is the shape of the K-quant tiles (quantKernels.tile, when not
// nil): one weight row times kTileToks activation rows, each pair with the
// dot's bits.
const kTileToks = 4

// kquant is k's kernels for Q4_K, Q5_K or Q6_K weights against Q8_K
// activations, nil for other types.
func (k *kernelSet) kquant(dt DType) *quantKernels {
	switch dt {
	case Q4_K:
		return &k.q4_K
	case Q5_K:
		return &k.q5_K
	case Q6_K:
		return &k.q6_K
	}
	return nil
}

// quantizeQ8K quantizes x (a multiple of 256 values) into dst (292 bytes per
// super-block). The scale's reciprocal is taken in float64, so that tiny
// (even subnormal) maxima quantize like others; the result is a function of
// x alone, the same in every set (for finite x).
func quantizeQ8K(dst []byte, x []float32) {
	for b := 0; b < len(x)/QKK; b++ {
		blk := x[b*QKK : (b+1)*QKK]
		out := dst[b*q8KBytes : (b+1)*q8KBytes]
		var amax float32
		for _, v := range blk {
			if a := math.Float32frombits(math.Float32bits(v) &^ (1 << 31)); a > amax { // NaN never is
				amax = a
			}
		}
		if amax == 0 {
			clear(out)
			continue
		}
		binary.LittleEndian.PutUint32(out, math.Float32bits(amax/127))
		// |x| ≤ max|x| makes |x·id| ≤ 127 (id is rounded, but x·id stays
		// far below 127.5), so no quant needs clamping.
		id := 127 / float64(amax)
		q := out[q8KQuants : q8KQuants+QKK]
		for g := 0; g < QKK/kSubSumVals; g++ {
			var s int32
			for l, v := range blk[g*kSubSumVals : (g+1)*kSubSumVals] {
				f := float64(v) * id
				r := int32(f) // toward zero; f − r is exact
				if d := f - float64(r); d >= 0.5 {
					r++
				} else if d <= -0.5 {
					r--
				}
				q[g*kSubSumVals+l] = byte(int8(r))
				s += r
			}
			binary.LittleEndian.PutUint16(out[q8KSums+2*g:], uint16(int16(s)))
		}
	}
}

// q8K is the Q8_K form of the activations (tokens rows of cols values),
// made on first use.
func (a *activations) q8K(p *Pool, k *kernelSet, x []float32, cols, tokens int) []byte {
	if a.xk == nil {
		blocks := cols / QKK
		xrb := blocks * q8KBytes
		a.xk = make([]byte, tokens*xrb)
		// A token's super-blocks are independent: split each row in as many
		// parts as threads, so that decode (one token) does not quantize on
		// one thread while the others wait.
		parts := min(p.Threads(), blocks)
		if tokens >= p.Threads() {
			parts = 1
		}
		p.Run(tokens*parts, func(_, c int) {
			t, i := c/parts, c%parts
			lo, hi := blocks*i/parts, blocks*(i+1)/parts
			k.quantQ8K(a.xk[t*xrb+lo*q8KBytes:t*xrb+hi*q8KBytes], x[t*cols+lo*QKK:t*cols+hi*QKK])
		})
	}
	return a.xk
}

// kStep4 is the float part of a Q4_K or Q5_K super-block: dw and dmw are
// the weights' scales, dx the activations', sumi Σ sc·q·x and summ Σ m·bsum.
// The conversions keep each operation rounded on its own (no fusing).
func kStep4(acc, dw, dmw, dx float32, sumi, summ int32) float32 {
	d, dm := float32(dw*dx), float32(dmw*dx)
	return acc + float32(float32(d*float32(sumi))-float32(dm*float32(summ)))
}

// kStep6 is the float part of a Q6_K super-block.
func kStep6(acc, dw, dx float32, sumi int32) float32 {
	return acc + float32(float32(dw*dx)*float32(sumi))
}
