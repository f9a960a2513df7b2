package kernels

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"

	"github.com/phalanx-llm/phalanx/engine/mmapfile"
)

// Q4_0 and Q8_0 weights interleaved eight rows at a time ("x8").
//
// A decode step reads every weight once, and with 18- or 34-byte blocks the
// row-at-a-time dot spends most of its instructions per row on work that
// does not depend on the row (loading and expanding the activations) or that
// could be shared (converting one fp16 scale). Kernel sets with assembly
// for it (kernelSet.x8: avx512 with VNNI, avx2) therefore keep a second
// copy of a Q4_0 or Q8_0 matrix in which each group of eight rows is
// stored block by block:
//
//	Q4_0, per group of 8 rows, per block b (144 bytes):
//	  16 bytes   the 8 rows' fp16 scales, row 0 first
//	  64 bytes   row r's quant bytes 0–7 at 8r (low nibbles elements 0–7,
//	             high nibbles 16–23)
//	  64 bytes   row r's quant bytes 8–15 at 8r (elements 8–15, 24–31)
//	Q8_0, per group of 8 rows, per block b (272 bytes):
//	  16 bytes   the 8 rows' fp16 scales
//	  4×64 bytes row r's quants 8k … 8k+7 at 64k + 8r, k = 0…3
//
// so one 64-byte load holds eight rows' quants and one conversion their
// eight scales. Rows past the last whole group stay in the plain layout.
//
// The kernels work on 16 lanes, two per row: lane 2r holds row r's products
// with elements {0–3, 8–11, 16–19, 24–27} of each block, lane 2r+1 the
// others. VPDPBUSD multiplies unsigned weights (Q4_0: the nibbles q; Q8_0:
// q+128) by signed activations, so the activations are prepared once per
// product (x8Prep): per block 64 bytes — its 32 int8 quants, −8·Σ and
// −128·Σ of the quants of each lane's elements (as two int32 each), and its
// scale widened to float32. The AVX2 set reads the same fields in a wide
// form (x8PrepWide, kernelSet.prepX8). Per block and lane the integer sum is exact; it
// is converted to float32 and added by FMA, times d_w·d_x, into the lane's
// accumulator; at the end the row's two lanes are added. The decode kernel
// (one token) and the prefill tile (four tokens) do exactly this for every
// (row, token), so they agree bit for bit.
const (
	x8Rows      = 8
	x8PrepBytes = 64
	x8Tokens    = 4 // tokens per prefill tile
)

// x8BlockBytes is the size of one packed block of eight rows.
func x8BlockBytes(dt DType) int { return x8Rows * dt.BlockBytes() }

// The kernels for the packed layouts are quantKernels.x8Gemv and x8Tile.
// A gemv sets out[r] to row r of the group w (blocks packed blocks) times
// the prepared activations p; a tile does the same for x8Tokens tokens
// whose prepared rows are pstride bytes apart: out[t*8+r]. x8_generic.go
// holds the reference.

// x8Gemv and x8Tile check the operands of the packed kernels for dt that
// read prepared activations of pb bytes per block (x8PrepBytes, or
// x8WideBytes for the AVX2 kernels).
func x8Gemv(dt DType, pb int, kernel func(out *[8]float32, w, p []byte, blocks int)) func(out *[8]float32, w, p []byte, blocks int) {
	bb := x8BlockBytes(dt)
	return func(out *[8]float32, w, p []byte, blocks int) {
		if blocks < 0 || len(w) < blocks*bb || len(p) < blocks*pb {
			panic("kernels: x8 gemv: short operands")
		}
		kernel(out, w, p, blocks)
	}
}

// x8Tile2 checks the operands of a two-group tile (x8Tile2 in
// quantKernels).
func x8Tile2(dt DType, pb int, kernel func(out *[64]float32, w, p []byte, blocks, pstride int)) func(out *[64]float32, w, p []byte, blocks, pstride int) {
	bb := x8BlockBytes(dt)
	return func(out *[64]float32, w, p []byte, blocks, pstride int) {
		if blocks < 0 || pstride < blocks*pb || len(w) < 2*blocks*bb ||
			len(p) < (x8Tokens-1)*pstride+blocks*pb {
			panic("kernels: x8 tile2: short operands")
		}
		kernel(out, w, p, blocks, pstride)
	}
}

func x8Tile(dt DType, pb int, kernel func(out *[32]float32, w, p []byte, blocks, pstride int)) func(out *[32]float32, w, p []byte, blocks, pstride int) {
	bb := x8BlockBytes(dt)
	return func(out *[32]float32, w, p []byte, blocks, pstride int) {
		if blocks < 0 || pstride < blocks*pb || len(w) < blocks*bb ||
			len(p) < (x8Tokens-1)*pstride+blocks*pb {
			panic("kernels: x8 tile: short operands")
		}
		kernel(out, w, p, blocks, pstride)
	}
}

