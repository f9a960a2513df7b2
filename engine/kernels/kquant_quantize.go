package kernels

import (
	"encoding/binary"
	"math"
)

// K-quant quantization: the inverse of dequantizeK, writing ggml's Q4_K,
// Q5_K and Q6_K super-blocks of 256 values.
//
// Q4_K and Q5_K store each 32-value sub-block as x ≈ s·q − m with q in
// [0, 15] or [0, 31], s ≥ 0 and m ≥ 0; s and m are 6-bit multiples of two
// fp16 super-block factors (d, dmin). Q6_K stores each 16-value sub-block as
// x ≈ s·(q − 32), q in [0, 63], s an int8 multiple of one fp16 factor d.
//
// The search, per sub-block, tries a few dozen scales around the one that
// spans the data's range, rounds every value for each, and for each rounding
// solves the weighted least-squares problem for the scale (and offset) in
// closed form, keeping the candidate of least weighted squared error. The
// weights, rms + |x|, favour large values a little, since in a matrix-vector
// product their error weighs more. The sub-block scales are then quantized
// to the super-block's 6- or 8-bit grid and every value is rounded again
// against the scale it will actually be multiplied by.
//
// Non-finite inputs do not occur in model weights; they are made finite
// (NaN as 0, ±Inf as ±MaxFloat32) and values beyond what an fp16 factor can
// reach saturate, so the output always dequantizes to finite numbers.

// f16Max is the largest finite fp16 value.
const f16Max = 65504

// QuantizeQ4_K stores x (a multiple of 256 values) in dst as Q4_K
// super-blocks.
func QuantizeQ4_K(dst []byte, x []float32) { quantizeKRow(Q4_K, dst, x) }

// QuantizeQ5_K stores x (a multiple of 256 values) in dst as Q5_K
// super-blocks.
func QuantizeQ5_K(dst []byte, x []float32) { quantizeKRow(Q5_K, dst, x) }

// QuantizeQ6_K stores x (a multiple of 256 values) in dst as Q6_K
// super-blocks.
func QuantizeQ6_K(dst []byte, x []float32) { quantizeKRow(Q6_K, dst, x) }

