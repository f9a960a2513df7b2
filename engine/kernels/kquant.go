package kernels

import "encoding/binary"

// dequantizeK widens a row of K-quant super-blocks, following ggml's
// dequantize_row_q4_K / q5_K / q6_K.
func dequantizeK(d DType, src []byte, dst []float32) {
	nb := len(dst) / QKK
	bb := d.BlockBytes()
	for b := 0; b < nb; b++ {
		blk := src[b*bb : (b+1)*bb]
		y := dst[b*QKK : (b+1)*QKK]
		switch d {
		case Q4_K:
			dequantQ4K(blk, y)
		case Q5_K:
			dequantQ5K(blk, y)
		case Q6_K:
			dequantQ6K(blk, y)
		}
	}
}

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j from the 12
// packed bytes of a Q4_K/Q5_K super-block.
func scaleMinK4(j int, q []byte) (sc, m byte) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return (q[j+4] & 0x0f) | ((q[j-4] >> 6) << 4), (q[j+4] >> 4) | ((q[j] >> 6) << 4)
}

// Q4_K: d (f16), dmin (f16), scales[12], qs[128].
func dequantQ4K(blk []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(blk[0:]))
	dmin := F16ToF32(binary.LittleEndian.Uint16(blk[2:]))
	scales := blk[4:16]
	q := blk[16:144]
	is := 0
	out := 0
	for j := 0; j < QKK; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := 0; l < 32; l++ {
			y[out+l] = d1*float32(q[l]&0x0f) - m1
		}
		for l := 0; l < 32; l++ {
			y[out+32+l] = d2*float32(q[l]>>4) - m2
		}
		q = q[32:]
		is += 2
		out += 64
	}
}

// Q5_K: d, dmin (f16), scales[12], qh[32], qs[128].
func dequantQ5K(blk []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(blk[0:]))
	dmin := F16ToF32(binary.LittleEndian.Uint16(blk[2:]))
	scales := blk[4:16]
	qh := blk[16:48]
	ql := blk[48:176]
	is := 0
	out := 0
	var u1, u2 byte = 1, 2
	for j := 0; j < QKK; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := 0; l < 32; l++ {
			h := byte(0)
			if qh[l]&u1 != 0 {
				h = 16
			}
			y[out+l] = d1*float32((ql[l]&0x0f)+h) - m1
		}
		for l := 0; l < 32; l++ {
			h := byte(0)
			if qh[l]&u2 != 0 {
				h = 16
			}
			y[out+32+l] = d2*float32((ql[l]>>4)+h) - m2
		}
		ql = ql[32:]
		is += 2
		out += 64
		u1 <<= 2
		u2 <<= 2
	}
}

// Q6_K: ql[128], qh[64], scales[16] (int8), d (f16).
func dequantQ6K(blk []byte, y []float32) {
	ql := blk[0:128]
	qh := blk[128:192]
	sc := blk[192:208]
	d := F16ToF32(binary.LittleEndian.Uint16(blk[208:]))
	out := 0
	for n := 0; n < QKK; n += 128 {
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int8((ql[l]&0x0f)|((qh[l]>>0)&3)<<4) - 32
			q2 := int8((ql[l+32]&0x0f)|((qh[l]>>2)&3)<<4) - 32
			q3 := int8((ql[l]>>4)|((qh[l]>>4)&3)<<4) - 32
			q4 := int8((ql[l+32]>>4)|((qh[l]>>6)&3)<<4) - 32
			y[out+l] = d * float32(int8(sc[is])) * float32(q1)
			y[out+l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			y[out+l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			y[out+l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
		ql = ql[64:]
		qh = qh[32:]
		sc = sc[8:]
		out += 128
	}
}
