package wire

import (
	"encoding/binary"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// putF16Generic writes src as little-endian IEEE halves; len(dst) ==
// 2·len(src): bit for bit what kernels.F32ToF16 returns (the tests check
// it), through kernels.NarrowF16, a stack buffer at a time.
func putF16Generic(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	var buf [512]uint16
	for len(src) > 0 {
		n := min(len(src), len(buf))
		kernels.NarrowF16(buf[:n], src[:n])
		for i, h := range buf[:n] {
			binary.LittleEndian.PutUint16(dst[2*i:], h)
		}
		dst, src = dst[2*n:], src[n:]
	}
}

// getF16 widens little-endian IEEE halves through the kernels' lookup table;
// len(src) == 2·len(dst).
func getF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = kernels.F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}
