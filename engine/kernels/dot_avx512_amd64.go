//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// The AVX-512 kernels need the foundation, byte/word (masked 16-bit loads,
// VPBROADCASTW) and vector-length (EVEX on ymm) extensions; x/sys/cpu
// reports AVX-512 only when the OS saves the ZMM and mask registers. The
// integer dots also need VNNI (VPDPBUSD); without it the set keeps the
// AVX2 integer dots and has no quantized tile.
var (
	hasAVX512     = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL
	hasAVX512VNNI = hasAVX512 && cpu.X86.HasAVX512VNNI
)

// avx512Set is the AVX-512 set: the generic set with the AVX-512 kernels
// in place (and the AVX2 integer dots without VNNI). Its GELU needs only
// AVX-512F (gelu_amd64.go).
func avx512Set() kernelSet {
	k := genericKernels
	k.name = "avx512"
	k.f32, k.f16, k.bf16 = dotF32AVX512, dotF16AVX512, dotBF16AVX512
	k.q8_0.dot, k.q4_0.dot = dotQ8_0AVX2, dotQ4_0AVX2
	k.q4_K.dot, k.q5_K.dot, k.q6_K.dot = dotQ4KAVX2, dotQ5KAVX2, dotQ6KAVX2
	// The K-quant matrices are packed by eight rows and multiplied by the
	// AVX2 K x8 kernels: on a Zen 5 core their decode streamed 27 GB/s of
	// a Q4_K_M file against 25 for the AVX-512 row dots, and their prefill
	// tiles ran 22 % faster than the AVX-512 row tiles (docs/kernels.md).
	useKX8AVX2(&k)
	k.tileRows, k.tileTokens, k.oneChain = 4, 6, true
	k.tileParts, k.tilePartsRest = dotF32Tile4x6PartsAVX512, dotF32TileRestPartsAVX512
	k.tilePartsH, k.tilePartsHRest = dotF16Tile4x6PartsAVX512, dotF16TileRestPartsAVX512
	// Batches of three passes or more in 512-column parts: on a Zen 5,
	// from memory, 2 threads, GFLOP/s, whole rows against parts: float32
	// rows, 8 tokens (three passes of the earlier 4×3 tiles) 130–141
	// against 148–158 on 10,240×2,560 and 2,560×10,240, 32 tokens 146–204
	// against 185–252; F16, 32 tokens (six passes of the 4×6 tiles) on
	// 2,560×10,240 226–242 against 277–284 (10,240×2,560: 286–298 either
	// way). Two passes stay whole: F16 at 12 tokens on 2,560×10,240 295
	// against 246–255. The AVX2 kernels on the same CPU lost 2–5 % with
	// parts at 8 tokens, so that set keeps whole rows.
	k.batchPart = 512
	k.f16Rows4, k.bf16Rows4, k.f32Rows4 = dotF16Rows4AVX512, dotBF16Rows4AVX512, dotF32Rows4AVX512
	k.widenF16 = widenF16AVX512
	k.axpy = axpyAVX512
	k.dotsF32, k.axpyRows = dotsF32AVX512Asm, axpyRowsAVX512Asm
	k.quantQ8_0 = quantizeQ8_0AVX512
	k.quantQ8K = quantizeQ8KAVX2
	k.gelu = geluAVX512
	k.expLanes = expLanesAVX512Asm
	k.div = divAVX512Asm
	k.max = maxAVX512Asm
	if hasAVX512VNNI {
		k.q8_0 = quantKernels{
			dot:     dotQ8_0AVX512,
			tile:    dotQ8_0Tile4x3AVX512,
			x8Gemv:  x8Gemv(Q8_0, x8PrepBytes, q8x8GemvAVX512Asm),
			x8Tile:  x8Tile(Q8_0, x8PrepBytes, q8x8TileAVX512Asm),
			x8Tile2: x8Tile2(Q8_0, x8PrepBytes, q8x8Tile2AVX512Asm),
		}
		k.q4_0 = quantKernels{
			dot:     dotQ4_0AVX512,
			tile:    dotQ4_0Tile4x3AVX512,
			x8Gemv:  x8Gemv(Q4_0, x8PrepBytes, q4x8GemvAVX512Asm),
			x8Tile:  x8Tile(Q4_0, x8PrepBytes, q4x8TileAVX512Asm),
			x8Tile2: x8Tile2(Q4_0, x8PrepBytes, q4x8Tile2AVX512Asm),
		}
		k.qTileRows, k.qTileToks = 4, 3
		k.q4_K.x8Gemv = kx8Gemv(Q4_K, q4Kx8GemvAVX512)
		k.q5_K.x8Gemv = kx8Gemv(Q5_K, q5Kx8GemvAVX512)
		k.q6_K.x8Gemv = kx8Gemv(Q6_K, q6Kx8GemvAVX512)
		// Four-token tiles (kx8_amd64.s): the weights' unpacking shared
		// by the tokens, each token the gemv's sequence, so the generic
		// bits. BenchmarkKQuantPrefill (64 tokens, 2,560², AMD Zen 5),
		// GFLOP/s: the AVX2 two-token kernels Q4_K 350–354, Q5_K 245–248,
		// Q6_K 218–221; four gemv calls 375–418, 243–254, 320–328; these
		// tiles 451–523, 354–384, 365–378.
		k.q4_K.x8Tile = kx8Tile(Q4_K, q4Kx8TileAVX512Asm)
		// Batches take Q4_K groups two at a time, two tokens a call: each
		// token's activations spread once for sixteen rows (docs/kernels.md).
		k.q4_K.kx8Pair = kx8Pair(Q4_K, q4Kx8PairAVX512Asm)
		k.q5_K.x8Tile = kx8Tile(Q5_K, q5Kx8TileAVX512Asm)
		k.q6_K.x8Tile = kx8Tile(Q6_K, q6Kx8TileAVX512Asm)
		k.q4_K.dot, k.q5_K.dot, k.q6_K.dot = dotQ4KAVX512, dotQ5KAVX512, dotQ6KAVX512
		k.q4_K.tile, k.q5_K.tile, k.q6_K.tile = dotQ4KTileAVX512, dotQ5KTileAVX512, dotQ6KTileAVX512
		k.x8 = true
	}
	return k
}

