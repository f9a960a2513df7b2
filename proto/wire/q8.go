package wire

import (
	"math"
)

// putQ8 quantizes src (whole blocks of Q8Block values) into dst, Q8BlockBytes
// per block: the scale d = max|x| / 127 as a binary16, then q = round(x / d)
// as int8, rounding half away from zero (ggml's reference Q8_0). A block
// of zeros gets d = 0 and q = 0. A block holding an infinity or NaN gets
// a NaN scale, so the damage shows instead of being clipped away.
func putQ8(dst []byte, src []float32) {
	var scale [1]float32
	var half [2]byte
	for b := 0; b < len(src)/Q8Block; b++ {
		x := src[b*Q8Block : (b+1)*Q8Block]
		out := dst[b*Q8BlockBytes : (b+1)*Q8BlockBytes]
		var amax float32
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		if math.IsNaN(float64(amax)) || math.IsInf(float64(amax), 0) {
			scale[0] = float32(math.NaN())
			putF16(half[:], scale[:])
			copy(out, half[:])
			clear(out[2:])
			continue
		}
		d := amax / 127
		scale[0] = d
		putF16(half[:], scale[:])
		copy(out, half[:])
		var inv float32
		if d != 0 {
			inv = 1 / d
		}
		for i, v := range x {
			out[2+i] = byte(int8(math.Round(float64(v * inv))))
		}
	}
}

// getQ8 dequantizes src (whole Q8 blocks) into dst: x = q·d, with d the
// block's binary16 scale widened.
func getQ8(dst []float32, src []byte) {
	var d [1]float32
	for b := 0; b < len(dst)/Q8Block; b++ {
		in := src[b*Q8BlockBytes : (b+1)*Q8BlockBytes]
		getF16(d[:], in[:2])
		out := dst[b*Q8Block : (b+1)*Q8Block]
		for i := range out {
			out[i] = float32(int8(in[2+i])) * d[0]
		}
	}
}
