package kernels

import "math"

// Softmax's exponentials. Every set computes them the same way, so a
// softmax has the same bits on every CPU: exp(x − max) in float64 —
// clamped at −120 (below that exp rounds to 0 in float32), k = x·log2(e)
// rounded to even, r = x − k·ln2 in two fused steps (ln2 split in two),
// exp(r) by Horner's rule over the Taylor coefficients 1/10! … 1/0!, each
// step fused (|r| ≤ ln2/2, so the truncation is below 2.3e-13 relative),
// times 2^k — then rounded to float32. The sum adds value i into lane
// i mod 16 of sixteen float32 lanes and those as ((l0+l8)+(l4+l12)) + …,
// the order of the AVX-512 kernel (softmax_amd64.s).

// expCoef is 1/i! for i = 0 … 10.
var expCoef = [11]float64{1, 1, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
	1.0 / 40320, 1.0 / 362880, 1.0 / 3628800}

const (
	expLog2E = 1.4426950408889634
	expLn2Hi = 6.93147180369123816490e-01
	expLn2Lo = 1.90821492927058770002e-10
	expMin   = -120
)

// expF32 is exp(d) by the steps above.
func expF32(d float32) float32 {
	x := float64(d)
	if expMin > x { // NaN stays NaN
		x = expMin
	}
	k := math.RoundToEven(x * expLog2E)
	x = math.FMA(-k, expLn2Hi, x)
	x = math.FMA(-k, expLn2Lo, x)
	p := expCoef[10]
	for i := 9; i >= 0; i-- {
		p = math.FMA(p, x, expCoef[i])
	}
	return float32(p * math.Float64frombits(uint64(int64(k)+1023)<<52))
}

// expSum replaces each x[i] by expF32(x[i] − mx) and returns their sum
// in the lanes' order: whole steps of sixteen by the set's kernel, the
// rest here.
func expSum(x []float32, mx float32) float32 {
	var l [16]float32
	n := len(x) &^ 15
	active.expLanes(x[:n], mx, &l)
	expLanesGeneric(x[n:], mx, &l) // n is whole steps: value n+i goes to lane i
	return laneSum(&l)
}

// laneSum adds the sixteen lanes as HSUM16 does: ((l0+l8)+(l4+l12)) + ….
func laneSum(l *[16]float32) float32 {
	for i := 0; i < 8; i++ {
		l[i] += l[i+8]
	}
	return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

// maxValue is the largest value of x, −Inf if none (a NaN never wins): the
// set's kernel over whole vector steps, the rest here. Which of +0 and −0
// it returns when both are the largest may depend on the set; the softmax
// does not: exp(v − mx) differs only for v = ±0, where both give 1.
func maxValue(x []float32) float32 {
	n := len(x) &^ 15
	mx := active.max(x[:n])
	if t := maxGeneric(x[n:]); t > mx {
		mx = t
	}
	return mx
}

func maxGeneric(x []float32) float32 {
	mx := float32(math.Inf(-1))
	for _, v := range x {
		if v > mx {
			mx = v
		}
	}
	return mx
}

// Div sets x[i] /= d for every i: attention's scaling of its scores and
// the softmax's normalization, a vector division where the set has one.
func Div(x []float32, d float32) { active.div(x, d) }

func divGeneric(x []float32, d float32) {
	for i := range x {
		x[i] /= d
	}
}

// expLanesGeneric is the kernel for len(x) a multiple of 16: each x[i]
// replaced by expF32(x[i] − mx) and added to l[i mod 16].
func expLanesGeneric(x []float32, mx float32, l *[16]float32) {
	for i, v := range x {
		e := expF32(v - mx)
		x[i] = e
		l[i&15] += e
	}
}
