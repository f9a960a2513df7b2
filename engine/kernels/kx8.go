package kernels

import "encoding/binary"

// K-quant weights interleaved eight rows at a time ("K x8"), for sets whose
// products read them (kernelSet.kx8: avx2 and avx512).
//
// The row-at-a-time K-quant dot spends most of its instructions on work
// that is per row but not per weight: spreading each sub-block's scale over
// a vector, multiplying every 16-bit product by it, and reducing the
// integer lanes to one sum per super-block. With eight rows side by side,
// one 32-bit lane per row, the activations are broadcast four bytes at a
// time, the 16-bit products of a sub-block are added in their lanes (they
// share the lane's scale), each sub-block is multiplied by its eight rows'
// scales once, and the float step of kdot.go runs on eight lanes at once.
// A group of eight rows is stored super-block by super-block, each the size
// of the eight plain super-blocks, and "dword-interleaved" below means: 4
// bytes of row 0, 4 of row 1, …, 4 of row 7, then the rows' next 4 bytes:
//
//	Q4_K (1152 bytes): 8 × d (fp16) | 8 × dmin | byte i of row r's 12 packed
//	                   scales at 32 + 8i + r | qs[128], dword-interleaved
//	Q5_K (1408 bytes): 8 × d | 8 × dmin | scales as Q4_K | qh[32] and
//	                   qs[128], dword-interleaved, in the order the kernel
//	                   first reads them (q5KChunk)
//	Q6_K (1680 bytes): 8 × d | the 16 int8 scales, scale g of row r at
//	                   16 + 8g + r | ql[128] and qh[64], dword-interleaved
//	                   and in the order the kernel reads them (q6KChunk)
//
// Each row's integer sums stay exact and its float steps are kdot.go's, in
// super-block order, so a row's value is the plain dot's bits (every set's,
// since they all give the generic bits). The generic kernels here take the
// rows back out of the layout and run the generic dot on them.
const kx8SIMD = 4 // bytes of one row per interleaved unit

// kx8BlockBytes is the size of one packed super-block of eight rows.
func kx8BlockBytes(dt DType) int { return x8Rows * dt.BlockBytes() }

// kx8Parts describes a type's packed super-block: where each plain field
// goes. A field is either transposed (byte i of row r at off + 8i + r) or
// dword-interleaved (bytes 4n…4n+3 of row r at off + 32n + 4r).
type kx8Field struct {
	src, n, dst int // offset and length in the plain block, offset in the packed one
	transposed  bool
	// chunk, when not nil, places the 32-byte chunks of a dword-interleaved
	// field (chunk n holds bytes 4n…4n+3 of every row) elsewhere than at
	// dst + 32n.
	chunk func(n int) int
}

// q5KChunk places Q5_K's qh and qs chunks in the order the kernel first
// reads them: qh chunk k and qs chunk k side by side at 128 + 64k for
// k = 0…7 (the first 64 values of each row, which need all of qh), then qs
// chunks 8…31 at 384 + 32n.
func q5KChunk(qs bool) func(n int) int {
	if qs {
		return func(n int) int {
			if n < 8 {
				return 128 + 64*n + 32
			}
			return 384 + 32*n
		}
	}
	return func(n int) int { return 128 + 64*n }
}

// q6KChunk places Q6_K's ql and qh chunks so that the kernel reads them in
// address order: for each half h and k = 0…7, 96 bytes at 144 + 96(8h+k)
// hold ql chunks 16h+k and 16h+8+k and qh chunk 8h+k (the quants of
// values 128h + 32j + 4k … +3, j = 0…3).
func q6KChunk(ql bool) func(n int) int {
	if ql {
		return func(n int) int { return 144 + 96*(8*(n/16)+n%8) + 32*(n%16/8) }
	}
	return func(n int) int { return 144 + 96*n + 64 }
}

func kx8Fields(dt DType) []kx8Field {
	switch dt {
	case Q4_K:
		return []kx8Field{{0, 2, 0, false, nil}, {2, 2, 16, false, nil}, {4, 12, 32, true, nil}, {16, 128, 128, false, nil}}
	case Q5_K:
		return []kx8Field{{0, 2, 0, false, nil}, {2, 2, 16, false, nil}, {4, 12, 32, true, nil}, {16, 32, 128, false, q5KChunk(false)}, {48, 128, 384, false, q5KChunk(true)}}
	case Q6_K:
		return []kx8Field{{208, 2, 0, false, nil}, {192, 16, 16, true, nil}, {0, 128, 144, false, q6KChunk(true)}, {128, 64, 144, false, q6KChunk(false)}}
	}
	return nil
}

// kx8Place is where byte i of field f of row r goes, relative to the
// packed super-block. Two-byte fields (the fp16 scales) are one unit per
// row: row r's at dst + 2r.
func kx8Place(f kx8Field, r, i int) int {
	switch {
	case f.n == 2:
		return f.dst + 2*r + i
	case f.transposed:
		return f.dst + 8*i + r
	case f.chunk != nil:
		return f.chunk(i/kx8SIMD) + kx8SIMD*r + i%kx8SIMD
	default:
		return f.dst + (i/kx8SIMD)*x8Rows*kx8SIMD + kx8SIMD*r + i%kx8SIMD
	}
}

// kx8Move is one unit of a packed super-block: n bytes (1, 2 or 4) of
// each row's plain super-block at src go to dst + n·r for row r (every
// field's rows are n bytes apart: kx8Place).
type kx8Move struct{ src, dst, n int }

