package kernels

import (
	"encoding/binary"
	"math"
)

// Q4_0 weights interleaved eight rows at a time ("Q4_0x8").
//
// A decode step reads every weight once, and with 18-byte Q4_0 blocks the
// row-at-a-time dot spends most of its instructions per row on work that
// does not depend on the row (loading and expanding the activations) or that
// could be shared (converting one fp16 scale). Kernel sets that can (today:
// AVX-512 with VNNI) therefore keep a second copy of a Q4_0 matrix in which
// each group of eight rows is stored block by block:
//
//	per group of 8 rows, per block b (144 bytes):
//	  16 bytes   the 8 rows' fp16 scales, row 0 first
//	  64 bytes   row r's quant bytes 0–7 at 8r (low nibbles elements 0–7,
//	             high nibbles 16–23)
//	  64 bytes   row r's quant bytes 8–15 at 8r (elements 8–15, 24–31)
//
// so one 64-byte load holds eight rows' nibbles and one conversion their
// eight scales. Rows past the last whole group stay in the plain layout.
//
// The kernels work on 16 lanes, two per row: lane 2r holds row r's products
// with elements {0–3, 8–11, 16–19, 24–27} of each block, lane 2r+1 the
// others. The activations are prepared once per product (q4x8Prep): per
// block 48 bytes — its 32 int8 quants, −8·Σ of the quants of each lane's
// elements (the Q4_0 offset, as two int32), and its scale widened to float32.
// Per block and lane the integer sum is exact; it is converted to float32 and
// added by FMA, times d_w·d_x, into the lane's accumulator; at the end the
// row's two lanes are added. The decode kernel (one token) and the prefill
// tile (four tokens) do exactly this for every (row, token), so they agree
// bit for bit.
const (
	q4x8Rows       = 8
	q4x8BlockBytes = 8 * 18
	q4x8PrepBytes  = 48
	q4x8Tokens     = 4 // tokens per prefill tile
)

// Kernels for the packed layout, installed with their set; nil without.
var (
	// q4x8Gemv sets out[r] to row r of the group w (blocks packed blocks)
	// times the prepared activations p.
	q4x8Gemv func(out *[8]float32, w, p []byte, blocks int)
	// q4x8Tile does the same for q4x8Tokens tokens whose prepared rows are
	// pstride bytes apart: out[t*8+r].
	q4x8Tile func(out *[32]float32, w, p []byte, blocks, pstride int)
)

// Repacked returns m with a second copy of its data in the layout the
// installed kernels read fastest, or m itself when there is none (the
// layout exists for Q4_0 on kernel sets with q4x8 kernels). The copy is
// made once, at load time; m.Data stays valid and is what Row and the other
// sets read.
func (m Matrix) Repacked() Matrix {
	if m.q4x8 != nil || m.DType != Q4_0 || q4x8Gemv == nil || m.Rows < q4x8Rows || m.Check() != nil {
		return m
	}
	m.q4x8 = packQ4_0x8(m.Data, m.Rows, m.Cols)
	return m
}

// IsRepacked reports whether m carries a repacked copy (see Repacked).
func (m Matrix) IsRepacked() bool { return m.q4x8 != nil }

// packQ4_0x8 interleaves the whole groups of eight rows of a Q4_0 matrix.
func packQ4_0x8(data []byte, rows, cols int) []byte {
	blocks := cols / QK
	rb := blocks * 18
	groups := rows / q4x8Rows
	out := make([]byte, groups*blocks*q4x8BlockBytes)
	for g := 0; g < groups; g++ {
		for b := 0; b < blocks; b++ {
			dst := out[(g*blocks+b)*q4x8BlockBytes:][:q4x8BlockBytes]
			for r := 0; r < q4x8Rows; r++ {
				src := data[(g*q4x8Rows+r)*rb+b*18:][:18]
				dst[2*r], dst[2*r+1] = src[0], src[1]
				copy(dst[16+8*r:24+8*r], src[2:10])
				copy(dst[80+8*r:88+8*r], src[10:18])
			}
		}
	}
	return out
}

// q4x8Prep writes the prepared form of the Q8_0 activation row x into dst
// (len(x)/34 blocks of q4x8PrepBytes).
func q4x8Prep(dst, x []byte) {
	for b := 0; b < len(x)/34; b++ {
		blk := x[b*34:][:34]
		o := dst[b*q4x8PrepBytes:][:q4x8PrepBytes]
		copy(o[:32], blk[2:34])
		var even, odd int32
		for g := 0; g < 8; g++ { // elements 4g … 4g+3
			var s int32
			for _, q := range blk[2+4*g : 6+4*g] {
				s += int32(int8(q))
			}
			if g%2 == 0 {
				even += s
			} else {
				odd += s
			}
		}
		binary.LittleEndian.PutUint32(o[32:], uint32(-8*even))
		binary.LittleEndian.PutUint32(o[36:], uint32(-8*odd))
		d := f16Table[binary.LittleEndian.Uint16(blk[:2])]
		binary.LittleEndian.PutUint32(o[40:], math.Float32bits(d))
		binary.LittleEndian.PutUint32(o[44:], 0)
	}
}

// planQ4x8 is planQ for a repacked Q4_0 matrix; xq holds the tokens' Q8_0
// activation rows.
func (m Matrix) planQ4x8(p *Pool, y []float32, xq []byte, bias []float32, tokens int, act *activations) (int, func(worker, c int)) {
	cols := m.Cols
	blocks := cols / QK
	xrb := Q8_0.RowBytes(cols)
	pstride := blocks * q4x8PrepBytes
	if !act.ready.q4x8 {
		act.q4x8 = make([]byte, tokens*pstride)
		p.Run(tokens, func(_, t int) {
			q4x8Prep(act.q4x8[t*pstride:(t+1)*pstride], xq[t*xrb:(t+1)*xrb])
		})
		act.ready.q4x8 = true
	}
	prep := act.q4x8
	groups := m.Rows / q4x8Rows
	gb := blocks * q4x8BlockBytes
	perChunk := max(1, rowsPerChunk(m.Rows, p.Threads())/q4x8Rows)
	chunks := (groups + perChunk - 1) / perChunk
	rest := m.Rows - groups*q4x8Rows
	store := func(t, r int, v float32) {
		if bias != nil {
			v += bias[r]
		}
		y[t*m.Rows+r] = v
	}
	gemv, tile := q4x8Gemv, q4x8Tile
	return chunks + min(rest, 1), func(_, c int) {
		if c == chunks { // rows past the last group: the plain dot
			for r := groups * q4x8Rows; r < m.Rows; r++ {
				for t := 0; t < tokens; t++ {
					store(t, r, dotQ4_0(m.rowData(r), xq[t*xrb:(t+1)*xrb]))
				}
			}
			return
		}
		var o8 [8]float32
		var o32 [32]float32
		for g := c * perChunk; g < min((c+1)*perChunk, groups); g++ {
			w := m.q4x8[g*gb : (g+1)*gb]
			r0 := g * q4x8Rows
			t := 0
			if tile != nil {
				for ; t+q4x8Tokens <= tokens; t += q4x8Tokens {
					tile(&o32, w, prep[t*pstride:], blocks, pstride)
					for k, v := range o32 {
						store(t+k/8, r0+k%8, v)
					}
				}
			}
			for ; t < tokens; t++ {
				gemv(&o8, w, prep[t*pstride:(t+1)*pstride], blocks)
				for k, v := range o8 {
					store(t, r0+k, v)
				}
			}
		}
	}
}