// The float dots (float32, F16 and BF16, the last two widened exactly)
// accumulate in one 16-lane accumulator, chunk after chunk (a final
// partial chunk zero-padded by a mask load), then the high 8 lanes are
// added to the low 8 and those are reduced by the AVX2 set's fixed tree
// (oneChain). The 4×6 tiles (float32 and F16 rows) and their rest tiles
// follow that sequence for each pair, as do the four-row decode kernels,
// so all of them agree bit for bit on equal inputs; one chain per
// pair lets a tile hold 24 pairs, so a batch of up to six streams reads
// each row tile once (dot_avx512_amd64.s).
//
// The integer dots take two blocks per 64-byte vector (lanes 0–7 block b,
// 8–15 block b+1; an odd last block alone in lanes 0–7). VPDPBUSD
// multiplies unsigned by signed bytes, so the weights are made unsigned
// with a bias (Q8_0: q+128; Q4_0: the nibbles q as stored) and bias·Σx,
// computed by a second VPDPBUSD, is subtracted: each lane's integer sum of
// four products is exact for every input. Each lane's sum, converted to
// float, is multiplied by d_w·d_x and added (FMA) into one 16-lane
// accumulator, reduced as the float dots are. The quantized tiles do
// exactly this for each pair.

func dotF32AVX512(a, b []float32) float32           { return dotF32AVX512Asm(a, b[:len(a)]) }
func dotF16AVX512(a []uint16, b []float32) float32  { return dotF16AVX512Asm(a, b[:len(a)]) }
func dotBF16AVX512(a []uint16, b []float32) float32 { return dotBF16AVX512Asm(a, b[:len(a)]) }
func dotQ8_0AVX512(w, x []byte) float32             { return dotQ8_0AVX512Asm(w, x[:len(w)/34*34]) }
func dotQ4_0AVX512(w, x []byte) float32             { return dotQ4_0AVX512Asm(w, x[:len(w)/18*34]) }

//go:noescape
func dotF32AVX512Asm(a, b []float32) float32

//go:noescape
func dotF16AVX512Asm(a []uint16, b []float32) float32

//go:noescape
func dotBF16AVX512Asm(a []uint16, b []float32) float32

//go:noescape
func dotQ8_0AVX512Asm(w, x []byte) float32

//go:noescape
func dotQ4_0AVX512Asm(w, x []byte) float32

// widenF16AVX512 converts src to float32 in dst (VCVTPH2PS, exact).
func widenF16AVX512(dst []float32, src []uint16) { widenF16AVX512Asm(dst[:len(src)], src) }