// Repacked returns m with a second copy of its data in the layout the
// kernels in use read fastest, or m itself when there is none (the layouts
// exist for Q4_0 and Q8_0, on kernel sets whose products read them:
// kernelSet.x8, and for Q4_K, Q5_K and Q6_K: kernelSet.kx8, kx8.go). The copy is made once, at load time; m.Data stays valid
// and is what Row and the other sets read. A float matrix is copied to
// aligned, large-page memory instead, and m.Data is then that copy (see
// wantsCopy).
func (m Matrix) Repacked() Matrix {
	if m.x8mem == nil && m.wantsCopy() {
		return m.alignedCopy()
	}
	kq := active.kquant(m.DType) != nil
	if m.x8 != nil || !(active.x8 && active.quant(m.DType) != nil || active.kx8 && kq) || m.Rows < x8Rows || m.Check() != nil {
		return m
	}
	groups := m.Rows / x8Rows
	gb := (m.Cols / QK) * x8BlockBytes(m.DType)
	pack := packQ8_0x8
	switch {
	case m.DType == Q4_0:
		pack = packQ4_0x8
	case kq:
		gb = (m.Cols / QKK) * kx8BlockBytes(m.DType)
		pack = func(out, data []byte, rows, cols int) { packKx8(m.DType, out, data, rows, cols) }
	}
	mmapfile.Populate(m.Data)
	m.x8mem = allocOffHeap(groups * gb)
	m.x8 = m.x8mem.b
	// Pack slices of groups on every core: loading (and re-planning, which
	// loads layers while requests wait) is bound by this copy.
	rb := m.DType.RowBytes(m.Cols)
	parts := min(runtime.GOMAXPROCS(0), groups)
	var wg sync.WaitGroup
	for i := 0; i < parts; i++ {
		lo, hi := groups*i/parts, groups*(i+1)/parts
		wg.Go(func() {
			pack(m.x8[lo*gb:hi*gb], m.Data[lo*x8Rows*rb:hi*x8Rows*rb], (hi-lo)*x8Rows, m.Cols)
		})
	}
	wg.Wait()
	return m
}

// wantsCopy reports whether m is a float matrix that a set with vector
// kernels reads from a copy in large-page memory (alignedCopy) rather than
// in place. Safetensors files align their data to 8 bytes only (the
// header's length decides the rest): a full-size F16 Phi-2 whose tensors
// started 48 bytes past a cache line decoded at 3.5–3.9 tok/s on an
// AVX-512 machine, the same bytes aligned at 7.5–7.9. Aligned data is
// copied too: a mapped file's page cache has 4 KB pages, a TLB miss every
// 4 KB of a stream, and an aligned F16 GGUF decoded at 8.7–9.0 tok/s read
// in place against 9.7–10.6 from the copy (docs/kernels.md).
func (m Matrix) wantsCopy() bool {
	return !m.DType.Quantized() && len(m.Data) > 0 && active.name != genericKernels.name
}

// alignedCopy is m with its data copied to aligned, large-page memory
// outside the Go heap (held as the repacked copies are: Free releases it,
// and m.Data with it). The copy is split over the cores, as packing is.
func (m Matrix) alignedCopy() Matrix {
	mmapfile.Populate(m.Data)
	mem := allocOffHeap(len(m.Data))
	parts := min(runtime.GOMAXPROCS(0), max(1, len(m.Data)>>20))
	var wg sync.WaitGroup
	for i := 0; i < parts; i++ {
		lo, hi := len(m.Data)*i/parts, len(m.Data)*(i+1)/parts
		wg.Go(func() { copy(mem.b[lo:hi], m.Data[lo:hi]) })
	}
	wg.Wait()
	m.Data, m.x8mem = mem.b, mem
	return m
}

// Free releases m's repacked copy now rather than when m is garbage; m
// and every copy of it must not be used for products afterwards (Row and
// the plain data stay valid).
func (m *Matrix) Free() {
	if m.x8 == nil && m.x8mem != nil { // an aligned copy: it was the data
		m.Data = nil
	}
	m.x8mem.free()
	m.x8, m.x8mem = nil, nil
}

// IsRepacked reports whether the kernels read a copy of m made at load
// (see Repacked: interleaved, or a float matrix moved to aligned memory),
// so that the pages m was loaded from need not stay resident.
func (m Matrix) IsRepacked() bool { return m.x8mem != nil }

