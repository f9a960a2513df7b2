package wire

import (
	"encoding/binary"
	"math"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

const (
	f32Inf       = 0xff << 23
	f16Overflow  = (127 + 16) << 23 // smallest float32 magnitude that rounds to a half infinity
	f16MinNormal = (127 - 14) << 23 // smallest normal half, 2^-14
	// denormMagic is 0.5: adding it to a magnitude below 2^-14 leaves the
	// half's subnormal mantissa, rounded to nearest even by the float
	// addition itself, in the low bits.
	denormMagic = ((127 - 15) + (23 - 10) + 1) << 23
)

// f32ToF16Rare converts a float32 magnitude (sign bit clear) outside the
// range of normal halves: overflow, infinity, NaN, subnormal results, zero.
func f32ToF16Rare(b uint32) uint16 {
	switch {
	case b > f32Inf:
		return 0x7e00
	case b >= f16Overflow:
		return 0x7c00
	}
	return uint16(math.Float32bits(math.Float32frombits(b)+math.Float32frombits(denormMagic)) - denormMagic)
}

// putF16 writes src as little-endian IEEE halves; len(dst) == 2·len(src).
//
// Each value rounds to the nearest half, ties to even, with overflow to
// infinity and NaN kept (quiet) NaN: bit for bit what kernels.F32ToF16
// returns (the tests check it), but with the normal case written out here
// so the loop makes no call per element. This is Fabian Giesen's
// float_to_half_fast3_rtne (public domain).
func putF16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, f := range src {
		b := math.Float32bits(f)
		sign := uint16(b>>16) & 0x8000
		b &^= 0x80000000
		var h uint16
		if b-f16MinNormal < f16Overflow-f16MinNormal { // unsigned: a normal half
			odd := (b >> 13) & 1
			b -= (127 - 15) << 23 // rebias the exponent
			b += 0xfff + odd      // round to nearest even; a carry bumps the exponent
			h = uint16(b >> 13)
		} else {
			h = f32ToF16Rare(b)
		}
		binary.LittleEndian.PutUint16(dst[2*i:], sign|h)
	}
}

// getF16 widens little-endian IEEE halves through the kernels' lookup table;
// len(src) == 2·len(dst).
func getF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = kernels.F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}
