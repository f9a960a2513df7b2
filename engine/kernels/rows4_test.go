package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The four-row F16 decode kernel gives the set's single-row dot bits for
// every row and length (all tails), on any halves (Inf and NaN included).
func TestF16Rows4BitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, k := range kernelSets() {
		if k.f16Rows4 == nil {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			for _, n := range dotLengths() {
				w := make([]uint16, 4*n)
				for i := range w {
					if i%97 == 5 {
						w[i] = uint16(r.Uint32()) // any half, NaN and Inf included
					} else {
						w[i] = randHalf(r)
					}
				}
				x := randVec(r, n)
				var out [4]float32
				k.f16Rows4(&out, w, x)
				for i := range out {
					want := k.f16(w[i*n:(i+1)*n], x)
					if math.Float32bits(out[i]) != math.Float32bits(want) && !(isNaN(out[i]) && isNaN(want)) {
						t.Fatalf("n=%d row %d: %v, single-row dot %v", n, i, out[i], want)
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
