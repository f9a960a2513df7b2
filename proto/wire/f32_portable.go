//go:build !((386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm) && !purego)

package wire

func putF32(dst []byte, src []float32) { putF32Generic(dst, src) }

func getF32(dst []float32, src []byte) { getF32Generic(dst, src) }

func putF16(dst []byte, src []float32) { putF16Generic(dst, src) }
