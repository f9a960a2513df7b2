//go:build (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm) && !purego

package wire

import "unsafe"

// On little-endian machines the wire format is the memory layout, so F32
// conversion is a memmove. The float32 side is viewed as bytes (never the
// byte buffer as float32s), so alignment of the decoder's buffer is irrelevant.

func putF32(dst []byte, src []float32) { copy(dst, f32Bytes(src)) }

func getF32(dst []float32, src []byte) { copy(f32Bytes(dst), src) }

func f32Bytes(v []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}