//go:noescape
func widenF16AVX512Asm(dst []float32, src []uint16)

//go:noescape
func dotQ8_0Tile4x3AVX512Asm(out *[12]float32, w, x []byte, blocks int)

//go:noescape
func dotQ4_0Tile4x3AVX512Asm(out *[12]float32, w, x []byte, blocks int)

func dotQ8_0Tile4x3AVX512(out []float32, w, x []byte, blocks int) {
	if blocks < 0 || len(w) < 4*34*blocks || len(x) < 3*34*blocks {
		panic("kernels: dotQ8_0Tile4x3AVX512: short operands")
	}
	dotQ8_0Tile4x3AVX512Asm((*[12]float32)(out), w, x, blocks)
}

func dotQ4_0Tile4x3AVX512(out []float32, w, x []byte, blocks int) {
	if blocks < 0 || len(w) < 4*18*blocks || len(x) < 3*34*blocks {
		panic("kernels: dotQ4_0Tile4x3AVX512: short operands")
	}
	dotQ4_0Tile4x3AVX512Asm((*[12]float32)(out), w, x, blocks)
}

//go:noescape
func q4x8GemvAVX512Asm(out *[8]float32, w, p []byte, blocks int)

//go:noescape
func q4x8TileAVX512Asm(out *[32]float32, w, p []byte, blocks, pstride int)

//go:noescape
func q4x8Tile2AVX512Asm(out *[64]float32, w, p []byte, blocks, pstride int)

//go:noescape
func q8x8Tile2AVX512Asm(out *[64]float32, w, p []byte, blocks, pstride int)

//go:noescape
func q8x8GemvAVX512Asm(out *[8]float32, w, p []byte, blocks int)

//go:noescape
func q8x8TileAVX512Asm(out *[32]float32, w, p []byte, blocks, pstride int)

func dotF16Rows4AVX512(out *[4]float32, w []uint16, x []float32, stride int) {
	rows4("dotF16Rows4AVX512", out, w, x, stride, dotF16Rows4AVX512Asm, nil)
}

//go:noescape
func dotF16Rows4AVX512Asm(out *[4]float32, w []uint16, x []float32, n, stride int)

func dotBF16Rows4AVX512(out *[4]float32, w []uint16, x []float32, stride int) {
	rows4("dotBF16Rows4AVX512", out, w, x, stride, dotBF16Rows4AVX512Asm, nil)
}

//go:noescape
func dotBF16Rows4AVX512Asm(out *[4]float32, w []uint16, x []float32, n, stride int)

func dotF32Rows4AVX512(out *[4]float32, w, x []float32, stride int) {
	rows4("dotF32Rows4AVX512", out, w, x, stride, dotF32Rows4AVX512Asm, nil)
}

//go:noescape
func dotF32Rows4AVX512Asm(out *[4]float32, w, x []float32, n, stride int)

func quantizeQ8_0AVX512(dst []byte, x []float32) {
	blocks := len(x) / QK
	if len(dst) < blocks*34 {
		panic("kernels: quantizeQ8_0AVX512: short destination")
	}
	quantizeQ8_0AVX512Asm(dst[:blocks*34], x[:blocks*QK])
}

//go:noescape
func quantizeQ8_0AVX512Asm(dst []byte, x []float32)

func axpyAVX512(y []float32, a float32, x []float32) { axpyAVX512Asm(y, a, x[:len(y)]) }

//go:noescape
func axpyAVX512Asm(y []float32, a float32, x []float32)

func dotF32Tile4x6PartsAVX512(acc []float32, w, x []float32, ld, n, flags, tiles int) {
	if tiles <= 0 {
		return
	}
	if !tilePartsOK(len(w), len(x), len(acc), 6, ld, n, flags, tiles, 32) {
		panic("kernels: dotF32Tile4x6PartsAVX512: bad operands")
	}
	dotTile4x6PartsAVX512(&acc[0], w, x, ld, n, flags, tiles)
}

//go:noescape
func dotTile4x6PartsAVX512(acc *float32, w, x []float32, ld, n, flags, tiles int)

