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
