//go:build amd64 && !purego

package kernels

// geluAVX2 (8 lanes, AVX2+FMA) and geluAVX512 (16 lanes, AVX-512F) compute
// GELUNew in float32, doing the same operations in the same order on each
// lane, so the two give the same bits. For each x:
//
//	0.5·x·(1+tanh(u)) = x/(1+exp(−2u)),  u = √(2/π)·(x+0.044715x³)
//
// taken as (x·e)/(1+e) for x < 0 and x/(1+e) otherwise (one rounding where
// the result is large), with e = exp(a) and
// a = −2|u| = −|x|·(2√(2/π) + 2√(2/π)·0.044715·x²) ≤ 0, so that exp never
// overflows. exp(a): a is clamped to −88; n = round(a·log₂e) by adding
// 1.5·2²³+127, whose low mantissa bits are then n+127, shifted into the
// exponent field for 2ⁿ (0 for n = −127, that is for a ≤ −87.7);
// r = a − n·ln2 in two parts (the high part exact by FMA); and
// exp(r) = 1 + r + r²·q(r), q of degree 4 fitted (Remez) for the least
// maximum relative error on [−ln2/2, ln2/2], 3.8e−9 with the float32
// coefficients.
//
// Special values follow geluNewGeneric: ±0 → ±0, +Inf → +Inf, NaN → NaN,
// −Inf → NaN (−Inf·0, as the reference's 0.5·x·0), large positive x → x,
// and x ≤ −10.1 → −0 (e = 0 there).
//
// Over every float32 input, the largest difference from geluNewGeneric is
// 1.31e−7·max(1, |reference|), at x = 1.8798535 (about 2 ulp of the
// result); tests check 4e−7 (TestGELUExhaustive, with
// -kernels.gelu-exhaustive, tries all 2³² inputs).
//
// The tail (len mod 8, or mod 16) goes through masked loads and stores, so
// nothing outside x is read or written.

//go:noescape
func geluAVX2(x []float32)

//go:noescape
func geluAVX512(x []float32)
