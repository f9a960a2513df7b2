package kernels

import (
	"encoding/binary"
	"math"
)

// EncodeRow stores the row x in dtype d: F32, F16 and BF16 rounded to
// nearest even, Q8_0 and Q4_0 as ggml's reference quantizers, Q4_K, Q5_K
// and Q6_K as QuantizeQ4_K and its siblings. dst holds d.RowBytes(len(x))
// bytes; a row that is not whole blocks of d, or another dtype, is a
// programming error and panics.
func EncodeRow(d DType, dst []byte, x []float32) {
	switch d {
	case F32:
		for i, v := range x {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range x {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(v))
		}
	case BF16:
		for i, v := range x {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(v))
		}
	case Q8_0:
		QuantizeQ8_0(dst, x)
	case Q4_0:
		QuantizeQ4_0(dst, x)
	case Q4_K, Q5_K, Q6_K:
		quantizeKRow(d, dst, x)
	default:
		panic("kernels: EncodeRow: no encoder for " + d.String())
	}
}
