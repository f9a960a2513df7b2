package kernels

import (
	"errors"
	"fmt"
	"math"
)

// DType is the storage type of a weight matrix.
type DType uint8

// Storage dtypes understood by the kernels.
const (
	F32 DType = iota + 1
	F16
	BF16
)

// ErrDType reports a dtype the kernels do not implement.
var ErrDType = errors.New("kernels: unsupported dtype")

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	}
	if n := d.quantName(); n != "" {
		return n
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// ParseDType reads a dtype name as written in safetensors headers and flags
// ("F32", "f16", "bf16", …).
func ParseDType(s string) (DType, error) {
	switch s {
	case "F32", "f32", "float32":
		return F32, nil
	case "F16", "f16", "float16":
		return F16, nil
	case "BF16", "bf16", "bfloat16":
		return BF16, nil
	case "Q8_0", "q8_0":
		return Q8_0, nil
	case "Q4_0", "q4_0":
		return Q4_0, nil
	case "Q4_K", "q4_k":
		return Q4_K, nil
	case "Q5_K", "q5_k":
		return Q5_K, nil
	case "Q6_K", "q6_k":
		return Q6_K, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrDType, s)
}

// f16Table maps every IEEE half-precision bit pattern to its float32 value;
// 256 KiB, built once, so widening a half is a single load.
var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = f16ToF32Slow(uint16(i))
	}
	return &t
}()

func f16ToF32Slow(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalize
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F16ToF32 widens an IEEE half-precision value.
func F16ToF32(h uint16) float32 { return f16Table[h] }

// BF16ToF32 widens a bfloat16 value.
func BF16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// F32ToF16 rounds to the nearest half-precision value, ties to even, with
// overflow to infinity and NaN kept NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		// subnormal half: shift the mantissa (with its implicit bit) right
		m := mant | 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := m >> shift
		rem := m & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, which is the right rounding
	}
	return sign | uint16(r)
}

// F32ToBF16 rounds to the nearest bfloat16, ties to even; NaN stays NaN.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// WidenF16 sets dst[i] to the float32 value of the half src[i] (exact);
// len(dst) ≥ len(src).
func WidenF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	if active.widenF16 != nil {
		active.widenF16(dst, src)
		return
	}
	for i, h := range src {
		dst[i] = f16Table[h]
	}
}

// NarrowF16 sets dst[i] to F32ToF16(src[i]), bit for bit (ties to even,
// overflow to infinity, NaN a quiet NaN), with the normal case written out
// so that the loop makes no call per value; len(dst) ≥ len(src). This is
// Fabian Giesen's float_to_half_fast3_rtne (public domain).
func NarrowF16(dst []uint16, src []float32) {
	const (
		f32Inf      = 0xff << 23
		f16Overflow = (127 + 16) << 23 // smallest float32 magnitude that rounds to a half infinity
		minNormal   = (127 - 14) << 23 // smallest normal half, 2^-14
	)
	dst = dst[:len(src)]
	for i, f := range src {
		b := math.Float32bits(f)
		sign := uint16(b>>16) & 0x8000
		b &^= 0x80000000
		if b-minNormal < f16Overflow-minNormal { // unsigned: a normal half
			odd := (b >> 13) & 1
			b -= (127 - 15) << 23 // rebias the exponent
			b += 0xfff + odd      // round to nearest even; a carry bumps the exponent
			dst[i] = sign | uint16(b>>13)
			continue
		}
		dst[i] = sign | F32ToF16(math.Float32frombits(b))
	}
}
