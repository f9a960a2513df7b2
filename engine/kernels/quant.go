package kernels

import (
	"encoding/binary"
	"math"
)

// Block-quantized dtypes, in ggml's layouts (llama.cpp reads and writes
// them bit for bit):
//
//	Q8_0  32 values: fp16 scale d, 32 int8 q;            x = q·d            34 bytes
//	Q4_0  32 values: fp16 scale d, 16 bytes of nibbles;  x = (q−8)·d        18 bytes
//	      (low nibbles are elements 0–15, high nibbles 16–31)
//	Q4_K, Q5_K, Q6_K: 256-value super-blocks (see kquant.go)
//
// A product with quantized weights quantizes the activations to Q8_0 once
// per call and accumulates integer dot products per block, scaled by both
// blocks' scales, as llama.cpp's vec_dot kernels do.
const (
	Q8_0 DType = iota + 16
	Q4_0
	Q4_K
	Q5_K
	Q6_K
)

// QK is the block length of Q8_0 and Q4_0; QKK that of the K-quants.
const (
	QK  = 32
	QKK = 256
)

// BlockSize is the number of values per block (1 for float dtypes).
func (d DType) BlockSize() int {
	switch d {
	case Q8_0, Q4_0:
		return QK
	case Q4_K, Q5_K, Q6_K:
		return QKK
	}
	return 1
}

// BlockBytes is the size of one block (the element size for float dtypes).
func (d DType) BlockBytes() int {
	switch d {
	case Q8_0:
		return 34
	case Q4_0:
		return 18
	case Q4_K:
		return 144
	case Q5_K:
		return 176
	case Q6_K:
		return 210
	}
	return d.Size()
}

// Quantized reports whether d is block-quantized.
func (d DType) Quantized() bool { return d.BlockSize() > 1 }

// RowBytes is the size of a row of cols values, or -1 when cols is not a
// whole number of blocks.
func (d DType) RowBytes(cols int) int {
	bs := d.BlockSize()
	if cols%bs != 0 || d.BlockBytes() == 0 {
		return -1
	}
	return cols / bs * d.BlockBytes()
}

func (d DType) quantName() string {
	switch d {
	case Q8_0:
		return "Q8_0"
	case Q4_0:
		return "Q4_0"
	case Q4_K:
		return "Q4_K"
	case Q5_K:
		return "Q5_K"
	case Q6_K:
		return "Q6_K"
	}
	return ""
}

// QuantizeQ8_0 quantizes x (a multiple of 32 values) into dst (34 bytes per
// block), as ggml's quantize_row_q8_0: d = max|x|/127, q = round(x/d).
func QuantizeQ8_0(dst []byte, x []float32) {
	for b := 0; b < len(x)/QK; b++ {
		blk := x[b*QK : (b+1)*QK]
		out := dst[b*34 : (b+1)*34]
		var amax float32
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(out, F32ToF16(d))
		for j, v := range blk {
			out[2+j] = byte(int8(roundAway(v * id)))
		}
	}
}

// roundAway rounds to nearest, ties away from zero (C's roundf).
func roundAway(v float32) float32 { return float32(math.Round(float64(v))) }

// QuantizeQ4_0 quantizes x into dst (18 bytes per block), as ggml's
// quantize_row_q4_0_ref: d = m/−8 where m is the value of largest
// magnitude, q = min(15, trunc(x/d + 8.5)).
func QuantizeQ4_0(dst []byte, x []float32) {
	for b := 0; b < len(x)/QK; b++ {
		blk := x[b*QK : (b+1)*QK]
		out := dst[b*18 : (b+1)*18]
		var amax, mx float32
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, mx = a, v
			}
		}
		d := mx / -8
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(out, F32ToF16(d))
		for j := 0; j < QK/2; j++ {
			x0 := min(15, int(int8(blk[j]*id+8.5)))
			x1 := min(15, int(int8(blk[j+QK/2]*id+8.5)))
			out[2+j] = byte(x0) | byte(x1)<<4
		}
	}
}

// DequantizeRow widens one row of a quantized dtype (or a float dtype) into
// dst.
func DequantizeRow(d DType, src []byte, dst []float32) {
	switch d {
	case Q8_0:
		for b := 0; b < len(dst)/QK; b++ {
			blk := src[b*34:]
			s := F16ToF32(binary.LittleEndian.Uint16(blk))
			for j := 0; j < QK; j++ {
				dst[b*QK+j] = float32(int8(blk[2+j])) * s
			}
		}
	case Q4_0:
		for b := 0; b < len(dst)/QK; b++ {
			blk := src[b*18:]
			s := F16ToF32(binary.LittleEndian.Uint16(blk))
			for j := 0; j < QK/2; j++ {
				dst[b*QK+j] = float32(int(blk[2+j]&0x0f)-8) * s
				dst[b*QK+j+QK/2] = float32(int(blk[2+j]>>4)-8) * s
			}
		}
	case Q4_K, Q5_K, Q6_K:
		dequantizeK(d, src, dst)
	default:
		m := Matrix{DType: d, Rows: 1, Cols: len(dst), Data: src}
		m.Row(0, dst)
	}
}

// dotQ8_0Generic is Σ blocks d_w·d_x·Σ q_w·q_x over a row of Q8_0 weights
// and Q8_0 activations.
func dotQ8_0Generic(w, x []byte) float32 {
	var sum float32
	for b := 0; b+34 <= len(w); b += 34 {
		dw := F16ToF32(binary.LittleEndian.Uint16(w[b:]))
		dx := F16ToF32(binary.LittleEndian.Uint16(x[b:]))
		qw, qx := w[b+2:b+34], x[b+2:b+34]
		var s int32
		for j := 0; j < QK; j++ {
			s += int32(int8(qw[j])) * int32(int8(qx[j]))
		}
		sum += float32(s) * (dw * dx)
	}
	return sum
}

// dotQ4_0Generic is the same for Q4_0 weights and Q8_0 activations.
func dotQ4_0Generic(w, x []byte) float32 {
	var sum float32
	nb := len(w) / 18
	for b := 0; b < nb; b++ {
		wb, xb := w[b*18:], x[b*34:]
		dw := F16ToF32(binary.LittleEndian.Uint16(wb))
		dx := F16ToF32(binary.LittleEndian.Uint16(xb))
		var s int32
		for j := 0; j < QK/2; j++ {
			q := wb[2+j]
			s += int32(int(q&0x0f)-8) * int32(int8(xb[2+j]))
			s += int32(int(q>>4)-8) * int32(int8(xb[2+j+QK/2]))
		}
		sum += float32(s) * (dw * dx)
	}
	return sum
}
