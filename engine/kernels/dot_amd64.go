//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// The AVX2 kernels need FMA for the float dots and F16C for the fp16
// weights and block scales; x/sys/cpu reports AVX2 only when the OS saves
// the YMM registers.
var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

// avx2Set is the AVX2 set: the generic set with the AVX2 kernels in place.
func avx2Set() kernelSet {
	k := genericKernels
	k.name = "avx2"
	k.f32, k.f16, k.bf16 = dotF32AVX2, dotF16AVX2, dotBF16AVX2
	k.q8_0 = quantKernels{
		dot:    dotQ8_0AVX2,
		x8Gemv: x8GemvAVX2(Q8_0, q8x8AVX2Asm),
		x8Tile: x8TileAVX2(Q8_0, q8x8AVX2Asm),
	}
	k.q4_0 = quantKernels{
		dot:    dotQ4_0AVX2,
		x8Gemv: x8Gemv(Q4_0, x8WideBytes, q4x8GemvAVX2),
		x8Tile: x8Tile(Q4_0, x8WideBytes, q4x8x4AVX2Asm),
	}
	k.prepX8, k.prepX8Bytes = x8PrepWide, x8WideBytes
	k.x8 = true
	k.tileRows, k.tileTokens, k.tileParts = 4, 3, dotF32Tile4x3PartsAVX2
	k.tilePartsH, k.tilePartsHAlign = dotF16Tile4x3PartsAVX2, 8
	k.tilePartsHRest = dotF16TileRestPartsAVX2
	k.q4_K.dot, k.q5_K.dot, k.q6_K.dot = dotQ4KAVX2, dotQ5KAVX2, dotQ6KAVX2
	useKX8AVX2(&k)
	k.f16Rows4, k.bf16Rows4, k.f32Rows4 = dotF16Rows4AVX2, dotBF16Rows4AVX2, dotF32Rows4AVX2
	k.widenF16 = widenF16AVX2
	k.axpy = axpyAVX2
	k.dotsF32, k.axpyRows = dotsF32AVX2Asm, axpyRowsAVX2Asm
	k.quantQ8_0 = quantizeQ8_0AVX2
	k.quantQ8K = quantizeQ8KAVX2
	k.gelu = geluAVX2
	k.expLanes = expLanesAVX2Asm
	k.div = divAVX2
	k.max = maxAVX2Asm
	return k
}

// useKX8AVX2 gives k the AVX2 kernels for K-quant matrices packed by eight
// rows (kx8_amd64.s) and packs those matrices at load. Every K-quant kernel
// gives the generic bits, so a set may take them beside its own dots.
func useKX8AVX2(k *kernelSet) {
	k.q4_K.x8Gemv = kx8Gemv(Q4_K, q4Kx8GemvAVX2)
	k.q4_K.x8Tile = kx8Tile(Q4_K, kx8TileX2(q4Kx8x2AVX2Asm))
	k.q5_K.x8Gemv = kx8Gemv(Q5_K, q5Kx8GemvAVX2)
	k.q5_K.x8Tile = kx8Tile(Q5_K, kx8TileX2(q5Kx8x2AVX2Asm))
	k.q6_K.x8Gemv = kx8Gemv(Q6_K, q6Kx8GemvAVX2)
	k.q6_K.x8Tile = kx8Tile(Q6_K, kx8TileX2(q6Kx8x2AVX2Asm))
	k.kx8 = true
}

// archKernels offers the AVX-512 set, then the AVX2 set, as far as the CPU
// runs them; the first is the one in use.
func archKernels() []kernelSet {
	var sets []kernelSet
	if hasAVX2FMA && hasAVX512 {
		sets = append(sets, avx512Set())
	}
	if hasAVX2FMA {
		sets = append(sets, avx2Set())
	}
	return sets
}

// The float dots accumulate in one 8-lane accumulator: whole 8-element
// chunks in order, then a final partial chunk (zero-padded), and the 8 lanes
// reduced by a fixed tree. dotF16 and dotBF16 widen first and then follow
// the same sequence exactly, as do the 4×3 tile (one accumulator per pair:
// twelve, with the three tokens' activations and one weight row, fill the
// sixteen registers) and the four-row F16 decode
// kernel for each of their pairs, so all of them agree bit for bit on equal
// inputs. One accumulator makes a single dot wait on the FMA latency; the
// decode path runs four rows at once instead.

// The Go wrappers bound the second operand by the first, as the generic
// code does, so the assembly never reads past either slice.