// packQ4_0x8 interleaves the whole groups of eight rows of a Q4_0 matrix
// into out.
func packQ4_0x8(out, data []byte, rows, cols int) {
	blocks := cols / QK
	rb := blocks * 18
	groups := rows / x8Rows
	bb := x8BlockBytes(Q4_0)
	out = out[:groups*blocks*bb]
	for g := 0; g < groups; g++ {
		for b := 0; b < blocks; b++ {
			dst := out[(g*blocks+b)*bb:][:bb]
			for r := 0; r < x8Rows; r++ {
				src := data[(g*x8Rows+r)*rb+b*18:][:18]
				dst[2*r], dst[2*r+1] = src[0], src[1]
				copy(dst[16+8*r:24+8*r], src[2:10])
				copy(dst[80+8*r:88+8*r], src[10:18])
			}
		}
	}
}

// packQ8_0x8 interleaves the whole groups of eight rows of a Q8_0 matrix
// into out.
func packQ8_0x8(out, data []byte, rows, cols int) {
	blocks := cols / QK
	rb := blocks * 34
	groups := rows / x8Rows
	bb := x8BlockBytes(Q8_0)
	out = out[:groups*blocks*bb]
	for g := 0; g < groups; g++ {
		for b := 0; b < blocks; b++ {
			dst := out[(g*blocks+b)*bb:][:bb]
			for r := 0; r < x8Rows; r++ {
				src := data[(g*x8Rows+r)*rb+b*34:][:34]
				dst[2*r], dst[2*r+1] = src[0], src[1]
				for k := 0; k < 4; k++ {
					copy(dst[16+64*k+8*r:][:8], src[2+8*k:][:8])
				}
			}
		}
	}
}

// x8Prep writes the prepared form of the Q8_0 activation row x into dst
// (len(x)/34 blocks of x8PrepBytes).
func x8Prep(dst, x []byte) {
	for b := 0; b < len(x)/34; b++ {
		blk := x[b*34:][:34]
		o := dst[b*x8PrepBytes:][:x8PrepBytes]
		copy(o[:32], blk[2:34])
		even, odd := x8LaneSums(blk)
		binary.LittleEndian.PutUint32(o[32:], uint32(-8*even))
		binary.LittleEndian.PutUint32(o[36:], uint32(-8*odd))
		binary.LittleEndian.PutUint32(o[40:], uint32(-128*even))
		binary.LittleEndian.PutUint32(o[44:], uint32(-128*odd))
		d := f16Table[binary.LittleEndian.Uint16(blk[:2])]
		binary.LittleEndian.PutUint32(o[48:], math.Float32bits(d))
		clear(o[52:])
	}
}

// x8WideBytes is the size of a block of the wide prepared form the AVX2
// kernels read (x8PrepWide): each block's quants 8 at a time, every group
// of 8 repeated four times (4×32 bytes, one register load each rather than
// a broadcast per use), then x8Prep's −8·Σ pair repeated four times (32
// bytes) and the scale repeated eight times (32 bytes). The AVX2 Q8_0
// kernel needs no correction (it multiplies |w| by x·sign w).
const x8WideBytes = 192

// x8PrepWide writes the wide prepared form of the Q8_0 activation row x
// into dst (len(x)/34 blocks of x8WideBytes).
func x8PrepWide(dst, x []byte) {
	for b := 0; b < len(x)/34; b++ {
		blk := x[b*34:][:34]
		o := dst[b*x8WideBytes:][:x8WideBytes]
		for k := 0; k < 4; k++ {
			q := binary.LittleEndian.Uint64(blk[2+8*k:])
			binary.LittleEndian.PutUint64(o[32*k:], q)
			binary.LittleEndian.PutUint64(o[32*k+8:], q)
			binary.LittleEndian.PutUint64(o[32*k+16:], q)
			binary.LittleEndian.PutUint64(o[32*k+24:], q)
		}
		even, odd := x8LaneSums(blk)
		c := uint64(uint32(-8*even)) | uint64(uint32(-8*odd))<<32
		d := uint64(math.Float32bits(f16Table[binary.LittleEndian.Uint16(blk[:2])]))
		d |= d << 32
		for j := 0; j < 32; j += 8 {
			binary.LittleEndian.PutUint64(o[128+j:], c)
			binary.LittleEndian.PutUint64(o[160+j:], d)
		}
	}
}

// x8LaneSums returns the sums of a Q8_0 block's quants that go to the
// even lanes (elements 4g … 4g+3 for even g) and to the odd ones.
func x8LaneSums(blk []byte) (even, odd int32) {
	q := blk[2:34]
	for g := 0; g < 8; g += 2 {
		even += int32(int8(q[4*g])) + int32(int8(q[4*g+1])) + int32(int8(q[4*g+2])) + int32(int8(q[4*g+3]))
		odd += int32(int8(q[4*g+4])) + int32(int8(q[4*g+5])) + int32(int8(q[4*g+6])) + int32(int8(q[4*g+7]))
	}
	return even, odd
}

