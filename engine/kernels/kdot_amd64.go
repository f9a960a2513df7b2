//go:build amd64 && !purego

package kernels

// The AVX2 K-quant dots (kdot_amd64.s). They keep kdot.go's float32 steps,
// so they give the generic dots' bits; the avx512 set uses them too (the
// integer work is exact, so any arrangement of it gives the same bits).

func dotQ4KAVX2(w, x []byte) float32 { return dotQ4KAVX2Asm(w, x, kBlocks(w, x, 144)) }
func dotQ5KAVX2(w, x []byte) float32 { return dotQ5KAVX2Asm(w, x, kBlocks(w, x, 176)) }
func dotQ6KAVX2(w, x []byte) float32 { return dotQ6KAVX2Asm(w, x, kBlocks(w, x, 210)) }

// kBlocks is the number of whole super-blocks of bb bytes in w, checked
// against the activations' length, so the assembly never reads past either.
func kBlocks(w, x []byte, bb int) int {
	nb := len(w) / bb
	if len(x) < nb*q8KBytes {
		panic("kernels: K-quant dot: short activations")
	}
	return nb
}

//go:noescape
func dotQ4KAVX2Asm(w, x []byte, nb int) float32

//go:noescape
func dotQ5KAVX2Asm(w, x []byte, nb int) float32

//go:noescape
func dotQ6KAVX2Asm(w, x []byte, nb int) float32

// The AVX2 kernels for K-quant matrices packed by eight rows (kx8_amd64.s).

func q4Kx8GemvAVX2(out *[8]float32, w, x []byte, blocks int) { q4Kx8GemvAVX2Asm(out, w, x, blocks) }

//go:noescape
func q4Kx8GemvAVX2Asm(out *[8]float32, w, x []byte, nb int)

func q5Kx8GemvAVX2(out *[8]float32, w, x []byte, blocks int) { q5Kx8GemvAVX2Asm(out, w, x, blocks) }
func q6Kx8GemvAVX2(out *[8]float32, w, x []byte, blocks int) { q6Kx8GemvAVX2Asm(out, w, x, blocks) }

//go:noescape
func q5Kx8GemvAVX2Asm(out *[8]float32, w, x []byte, nb int)

//go:noescape
func q6Kx8GemvAVX2Asm(out *[8]float32, w, x []byte, nb int)

// kx8TileX2 is a tile of two calls of a two-token kernel (tokens 0, 1 and
// 2, 3), which unpacks the group's weights once per pair of tokens.
func kx8TileX2(k func(out *[16]float32, w, x []byte, nb, xstride int)) func(out *[32]float32, w, x []byte, blocks, xstride int) {
	return func(out *[32]float32, w, x []byte, blocks, xstride int) {
		k((*[16]float32)(out[:16]), w, x, blocks, xstride)
		k((*[16]float32)(out[16:]), w, x[2*xstride:], blocks, xstride)
	}
}

//go:noescape
func q4Kx8x2AVX2Asm(out *[16]float32, w, x []byte, nb, xstride int)

//go:noescape
func q5Kx8x2AVX2Asm(out *[16]float32, w, x []byte, nb, xstride int)

//go:noescape
func q6Kx8x2AVX2Asm(out *[16]float32, w, x []byte, nb, xstride int)

// quantizeQ8KAVX2 is quantizeQ8K (the same bytes for finite x).
func quantizeQ8KAVX2(dst []byte, x []float32) {
	nb := len(x) / QKK
	if len(dst) < nb*q8KBytes {
		panic("kernels: quantizeQ8KAVX2: short destination")
	}
	quantizeQ8KAVX2Asm(dst, x, nb)
}

//go:noescape
func quantizeQ8KAVX2Asm(dst []byte, x []float32, nb int)