func dotF32AVX2(a, b []float32) float32           { return dotF32AVX2Asm(a, b[:len(a)]) }
func dotF16AVX2(a []uint16, b []float32) float32  { return dotF16AVX2Asm(a, b[:len(a)]) }
func dotBF16AVX2(a []uint16, b []float32) float32 { return dotBF16AVX2Asm(a, b[:len(a)]) }
func dotQ8_0AVX2(w, x []byte) float32             { return dotQ8_0AVX2Asm(w, x[:len(w)/34*34]) }
func dotQ4_0AVX2(w, x []byte) float32             { return dotQ4_0AVX2Asm(w, x[:len(w)/18*34]) }

//go:noescape
func dotF32AVX2Asm(a, b []float32) float32

//go:noescape
func dotF16AVX2Asm(a []uint16, b []float32) float32

//go:noescape
func dotBF16AVX2Asm(a []uint16, b []float32) float32

// dotQ8_0AVX2Asm computes |w|·(x·sign w) with VPMADDUBSW, which is exact
// for every weight byte and every activation byte but −128; QuantizeQ8_0
// never produces −128 (|x|/d ≤ 127).
//
//go:noescape
func dotQ8_0AVX2Asm(w, x []byte) float32

// dotQ4_0AVX2Asm computes Σq·x − 8·Σx with the nibbles q unsigned, which
// is exact for every input.
//
//go:noescape
func dotQ4_0AVX2Asm(w, x []byte) float32

// rows4 checks a four-row kernel's operands and runs it; with tailDot set,
// lengths that are not a multiple of 8 (which the avx2 kernels do not take)
// go to that one-row dot four times instead: the tail is the one-row dot's.
func rows4[T uint16 | float32](name string, out *[4]float32, w []T, x []float32, stride int,
	asm func(out *[4]float32, w []T, x []float32, n, stride int), tailDot func(w []T, x []float32) float32) {
	n := len(x)
	if stride < n || len(w) < 3*stride+n {
		panic("kernels: " + name + ": short operands")
	}
	if tailDot != nil && n%8 != 0 {
		for i := range out {
			out[i] = tailDot(w[i*stride:i*stride+n], x)
		}
		return
	}
	asm(out, w, x, n, stride)
}

func dotF16Rows4AVX2(out *[4]float32, w []uint16, x []float32, stride int) {
	rows4("dotF16Rows4AVX2", out, w, x, stride, dotF16Rows4AVX2Asm, dotF16AVX2Asm)
}

func dotBF16Rows4AVX2(out *[4]float32, w []uint16, x []float32, stride int) {
	rows4("dotBF16Rows4AVX2", out, w, x, stride, dotBF16Rows4AVX2Asm, dotBF16AVX2Asm)
}

func dotF32Rows4AVX2(out *[4]float32, w, x []float32, stride int) {
	rows4("dotF32Rows4AVX2", out, w, x, stride, dotF32Rows4AVX2Asm, dotF32AVX2Asm)
}

//go:noescape
func dotF16Rows4AVX2Asm(out *[4]float32, w []uint16, x []float32, n, stride int)

//go:noescape
func dotBF16Rows4AVX2Asm(out *[4]float32, w []uint16, x []float32, n, stride int)

//go:noescape
func dotF32Rows4AVX2Asm(out *[4]float32, w, x []float32, n, stride int)

func quantizeQ8_0AVX2(dst []byte, x []float32) {
	blocks := len(x) / QK
	if len(dst) < blocks*34 {
		panic("kernels: quantizeQ8_0AVX2: short destination")
	}
	quantizeQ8_0AVX2Asm(dst[:blocks*34], x[:blocks*QK])
}

func axpyAVX2(y []float32, a float32, x []float32) { axpyAVX2Asm(y, a, x[:len(y)]) }

//go:noescape
func quantizeQ8_0AVX2Asm(dst []byte, x []float32)

//go:noescape
func axpyAVX2Asm(y []float32, a float32, x []float32)

// The AVX2 Q8_0 packed kernel takes one token (pstride 0) or two; its
// 4-token tile is two passes over the group's blocks, which stay in L1.
// The Q4_0 tile takes its four tokens in one pass (q4x8x4AVX2Asm). All
// read the wide prepared form (x8PrepWide); x8Gemv and x8Tile check the
// operands.
type x8AVX2Kernel func(out *[16]float32, w, p []byte, blocks, pstride int)

func x8GemvAVX2(dt DType, k x8AVX2Kernel) func(out *[8]float32, w, p []byte, blocks int) {
	return x8Gemv(dt, x8WideBytes, func(out *[8]float32, w, p []byte, blocks int) {
		var o [16]float32
		k(&o, w, p, blocks, 0)
		copy(out[:], o[:8])
	})
}

func x8TileAVX2(dt DType, k x8AVX2Kernel) func(out *[32]float32, w, p []byte, blocks, pstride int) {
	return x8Tile(dt, x8WideBytes, func(out *[32]float32, w, p []byte, blocks, pstride int) {
		k((*[16]float32)(out[:16]), w, p, blocks, pstride)
		k((*[16]float32)(out[16:]), w, p[2*pstride:], blocks, pstride)
	})
}

