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
