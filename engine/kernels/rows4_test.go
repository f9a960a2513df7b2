package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The four-row decode kernels (F16, BF16 and float32 rows) give the set's
// single-row dot bits for every row and length (all tails), rows adjacent
// or further apart, on any 16-bit values (Inf and NaN included).
func TestRows4BitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, k := range kernelSets() {
		if k.f16Rows4 == nil && k.bf16Rows4 == nil && k.f32Rows4 == nil {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			for _, n := range dotLengths() {
				for _, stride := range []int{n, n + 5, 3*n + 16} {
					w := make([]uint16, 3*stride+n)
					for i := range w {
						if i%97 == 5 {
							w[i] = uint16(r.Uint32()) // any half, NaN and Inf included
						} else {
							w[i] = randHalf(r)
						}
					}
					wf := randVec(r, 3*stride+n)
					x := randVec(r, n)
					check := func(name string, rows4 func(out *[4]float32), dot func(i int) float32) {
						var out [4]float32
						rows4(&out)
						for i := range out {
							want := dot(i)
							if math.Float32bits(out[i]) != math.Float32bits(want) && !(isNaN(out[i]) && isNaN(want)) {
								t.Fatalf("%s n=%d stride=%d row %d: %v, single-row dot %v", name, n, stride, i, out[i], want)
							}
						}
					}
					if k.f16Rows4 != nil {
						check("f16", func(out *[4]float32) { k.f16Rows4(out, w, x, stride) },
							func(i int) float32 { return k.f16(w[i*stride:i*stride+n], x) })
					}
					if k.bf16Rows4 != nil {
						check("bf16", func(out *[4]float32) { k.bf16Rows4(out, w, x, stride) },
							func(i int) float32 { return k.bf16(w[i*stride:i*stride+n], x) })
					}
					if k.f32Rows4 != nil {
						check("f32", func(out *[4]float32) { k.f32Rows4(out, wf, x, stride) },
							func(i int) float32 { return k.f32(wf[i*stride:i*stride+n], x) })
					}
				}
			}
		})
	}
}

// Axpy's kernels give the generic bits (multiply, then add) for every
// length, and leave the rest of y alone.
func TestAxpyBitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	for _, k := range kernelSets() {
		if k.axpy == nil {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			for _, n := range dotLengths() {
				x, y := randVec(r, n+3), randVec(r, n+1)
				a := float32(r.NormFloat64())
				want := append([]float32(nil), y...)
				axpyGeneric(want[:n], a, x)
				k.axpy(y[:n], a, x)
				for i := range y {
					if math.Float32bits(y[i]) != math.Float32bits(want[i]) {
						t.Fatalf("n=%d: y[%d] = %v, want %v", n, i, y[i], want[i])
					}
				}
			}
		})
	}
}