// kx8Moves lists the moves of dt's packed super-block, built once per
// type: packing walks this list instead of the fields.
var kx8Moves = func() map[DType][]kx8Move {
	plans := map[DType][]kx8Move{}
	for _, dt := range []DType{Q4_K, Q5_K, Q6_K} {
		var mv []kx8Move
		for _, f := range kx8Fields(dt) {
			n := kx8SIMD
			switch {
			case f.n == 2:
				n = 2
			case f.transposed:
				n = 1
			}
			for i := 0; i < f.n; i += n {
				mv = append(mv, kx8Move{f.src + i, kx8Place(f, 0, i), n})
			}
		}
		plans[dt] = mv
	}
	return plans
}()

// packKx8 interleaves the whole groups of eight rows of a K-quant matrix
// (rows of cols values in data) into out. It is the load-time copy of
// every packed matrix, so its loops are arranged for speed: each move
// writes its eight rows' bytes side by side.
func packKx8(dt DType, out, data []byte, rows, cols int) {
	bb := dt.BlockBytes()
	blocks := cols / QKK
	rb := blocks * bb
	moves := kx8Moves[dt]
	var src [x8Rows][]byte
	for g := 0; g < rows/x8Rows; g++ {
		for b := 0; b < blocks; b++ {
			dst := out[(g*blocks+b)*x8Rows*bb:][:x8Rows*bb]
			for r := range src {
				src[r] = data[(g*x8Rows+r)*rb+b*bb:][:bb]
			}
			for _, m := range moves {
				d := dst[m.dst:][:x8Rows*m.n]
				switch m.n {
				case 4:
					for r, s := range src {
						binary.LittleEndian.PutUint32(d[4*r:], binary.LittleEndian.Uint32(s[m.src:]))
					}
				case 2:
					for r, s := range src {
						binary.LittleEndian.PutUint16(d[2*r:], binary.LittleEndian.Uint16(s[m.src:]))
					}
				default:
					for r, s := range src {
						d[r] = s[m.src]
					}
				}
			}
		}
	}
}

// unpackKx8Row writes row r of a packed group (blocks super-blocks) to dst
// in the plain layout.
func unpackKx8Row(dt DType, dst, w []byte, r, blocks int) {
	bb := dt.BlockBytes()
	fields := kx8Fields(dt)
	for b := 0; b < blocks; b++ {
		src, out := w[b*x8Rows*bb:][:x8Rows*bb], dst[b*bb:][:bb]
		for _, f := range fields {
			for i := 0; i < f.n; i++ {
				out[f.src+i] = src[kx8Place(f, r, i)]
			}
		}
	}
}

// kx8Gemv and kx8Tile check the operands of the packed K-quant kernels for
// dt: w is a group of blocks packed super-blocks, x one Q8_K row (gemv) or
// x8Tokens rows xstride bytes apart (tile).
func kx8Gemv(dt DType, kernel func(out *[8]float32, w, x []byte, blocks int)) func(out *[8]float32, w, x []byte, blocks int) {
	bb := kx8BlockBytes(dt)
	return func(out *[8]float32, w, x []byte, blocks int) {
		if blocks < 0 || len(w) < blocks*bb || len(x) < blocks*q8KBytes {
			panic("kernels: K x8 gemv: short operands")
		}
		kernel(out, w, x, blocks)
	}
}

func kx8Tile(dt DType, kernel func(out *[32]float32, w, x []byte, blocks, xstride int)) func(out *[32]float32, w, x []byte, blocks, xstride int) {
	bb := kx8BlockBytes(dt)
	return func(out *[32]float32, w, x []byte, blocks, xstride int) {
		if blocks < 0 || xstride < blocks*q8KBytes || len(w) < blocks*bb ||
			len(x) < (x8Tokens-1)*xstride+blocks*q8KBytes {
			panic("kernels: K x8 tile: short operands")
		}
		kernel(out, w, x, blocks, xstride)
	}
}

// kx8Pair checks the operands of a two-group, two-token K x8 kernel.
func kx8Pair(dt DType, kernel func(out *[32]float32, w, x []byte, blocks, xstride int)) func(out *[32]float32, w, x []byte, blocks, xstride int) {
	bb := kx8BlockBytes(dt)
	return func(out *[32]float32, w, x []byte, blocks, xstride int) {
		if blocks < 0 || xstride < blocks*q8KBytes || len(w) < 2*blocks*bb || len(x) < xstride+blocks*q8KBytes {
			panic("kernels: K x8 pair: short operands")
		}
		kernel(out, w, x, blocks, xstride)
	}
}

// kx8GemvGeneric is the reference for the packed layout: each row taken
// out and dotted by dot.
func kx8GemvGeneric(dt DType, dot func(w, x []byte) float32) func(out *[8]float32, w, x []byte, blocks int) {
	return func(out *[8]float32, w, x []byte, blocks int) {
		row := make([]byte, blocks*dt.BlockBytes())
		for r := range out {
			unpackKx8Row(dt, row, w, r, blocks)
			out[r] = dot(row, x[:blocks*q8KBytes])
		}
	}
}

// kx8TileFromGemv is a tile made of x8Tokens gemv calls.
func kx8TileFromGemv(gemv func(out *[8]float32, w, x []byte, blocks int)) func(out *[32]float32, w, x []byte, blocks, xstride int) {
	return func(out *[32]float32, w, x []byte, blocks, xstride int) {
		for t := 0; t < x8Tokens; t++ {
			gemv((*[8]float32)(out[8*t:]), w, x[t*xstride:], blocks)
		}
	}
}

// kquantGeneric is the generic kernels for the K-quant dt with dot.
func kquantGeneric(dt DType, dot func(w, x []byte) float32) quantKernels {
	gemv := kx8Gemv(dt, kx8GemvGeneric(dt, dot))
	return quantKernels{dot: dot, x8Gemv: gemv, x8Tile: kx8Tile(dt, kx8TileFromGemv(gemv))}
}