func quantizeKRow(d DType, dst []byte, x []float32) {
	if len(x)%QKK != 0 {
		panic("kernels: K-quant row of " + itoa(len(x)) + " values is not whole super-blocks")
	}
	bb := d.BlockBytes()
	if len(dst) < len(x)/QKK*bb {
		panic("kernels: K-quant destination too short")
	}
	var blk [QKK]float32
	for b := 0; b < len(x)/QKK; b++ {
		for i, v := range x[b*QKK : (b+1)*QKK] {
			blk[i] = finite(v)
		}
		out := dst[b*bb : (b+1)*bb]
		switch d {
		case Q4_K:
			quantQ4K(&blk, out)
		case Q5_K:
			quantQ5K(&blk, out)
		case Q6_K:
			quantQ6K(&blk, out)
		}
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

func finite(v float32) float32 {
	switch {
	case v != v:
		return 0
	case v > math.MaxFloat32:
		return math.MaxFloat32
	case v < -math.MaxFloat32:
		return -math.MaxFloat32
	}
	return v
}

// f16Round returns v rounded to fp16 and its bits; v ≥ 0 is clamped to the
// largest finite fp16.
func f16Round(v float32) (float32, uint16) {
	h := F32ToF16(min(v, f16Max))
	return F16ToF32(h), h
}

// blockWeights fills w with rms + |x|, the per-value error weights.
func blockWeights(x, w []float32) {
	sum := 0.0
	for _, v := range x {
		sum += float64(v) * float64(v)
	}
	rms := float32(math.Sqrt(sum / float64(len(x))))
	for i, v := range x {
		w[i] = rms + float32(math.Abs(float64(v)))
	}
}

// fitAffine finds s ≥ 0 and m ≥ 0 with x ≈ s·q − m, q integers in
// [0, nmax], minimizing Σ w·(s·q − m − x)². It returns s, m.
func fitAffine(x, w []float32, nmax int) (float32, float32) {
	lo, hi := x[0], x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	// An offset can only lower values, so a block of positive values keeps
	// zero as its lowest representable value.
	lo = min(lo, 0)
	if hi-lo <= 0 || float64(hi)-float64(lo) < 1e-30 {
		return 0, -lo
	}
	// float64 throughout: the data may span the whole float32 range.
	rng := float64(hi) - float64(lo)
	bestErr := math.Inf(1)
	bestS, bestM := rng/float64(nmax), -float64(lo)
	var qa [32]float64
	q := qa[:len(x)]
	for step := -5; step <= 6; step++ {
		iscale := (float64(nmax) + 0.2*float64(step)) / rng
		if iscale <= 0 {
			continue
		}
		for i, v := range x {
			// Non-negative, so truncation after +0.5 rounds.
			q[i] = float64(int(math.Min(float64(nmax), (float64(v)-float64(lo))*iscale+0.5)))
		}
		a := sumsAffine(x, w, q)
		s, m := a.solve()
		if e := a.err(s, m); e < bestErr {
			bestErr, bestS, bestM = e, s, m
		}
	}
	// One refinement: round again against the best fit and re-solve.
	if bestS > 0 {
		for i, v := range x {
			q[i] = math.Max(0, math.Min(float64(nmax), math.Round((float64(v)+bestM)/bestS)))
		}
		a := sumsAffine(x, w, q)
		s, m := a.solve()
		if e := a.err(s, m); e < bestErr {
			bestS, bestM = s, m
		}
	}
	return float32(math.Min(bestS, math.MaxFloat32)), float32(math.Min(bestM, math.MaxFloat32))
}

// affineSums are the weighted moments that determine the least-squares fit
// x ≈ s·q − m and its error.
type affineSums struct{ w, q, qq, x, qx, xx float64 }

func sumsAffine(x, w []float32, q []float64) affineSums {
	var a affineSums
	for i, v := range x {
		wi, qi, xi := float64(w[i]), q[i], float64(v)
		a.w += wi
		a.q += wi * qi
		a.qq += wi * qi * qi
		a.x += wi * xi
		a.qx += wi * qi * xi
		a.xx += wi * xi * xi
	}
	return a
}

// solve is weighted least squares for x ≈ s·q − m given q, with the
// constraints s ≥ 0, m ≥ 0.
func (a affineSums) solve() (s, m float64) {
	det := a.w*a.qq - a.q*a.q
	if det > 0 {
		s = (a.w*a.qx - a.q*a.x) / det
		m = (a.q*a.qx - a.qq*a.x) / det // −(intercept)
	}
	if det <= 0 || m < 0 || s < 0 {
		// Offset clamped at zero: x ≈ s·q.
		m = 0
		if a.qq > 0 {
			s = math.Max(0, a.qx/a.qq)
		} else {
			s = 0
		}
		if s == 0 && a.w > 0 {
			// All q zero: the offset alone.
			m = math.Max(0, -a.x/a.w)
		}
	}
	return s, m
}

// err is Σ w·(s·q − m − x)² from the moments.
func (a affineSums) err(s, m float64) float64 {
	return a.xx + s*s*a.qq + m*m*a.w - 2*s*a.qx + 2*m*a.x - 2*s*m*a.q
}

// quantizeScales6 quantizes per-sub-block factors v (≥ 0) to 6 bits against
// one fp16 super-block factor, returning its bits and the 6-bit values.
func quantizeScales6(v []float32) (uint16, [8]uint8) {
	var out [8]uint8
	mx := float32(0)
	for _, s := range v {
		mx = max(mx, s)
	}
	d, bits := f16Round(mx / 63)
	if d <= 0 {
		return bits, out
	}
	for j, s := range v {
		out[j] = uint8(min(63, max(0, math.Round(float64(s/d)))))
	}
	return bits, out
}

// packScalesK4 is the inverse of scaleMinK4.
func packScalesK4(q []byte, sc, mn [8]uint8) {
	clear(q[:12])
	for j := 0; j < 4; j++ {
		q[j] = sc[j] | (sc[j+4]>>4)<<6
		q[j+4] = mn[j] | (mn[j+4]>>4)<<6
		q[j+8] = sc[j+4]&0x0f | (mn[j+4]&0x0f)<<4
	}
}

// affineK fits the eight 32-value sub-blocks of a Q4_K/Q5_K super-block and
// returns the header (d, dmin, packed scales) and the integers q.
func affineK(x *[QKK]float32, nmax int, head []byte, q *[QKK]uint8) {
	var w [QKK]float32
	blockWeights(x[:], w[:])
	var s, m [8]float32
	for j := 0; j < 8; j++ {
		s[j], m[j] = fitAffine(x[j*32:(j+1)*32], w[j*32:(j+1)*32], nmax)
	}
	dBits, sc := quantizeScales6(s[:])
	mBits, mn := quantizeScales6(m[:])
	binary.LittleEndian.PutUint16(head[0:], dBits)
	binary.LittleEndian.PutUint16(head[2:], mBits)
	packScalesK4(head[4:16], sc, mn)
	d, dmin := F16ToF32(dBits), F16ToF32(mBits)
	for j := 0; j < 8; j++ {
		ds, dm := float64(d)*float64(sc[j]), float64(dmin)*float64(mn[j])
		for i := j * 32; i < (j+1)*32; i++ {
			v := 0.0
			if ds > 0 {
				v = math.Round((float64(x[i]) + dm) / ds)
			}
			q[i] = uint8(max(0, min(float64(nmax), v)))
		}
	}
}

// Q4_K: d, dmin (f16), scales[12], qs[128]: byte 32·k + l holds sub-block
// 2k's value l in its low nibble and sub-block 2k+1's in its high nibble.
func quantQ4K(x *[QKK]float32, blk []byte) {
	var q [QKK]uint8
	affineK(x, 15, blk[:16], &q)
	qs := blk[16:144]
	for k := 0; k < 4; k++ {
		for l := 0; l < 32; l++ {
			qs[32*k+l] = q[64*k+l] | q[64*k+32+l]<<4
		}
	}
}

// Q5_K: as Q4_K for the low four bits (qs[128] after qh[32]); bit 2k of
// qh[l] is the fifth bit of sub-block 2k's value l, bit 2k+1 sub-block 2k+1's.
func quantQ5K(x *[QKK]float32, blk []byte) {
	var q [QKK]uint8
	affineK(x, 31, blk[:16], &q)
	qh := blk[16:48]
	qs := blk[48:176]
	clear(qh)
	for k := 0; k < 4; k++ {
		for l := 0; l < 32; l++ {
			a, b := q[64*k+l], q[64*k+32+l]
			qs[32*k+l] = a&0x0f | (b&0x0f)<<4
			qh[l] |= (a>>4)<<(2*k) | (b>>4)<<(2*k+1)
		}
	}
}

// fitSymmetric finds s with x ≈ s·q, q integers in [−32, 31], minimizing
// Σ w·(s·q − x)².
func fitSymmetric(x, w []float32) float32 {
	amax, vmax := 0.0, 0.0
	for _, v := range x {
		if a := math.Abs(float64(v)); a > amax {
			amax, vmax = a, float64(v)
		}
	}
	if amax < 1e-30 {
		return 0
	}
	bestErr, bestS := math.Inf(1), vmax/-32
	// The value of largest magnitude goes to −32, the end of the range with
	// one more step, or to +31; both signs of s are tried.
	for _, end := range []float64{-32, 31} {
		for step := -3; step <= 3; step++ {
			iscale := (end + 0.2*float64(step)*math.Copysign(1, end)) / vmax
			var sqx, sqq float64
			for i, v := range x {
				// Shifted to be non-negative, so truncation after +0.5 rounds.
				qi := float64(int(math.Max(0, math.Min(63, float64(v)*iscale+32.5)))) - 32
				sqx += float64(w[i]) * qi * float64(v)
				sqq += float64(w[i]) * qi * qi
			}
			if sqq == 0 {
				continue
			}
			// With the optimal s = sqx/sqq the error is Σw·x² − sqx²/sqq:
			// the best candidate has the largest sqx²/sqq.
			if e := -sqx * sqx / sqq; e < bestErr {
				bestErr, bestS = e, sqx/sqq
			}
		}
	}
	return float32(math.Max(-math.MaxFloat32, math.Min(math.MaxFloat32, bestS)))
}

// Q6_K: ql[128], qh[64], scales[16] (int8), d (f16). Each half of 128
// values uses 64 bytes of ql, 32 of qh and 8 scales: value l + 32·k of the
// half (k = 0…3) has its low nibble in ql[l + 32·(k&1)] (low nibble for
// k < 2, high for k ≥ 2) and its top two bits at bit 2k of qh[l].
func quantQ6K(x *[QKK]float32, blk []byte) {
	var w [QKK]float32
	blockWeights(x[:], w[:])
	var s [16]float32
	amax := float32(0)
	for j := 0; j < 16; j++ {
		s[j] = fitSymmetric(x[j*16:(j+1)*16], w[j*16:(j+1)*16])
		amax = max(amax, float32(math.Abs(float64(s[j]))))
	}
	d, bits := f16Round(amax / 127)
	var sc [16]int8
	if d > 0 {
		for j := range s {
			sc[j] = int8(max(-127, min(127, math.Round(float64(s[j]/d)))))
		}
	}
	var q [QKK]uint8
	for j := 0; j < 16; j++ {
		ds := float64(d) * float64(sc[j])
		for i := j * 16; i < (j+1)*16; i++ {
			v := 0.0
			if ds != 0 {
				v = math.Round(float64(x[i]) / ds)
			}
			q[i] = uint8(max(-32, min(31, v)) + 32)
		}
	}
	ql, qh := blk[0:128], blk[128:192]
	clear(qh)
	for h := 0; h < 2; h++ {
		for l := 0; l < 32; l++ {
			base := 128 * h
			q1, q2, q3, q4 := q[base+l], q[base+l+32], q[base+l+64], q[base+l+96]
			ql[64*h+l] = q1&0x0f | (q3&0x0f)<<4
			ql[64*h+l+32] = q2&0x0f | (q4&0x0f)<<4
			qh[32*h+l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
		}
	}
	for j := range sc {
		blk[192+j] = byte(sc[j])
	}
	binary.LittleEndian.PutUint16(blk[208:], bits)
}
