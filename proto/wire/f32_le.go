//go:build (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm) && !purego

package wire

import (
	"unsafe"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// On little-endian machines the wire format is the memory layout, so F32
// conversion is a memmove. The float32 side is viewed as bytes (never the
// byte buffer as float32s), so alignment of the decoder's buffer is irrelevant.

func putF32(dst []byte, src []float32) { copy(dst, f32Bytes(src)) }

func getF32(dst []float32, src []byte) { copy(f32Bytes(dst), src) }

// putF16 narrows straight into dst when it is 2-byte aligned (it always is
// in practice: a fresh byte slice), or through putF16Generic's buffer.
func putF16(dst []byte, src []float32) {
	if len(src) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(dst)))%2 != 0 {
		putF16Generic(dst, src)
		return
	}
	dst = dst[:2*len(src)]
	kernels.NarrowF16(unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(dst))), len(src)), src)
}

func f32Bytes(v []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}