// planX8 is planQ for a repacked matrix with k's kernels q; xq holds the
// tokens' Q8_0 activation rows.
func (m Matrix) planX8(p *Pool, k *kernelSet, q *quantKernels, y []float32, xq []byte, bias []float32, tokens int, act *activations) (int, func(worker, c int)) {
	cols := m.Cols
	blocks := cols / QK
	xrb := Q8_0.RowBytes(cols)
	pstride := blocks * k.prepX8Bytes
	gb := blocks * x8BlockBytes(m.DType)
	var prep []byte
	if m.DType.BlockSize() == QKK { // K-quants read the Q8_K rows as they are
		blocks = cols / QKK
		xrb = blocks * q8KBytes
		pstride, prep, gb = xrb, xq, blocks*kx8BlockBytes(m.DType)
	} else {
		if act.x8 == nil {
			act.x8 = make([]byte, tokens*pstride)
			p.Run(tokens, func(_, t int) {
				k.prepX8(act.x8[t*pstride:(t+1)*pstride], xq[t*xrb:(t+1)*xrb])
			})
		}
		prep = act.x8
	}
	groups := m.Rows / x8Rows
	perChunk := max(1, rowsPerChunk(m.Rows, p.Threads())/x8Rows)
	chunks := (groups + perChunk - 1) / perChunk
	rest := m.Rows - groups*x8Rows
	store := func(t, r int, v float32) {
		if bias != nil {
			v += bias[r]
		}
		y[t*m.Rows+r] = v
	}
	gemv, tile, dot := q.x8Gemv, q.x8Tile, q.dot
	// two, where the set has one, computes twoK tokens of two groups at
	// once (w2 both groups): group A's token k at o[8k:], B's at
	// o[8(twoK+k):].
	var two func(o *[64]float32, w2, p []byte)
	twoK := 0
	switch {
	case q.kx8Pair != nil:
		twoK, two = 2, func(o *[64]float32, w2, p []byte) { q.kx8Pair((*[32]float32)(o[:32]), w2, p, blocks, pstride) }
	case q.x8Tile2 != nil:
		twoK, two = x8Tokens, func(o *[64]float32, w2, p []byte) { q.x8Tile2(o, w2, p, blocks, pstride) }
	}
	return chunks + min(rest, 1), func(_, c int) {
		if c == chunks { // rows past the last group: the plain dot
			for r := groups * x8Rows; r < m.Rows; r++ {
				for t := 0; t < tokens; t++ {
					store(t, r, dot(m.rowData(r), xq[t*xrb:(t+1)*xrb]))
				}
			}
			return
		}
		var o8 [8]float32
		var o32 [32]float32
		var o64 [64]float32
		// put stores a token's eight results of the group at row r0.
		put := func(t, r0 int, o []float32) {
			dst := y[t*m.Rows+r0:][:x8Rows]
			if bias == nil {
				copy(dst, o[:x8Rows])
				return
			}
			b := bias[r0:][:x8Rows]
			for i := range dst {
				dst[i] = o[i] + b[i]
			}
		}
		end := min((c+1)*perChunk, groups)
		for g := c * perChunk; g < end; g++ {
			w := m.x8[g*gb : (g+1)*gb]
			r0 := g * x8Rows
			t := 0
			if two != nil && g+1 < end && tokens >= twoK {
				// Two groups a call: each token's activations are
				// loaded (or spread) once for sixteen rows.
				w2 := m.x8[g*gb : (g+2)*gb]
				for ; t+twoK <= tokens; t += twoK {
					two(&o64, w2, prep[t*pstride:])
					for k := 0; k < twoK; k++ {
						put(t+k, r0, o64[k*x8Rows:])
						put(t+k, r0+x8Rows, o64[(twoK+k)*x8Rows:])
					}
				}
				for ; t < tokens; t++ {
					gemv(&o8, w, prep[t*pstride:(t+1)*pstride], blocks)
					put(t, r0, o8[:])
					gemv(&o8, w2[gb:], prep[t*pstride:(t+1)*pstride], blocks)
					put(t, r0+x8Rows, o8[:])
				}
				g++
				continue
			}
			for ; t+x8Tokens <= tokens; t += x8Tokens {
				tile(&o32, w, prep[t*pstride:], blocks, pstride)
				for k := 0; k < x8Tokens; k++ {
					put(t+k, r0, o32[k*x8Rows:])
				}
			}
			for ; t < tokens; t++ {
				gemv(&o8, w, prep[t*pstride:(t+1)*pstride], blocks)
				put(t, r0, o8[:])
			}
		}
	}
}