// dotF32TileRestPartsAVX512 is dotF32Tile4x6PartsAVX512 for one tile of
// one to five tokens, with the same bits.
func dotF32TileRestPartsAVX512(acc []float32, w, x []float32, ld, n, flags, tokens int) {
	if tokens < 1 || tokens > 5 || !tilePartsOK(len(w), len(x), len(acc), tokens, ld, n, flags, 1, 32) {
		panic("kernels: dotF32TileRestPartsAVX512: bad operands")
	}
	dotTile4xNPartsAVX512(&acc[0], w, x, ld, n, flags, tokens)
}

//go:noescape
func dotTile4xNPartsAVX512(acc *float32, w, x []float32, ld, n, flags, tokens int)

func dotF16Tile4x6PartsAVX512(acc []float32, w []uint16, x []float32, ld, n, flags, tiles int) {
	if tiles <= 0 {
		return
	}
	if !tilePartsOK(len(w), len(x), len(acc), 6, ld, n, flags, tiles, 32) {
		panic("kernels: dotF16Tile4x6PartsAVX512: bad operands")
	}
	dotTile4x6PartsF16AVX512(&acc[0], w, x, ld, n, flags, tiles)
}

//go:noescape
func dotTile4x6PartsF16AVX512(acc *float32, w []uint16, x []float32, ld, n, flags, tiles int)

// dotF16TileRestPartsAVX512 is dotF16Tile4x6PartsAVX512 for one tile of
// one to five tokens, with the same bits.
func dotF16TileRestPartsAVX512(acc []float32, w []uint16, x []float32, ld, n, flags, tokens int) {
	if tokens < 1 || tokens > 5 || !tilePartsOK(len(w), len(x), len(acc), tokens, ld, n, flags, 1, 32) {
		panic("kernels: dotF16TileRestPartsAVX512: bad operands")
	}
	dotTile4xNPartsF16AVX512(&acc[0], w, x, ld, n, flags, tokens)
}

//go:noescape
func dotTile4xNPartsF16AVX512(acc *float32, w []uint16, x []float32, ld, n, flags, tokens int)

// The AVX-512 kernels for K-quant matrices packed by eight rows
// (kx8_amd64.s, after the AVX2 ones).

func q4Kx8GemvAVX512(out *[8]float32, w, x []byte, blocks int) { q4Kx8GemvAVX512Asm(out, w, x, blocks) }

//go:noescape
func q4Kx8GemvAVX512Asm(out *[8]float32, w, x []byte, nb int)

//go:noescape
func q4Kx8TileAVX512Asm(out *[32]float32, w, x []byte, nb, xstride int)

//go:noescape
func q4Kx8PairAVX512Asm(out *[32]float32, w, x []byte, nb, xstride int)

//go:noescape
func q5Kx8TileAVX512Asm(out *[32]float32, w, x []byte, nb, xstride int)

//go:noescape
func q6Kx8TileAVX512Asm(out *[32]float32, w, x []byte, nb, xstride int)

func q5Kx8GemvAVX512(out *[8]float32, w, x []byte, blocks int) { q5Kx8GemvAVX512Asm(out, w, x, blocks) }
func q6Kx8GemvAVX512(out *[8]float32, w, x []byte, blocks int) { q6Kx8GemvAVX512Asm(out, w, x, blocks) }

//go:noescape
func q5Kx8GemvAVX512Asm(out *[8]float32, w, x []byte, nb int)

//go:noescape
func q6Kx8GemvAVX512Asm(out *[8]float32, w, x []byte, nb int)

// dotsF32AVX512Asm is DotsF32 with dotF32AVX512Asm's steps for every row;
// the caller checks the bounds.
//
//go:noescape
func dotsF32AVX512Asm(out, q, keys []float32, stride int)

// axpyRowsAVX512Asm is AxpyRows with axpyAVX512Asm's rounding (multiply,
// then add) for every row, y held in registers 64 floats at a time; the
// caller checks the bounds.
//
//go:noescape
func axpyRowsAVX512Asm(y, w, rows []float32, stride int)

// expLanesAVX512Asm and expLanesAVX2Asm are expLanesGeneric, sixteen values
// a step in float64 lanes (softmax_amd64.s), with its bits.
//
//go:noescape
func expLanesAVX512Asm(x []float32, mx float32, l *[16]float32)

//go:noescape
func expLanesAVX2Asm(x []float32, mx float32, l *[16]float32)

//go:noescape
func divAVX512Asm(x []float32, d float32)

// maxAVX512Asm is the max kernel for whole steps of sixteen values.
//
//go:noescape
func maxAVX512Asm(x []float32) float32
