package wire

import (
	"encoding/binary"
	"math"
)

// putF32Generic writes src as little-endian float32s on any machine;
// len(dst) == 4·len(src). It is the reference for putF32.
func putF32Generic(dst []byte, src []float32) {
	dst = dst[:4*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
	}
}

// getF32Generic reads little-endian float32s on any machine;
// len(src) == 4·len(dst). It is the reference for getF32.
func getF32Generic(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}
