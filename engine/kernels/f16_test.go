package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// NarrowF16 gives F32ToF16's bits for every kind of float32 (normal halves,
// ties, subnormal results, overflow, infinities, NaN, zeros), and WidenF16
// takes every half back exactly.
func TestNarrowWidenF16(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	src := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65520, 65519.996, -70000,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		6.1035156e-05, 6.1035152e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 1e-10,
		1.0009765625, 1.00048828125, 1.00146484375, -2.5e-6}
	for range 200000 {
		src = append(src, math.Float32frombits(r.Uint32()))
	}
	for e := -30; e <= 20; e++ {
		for range 200 {
			src = append(src, float32(math.Ldexp(r.Float64()*2-1, e)))
		}
	}
	dst := make([]uint16, len(src))
	NarrowF16(dst, src)
	for i, f := range src {
		if want := F32ToF16(f); dst[i] != want {
			t.Fatalf("NarrowF16(%g [%#08x]) = %#04x, want %#04x", f, math.Float32bits(f), dst[i], want)
		}
	}
	withEachKernelSet(t, func(t *testing.T) {
		halves := make([]uint16, 1<<16)
		for i := range halves {
			halves[i] = uint16(i)
		}
		wide := make([]float32, len(halves))
		WidenF16(wide, halves[1:]) // an odd length and start
		for i, h := range halves[1:] {
			got, want := wide[i], F16ToF32(h)
			if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
				t.Fatalf("WidenF16(%#04x) = %v, want %v", h, got, want)
			}
		}
	})
}
