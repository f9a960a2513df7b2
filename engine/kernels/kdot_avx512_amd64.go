//go:build amd64 && !purego

package kernels

// The AVX-512 K-quant dots (kdot_avx512_amd64.s) need AVX-512 BW for the
// byte and word instructions on zmm and VNNI for VPDPWSSD; they give the
// generic dots' bits (kdot.go).

func dotQ4KAVX512(w, x []byte) float32 { return dotQ4KAVX512Asm(w, x, kBlocks(w, x, 144)) }
func dotQ5KAVX512(w, x []byte) float32 { return dotQ5KAVX512Asm(w, x, kBlocks(w, x, 176)) }
func dotQ6KAVX512(w, x []byte) float32 { return dotQ6KAVX512Asm(w, x, kBlocks(w, x, 210)) }

//go:noescape
func dotQ4KAVX512Asm(w, x []byte, nb int) float32

//go:noescape
func dotQ5KAVX512Asm(w, x []byte, nb int) float32

//go:noescape
func dotQ6KAVX512Asm(w, x []byte, nb int) float32

func dotQ4KTileAVX512(out []float32, w, x []byte, blocks int) {
	kTileCheck(out, w, x, blocks, 144)
	dotQ4KTile1x4AVX512Asm((*[4]float32)(out), w, x, blocks, blocks*q8KBytes)
}

func dotQ5KTileAVX512(out []float32, w, x []byte, blocks int) {
	kTileCheck(out, w, x, blocks, 176)
	dotQ5KTile1x4AVX512Asm((*[4]float32)(out), w, x, blocks, blocks*q8KBytes)
}

func dotQ6KTileAVX512(out []float32, w, x []byte, blocks int) {
	kTileCheck(out, w, x, blocks, 210)
	dotQ6KTile1x4AVX512Asm((*[4]float32)(out), w, x, blocks, blocks*q8KBytes)
}

// kTileCheck bounds a tile's operands: one row of blocks super-blocks of bb
// bytes, kTileToks activation rows back to back.
func kTileCheck(out []float32, w, x []byte, blocks, bb int) {
	if blocks < 0 || len(out) < kTileToks || len(w) < blocks*bb || len(x) < kTileToks*blocks*q8KBytes {
		panic("kernels: K-quant tile: short operands")
	}
}

//go:noescape
func dotQ4KTile1x4AVX512Asm(out *[4]float32, w, x []byte, nb, xstride int)

//go:noescape
func dotQ5KTile1x4AVX512Asm(out *[4]float32, w, x []byte, nb, xstride int)

//go:noescape
func dotQ6KTile1x4AVX512Asm(out *[4]float32, w, x []byte, nb, xstride int)
