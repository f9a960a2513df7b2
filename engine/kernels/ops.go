package kernels

import "math"

// LayerNorm normalizes each row of x (rows of len(w)) into dst:
// (x-mean)/sqrt(var+eps)*w + b, with the biased variance as torch computes
// it. Statistics accumulate in float64. dst may alias x.
func LayerNorm(dst, x, w, b []float32, eps float32) {
	n := len(w)
	for r := 0; r+n <= len(x); r += n {
		row := x[r : r+n]
		var sum float64
		for _, v := range row {
			sum += float64(v)
		}
		mean := sum / float64(n)
		var ss float64
		for _, v := range row {
			d := float64(v) - mean
			ss += d * d
		}
		inv := 1 / math.Sqrt(ss/float64(n)+float64(eps))
		out := dst[r : r+n]
		m32, inv32 := float32(mean), float32(inv)
		for i, v := range row {
			out[i] = (v-m32)*inv32*w[i] + b[i]
		}
	}
}

// GELUNewPool is GELUNew spread over the pool's threads.
func GELUNewPool(p *Pool, x []float32) {
	const chunk = 4096
	n := (len(x) + chunk - 1) / chunk
	p.Run(n, func(_, c int) {
		GELUNew(x[c*chunk : min((c+1)*chunk, len(x))])
	})
}

// GELUNew applies the tanh approximation of GELU ("gelu_new") in place,
// 0.5·x·(1+tanh(√(2/π)(x+0.044715x³))), with the kernel chosen at start-up
// (kernelSet.gelu).
func GELUNew(x []float32) { active.gelu(x) }

// geluNewGeneric is the reference GELUNew, in float64 rounded to float32;
// the assembly kernels are tested against it.
func geluNewGeneric(x []float32) {
	const c = 0.7978845608028654 // sqrt(2/pi)
	for i, v := range x {
		f := float64(v)
		x[i] = float32(0.5 * f * (1 + math.Tanh(c*(f+0.044715*f*f*f))))
	}
}

// Softmax replaces x by its softmax, in float32 like torch: exp(x − max)
// by one recipe in every set (softmax.go: within an ulp of float32's exp,
// the same bits on every CPU), summed in sixteen lanes, each divided by the
// sum; the maximum, the exponentials and the divisions vectorized where the
// set has them. Entries equal to -Inf get probability 0.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	Div(x, expSum(x, maxValue(x)))
}

// Axpy computes y += a*x.
func Axpy(y []float32, a float32, x []float32) { active.axpy(y, a, x) }

func axpyGeneric(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += float32(a * x[i]) // rounded product: never fused into an FMA
	}
}
