package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// checkRows compares DotsF32 and AxpyRows with the set's one-row kernels
// called row by row, bit for bit, on one shape. The rows are cut from a
// buffer that ends right after the last row's last float, and the floats
// between rows (and after y) are poisoned, so reading one past a row or
// writing past y shows.
func checkRows(t *testing.T, k kernelSet, r *rand.Rand, d, n, stride int) {
	t.Helper()
	q := randVec(r, d)
	buf := randVec(r, (n-1)*stride+d)
	for i := 0; i < n; i++ {
		for j := i*stride + d; j < min((i+1)*stride, len(buf)); j++ {
			buf[j] = float32(math.NaN())
		}
	}
	got := make([]float32, n+1)
	got[n] = 7
	DotsF32(got[:n], q, buf, stride)
	for i := range n {
		if want := k.f32(q, buf[i*stride:i*stride+d]); math.Float32bits(got[i]) != math.Float32bits(want) {
			t.Fatalf("%s: DotsF32 d=%d n=%d stride=%d row %d: %v, one row at a time %v", k.name, d, n, stride, i, got[i], want)
		}
	}
	if got[n] != 7 {
		t.Fatalf("%s: DotsF32 wrote past out", k.name)
	}
	w := randVec(r, n)
	y0 := randVec(r, d+1)
	y0[d] = 7
	y, want := append([]float32(nil), y0...), append([]float32(nil), y0...)
	AxpyRows(y[:d], w, buf, stride)
	for i := range n {
		k.axpy(want[:d], w[i], buf[i*stride:i*stride+d])
	}
	for j := range y {
		if math.Float32bits(y[j]) != math.Float32bits(want[j]) {
			t.Fatalf("%s: AxpyRows d=%d n=%d stride=%d: y[%d] = %v, one row at a time %v", k.name, d, n, stride, j, y[j], want[j])
		}
	}
}

// Attention's many-row kernels give every set's one-row bits, for head
// widths around the vector widths and a run of rows as a KV block has them.
func TestRowsKernelsBitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for _, k := range kernelSets() {
		t.Run(k.name, func(t *testing.T) {
			useKernels(t, k)
			for _, d := range []int{1, 7, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 80, 96, 128, 129, 200} {
				for _, n := range []int{1, 2, 5, 16} {
					checkRows(t, k, r, d, n, d)              // packed rows
					checkRows(t, k, r, d, n, d+1+r.IntN(40)) // one head of wider rows
				}
			}
			DotsF32(nil, []float32{1}, nil, 1) // empty runs are no-ops
			AxpyRows(nil, nil, nil, 1)
		})
	}
}

func FuzzRowsKernels(f *testing.F) {
	f.Add(uint64(1), uint8(80), uint8(16), uint8(0))
	f.Fuzz(func(t *testing.T, seed uint64, d, n, gap uint8) {
		if d == 0 || n == 0 {
			return
		}
		r := rand.New(rand.NewPCG(seed, 3))
		for _, k := range kernelSets() {
			useKernels(t, k)
			checkRows(t, k, r, int(d), int(n), int(d)+int(gap))
		}
	})
}

// BenchmarkAttentionRows is one head's scores and weighted values over a
// KV block of 16 positions (head 80 wide, rows 2,560 apart, as Phi-2's),
// in one call each against one call per position.
func BenchmarkAttentionRows(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	const d, n, stride = 80, 16, 2560
	q, keys := randVec(r, d), randVec(r, n*stride)
	sc, y := make([]float32, n), make([]float32, d)
	for _, k := range kernelSets() {
		b.Run(fmt.Sprintf("%s/rows", k.name), func(b *testing.B) {
			useKernels(b, k)
			for b.Loop() {
				DotsF32(sc, q, keys, stride)
				AxpyRows(y, sc, keys, stride)
			}
		})
		b.Run(fmt.Sprintf("%s/each", k.name), func(b *testing.B) {
			useKernels(b, k)
			for b.Loop() {
				for i := range n {
					sc[i] = DotF32(q, keys[i*stride:i*stride+d])
				}
				for i := range n {
					Axpy(y, sc[i], keys[i*stride:i*stride+d])
				}
			}
		})
	}
}