// q4x8x4AVX2Asm is the Q4_0 tile: four tokens, each block's weights
// unpacked once for all of them, and the next group's block prefetched
// (the group after w in the packed matrix, which the product takes next).
//
//go:noescape
func q4x8x4AVX2Asm(out *[32]float32, w, p []byte, blocks, pstride int)

//go:noescape
func q8x8AVX2Asm(out *[16]float32, w, p []byte, blocks, pstride int)

// tilePartsOK reports whether a tileParts call's operands are in bounds
// for tt tokens per tile, parts aligned to align columns.
func tilePartsOK(lw, lx, lacc, tt, ld, n, flags, tiles, align int) bool {
	return n >= 0 && ld >= n && lw >= 3*ld+n && lx >= (tt*tiles-1)*ld+n && lacc >= tiles*tileAccFloats &&
		(flags&tileLast != 0 || n%align == 0)
}

func dotF32Tile4x3PartsAVX2(acc []float32, w, x []float32, ld, n, flags, tiles int) {
	if tiles <= 0 {
		return
	}
	if !tilePartsOK(len(w), len(x), len(acc), 3, ld, n, flags, tiles, 8) {
		panic("kernels: dotF32Tile4x3PartsAVX2: bad operands")
	}
	dotTile4x3PartsAVX2(&acc[0], w, x, ld, n, flags, tiles)
}

//go:noescape
func dotTile4x3PartsAVX2(acc *float32, w, x []float32, ld, n, flags, tiles int)

// dotF16Tile4x3PartsAVX2 is dotF32Tile4x3PartsAVX2 on F16 rows widened in
// registers. It takes whole groups of 8 columns only, the last part too:
// plan uses it when the columns are a multiple of 8 (tilePartsHAlign).
func dotF16Tile4x3PartsAVX2(acc []float32, w []uint16, x []float32, ld, n, flags, tiles int) {
	if tiles <= 0 {
		return
	}
	if !tilePartsOK(len(w), len(x), len(acc), 3, ld, n, flags, tiles, 8) || n%8 != 0 {
		panic("kernels: dotF16Tile4x3PartsAVX2: bad operands")
	}
	dotTile4x3PartsF16AVX2(&acc[0], w, x, ld, n, flags, tiles)
}

//go:noescape
func dotTile4x3PartsF16AVX2(acc *float32, w []uint16, x []float32, ld, n, flags, tiles int)

// dotF16TileRestPartsAVX2 is dotF16Tile4x3PartsAVX2 for one tile of one or
// two tokens.
func dotF16TileRestPartsAVX2(acc []float32, w []uint16, x []float32, ld, n, flags, tokens int) {
	if tokens < 1 || tokens > 2 || !tilePartsOK(len(w), len(x), len(acc), tokens, ld, n, flags, 1, 8) || n%8 != 0 {
		panic("kernels: dotF16TileRestPartsAVX2: bad operands")
	}
	dotTile4xNPartsF16AVX2(&acc[0], w, x, ld, n, flags, tokens)
}

//go:noescape
func dotTile4xNPartsF16AVX2(acc *float32, w []uint16, x []float32, ld, n, flags, tokens int)

// q4x8GemvAVX2 is the one-token Q4_0 x8 kernel: q4x8AVX2Asm's bits with the
// scales made once per block.
func q4x8GemvAVX2(out *[8]float32, w, p []byte, blocks int) {
	var o [16]float32
	q4x8GemvAVX2Asm(&o, w, p, blocks)
	copy(out[:], o[:8])
}

//go:noescape
func q4x8GemvAVX2Asm(out *[16]float32, w, p []byte, blocks int)

// dotsF32AVX2Asm is DotsF32 with dotF32AVX2Asm's steps for every row; the
// caller checks the bounds.
//
//go:noescape
func dotsF32AVX2Asm(out, q, keys []float32, stride int)

// axpyRowsAVX2Asm is AxpyRows with axpyAVX2Asm's rounding (multiply, then
// add) for every row, y held in registers 32 floats at a time; the caller
// checks the bounds.
//
//go:noescape
func axpyRowsAVX2Asm(y, w, rows []float32, stride int)

// divAVX2 is Div: whole groups of eight in divAVX2Asm, the rest in Go.
func divAVX2(x []float32, d float32) {
	n := len(x) &^ 7
	divAVX2Asm(x[:n], d)
	divGeneric(x[n:], d)
}

//go:noescape
func divAVX2Asm(x []float32, d float32)

// maxAVX2Asm is the max kernel for whole steps of eight values.
//
//go:noescape
func maxAVX2Asm(x []float32) float32
