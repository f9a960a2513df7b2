package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// expF32 is within one float32 ulp of exp (correctly rounded for nearly
// every input), and 0, 1 and NaN where they belong.
func TestExpF32(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	worse := 0
	n := 0
	check := func(d float32) {
		got, want := expF32(d), float32(math.Exp(float64(d)))
		n++
		if got == want {
			return
		}
		if diff := int64(math.Float32bits(got)) - int64(math.Float32bits(want)); diff < -1 || diff > 1 {
			t.Fatalf("expF32(%g) = %g, exp = %g", d, got, want)
		}
		worse++
	}
	for range 1 << 20 {
		check(-r.Float32() * 110)
		check(-r.Float32() * 2)
	}
	for _, d := range []float32{0, -1e-30, -0.5, -0.34657359, -87.33655, -103.27893, -103.97208, -104, -110, -1e30} {
		check(d)
	}
	if expF32(float32(math.Inf(-1))) != 0 || expF32(0) != 1 || !math.IsNaN(float64(expF32(float32(math.NaN())))) {
		t.Fatal("expF32 at -Inf, 0, NaN")
	}
	if worse > n/100000 {
		t.Errorf("%d of %d values one ulp from the correctly rounded exp", worse, n)
	}
	t.Logf("%d of %d values one ulp from the correctly rounded exp", worse, n)
}

// Every set's exponentials and sum give the generic bits, for lengths
// around the sixteen-value step, with -Inf and NaN entries.
func TestExpSumSets(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	// ref is the generic steps over the whole slice at once.
	ref := func(x []float32, mx float32) float32 {
		var l [16]float32
		expLanesGeneric(x, mx, &l)
		return laneSum(&l)
	}
	withEachKernelSet(t, func(t *testing.T) {
		for _, n := range []int{1, 5, 15, 16, 17, 31, 32, 33, 100, 2049} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64() * 8)
			}
			if n > 3 {
				x[1] = float32(math.Inf(-1))
				x[2] = -200
			}
			mx := float32(math.Inf(-1))
			for _, v := range x {
				mx = max(mx, v)
			}
			want := append([]float32(nil), x...)
			wantSum := ref(want, mx)
			got := append([]float32(nil), x...)
			sum := expSum(got, mx)
			if math.Float32bits(sum) != math.Float32bits(wantSum) {
				t.Fatalf("n=%d: sum %v, generic %v", n, sum, wantSum)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("n=%d: exp[%d] = %v, generic %v", n, i, got[i], want[i])
				}
			}
		}
		nan := make([]float32, 16)
		nan[3] = float32(math.NaN())
		if expSum(nan, 0); !math.IsNaN(float64(nan[3])) || nan[0] != 1 {
			t.Fatalf("a NaN entry: %v", nan)
		}
	})
}

// Every set's Div rounds each quotient once, as the Go loop does: the same
// bits for every length around the vector widths, NaN, infinities and
// zeros included.
func TestDivSets(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	withEachKernelSet(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 33, 2049} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64() * 1e3)
			}
			if n > 4 {
				x[1], x[2], x[3] = float32(math.NaN()), float32(math.Inf(-1)), 0
			}
			for _, d := range []float32{8.944272, 3e-39, -7, float32(math.Inf(1))} {
				got, want := append([]float32(nil), x...), append([]float32(nil), x...)
				Div(got, d)
				divGeneric(want, d)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
						t.Fatalf("n=%d d=%v: [%d] %v, want %v", n, d, i, got[i], want[i])
					}
				}
			}
		}
	})
}

// Softmax gives the generic bits on every set: lengths around the vector
// steps, the largest value at either end, ties of +0 and −0 for the
// largest, −Inf entries, and a NaN (which makes every output NaN, as in
// the Go loop).
func TestSoftmaxSets(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	var cases [][]float32
	for _, n := range []int{1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 257} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 6)
		}
		cases = append(cases, x)
		y := append([]float32(nil), x...)
		y[n-1] = 40 // the largest last
		cases = append(cases, y)
		z := make([]float32, n)
		for i := range z {
			z[i] = -float32(r.Float64()) - 1
		}
		z[0], z[n-1] = float32(math.Copysign(0, -1)), 0 // -0 and +0 tie for the largest
		cases = append(cases, z)
		if n > 2 {
			w := append([]float32(nil), x...)
			w[1] = float32(math.Inf(-1))
			cases = append(cases, w)
			v := append([]float32(nil), x...)
			v[n/2] = float32(math.NaN())
			cases = append(cases, v)
		}
	}
	want := make([][]float32, len(cases))
	withEachKernelSet(t, func(t *testing.T) {
		for ci, c := range cases {
			got := append([]float32(nil), c...)
			Softmax(got)
			if want[ci] == nil { // the first set is the generic one
				want[ci] = got
				continue
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[ci][i]) && !(got[i] != got[i] && want[ci][i] != want[ci][i]) {
					t.Fatalf("case %d (n=%d): [%d] %v, generic %v", ci, len(c), i, got[i], want[ci][i])
				}
			}
		}
	})
}

func BenchmarkSoftmax(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range kernelSets() {
		for _, n := range []int{500, 2000} {
			src, x := make([]float32, n), make([]float32, n)
			for i := range src {
				src[i] = float32(r.NormFloat64() * 4)
			}
			b.Run(fmt.Sprintf("%s/n=%d", k.name, n), func(b *testing.B) {
				useKernels(b, k)
				for b.Loop() {
					copy(x, src)
					Softmax(x)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/value")
			})
		}
	}
}
