package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

var kTypes = []DType{Q4_K, Q5_K, Q6_K}

func quantizeK(d DType, x []float32) []byte {
	dst := make([]byte, d.RowBytes(len(x)))
	switch d {
	case Q4_K:
		QuantizeQ4_K(dst, x)
	case Q5_K:
		QuantizeQ5_K(dst, x)
	case Q6_K:
		QuantizeQ6_K(dst, x)
	}
	return dst
}

func roundTripK(d DType, x []float32) []float32 {
	y := make([]float32, len(x))
	DequantizeRow(d, quantizeK(d, x), y)
	return y
}

// relRMSE is the RMS error of y against x relative to x's RMS.
func relRMSE(x, y []float32) float64 {
	var se, ss float64
	for i := range x {
		d := float64(y[i]) - float64(x[i])
		se += d * d
		ss += float64(x[i]) * float64(x[i])
	}
	return math.Sqrt(se / ss)
}

// kBounds are the documented round-trip error bounds (RMS error relative to
// the data's RMS) on Gaussian data; docs/quantization.md quotes them.
var kBounds = map[DType]float64{Q4_K: 0.085, Q5_K: 0.042, Q6_K: 0.02}

// The quantizers' output dequantizes through ggml's layouts to within each
// type's error bound, whatever the data's scale and offset.
func TestQuantizeKRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 64 * QKK
	gauss := make([]float32, n)
	for i := range gauss {
		gauss[i] = float32(rng.NormFloat64())
	}
	for _, d := range kTypes {
		for _, tc := range []struct {
			name         string
			scale, shift float32
			bound        float64
		}{
			{"N(0,1)", 1, 0, kBounds[d]},
			{"N(0,1e-3)", 1e-3, 0, kBounds[d]},
			{"N(0,300)", 300, 0, kBounds[d]},
			// An offset is the affine types' strength, Q6_K's weakness
			// (its RMS then is mostly the offset, so it stays in bound).
			{"N(2,1)", 1, 2, kBounds[d]},
		} {
			x := make([]float32, n)
			for i, v := range gauss {
				x[i] = v*tc.scale + tc.shift*tc.scale
			}
			got := relRMSE(x, roundTripK(d, x))
			t.Logf("%v %s: relative RMSE %.4f (bound %.3f)", d, tc.name, got, tc.bound)
			if got > tc.bound || math.IsNaN(got) {
				t.Errorf("%v %s: relative RMSE %.4f above %.3f", d, tc.name, got, tc.bound)
			}
		}
	}
}

// Zero blocks come back as zeros, bit for bit; constant blocks come back
// constant, to fp16 precision. (For small constants the super-block factor,
// c/(63·15) for a positive Q4_K block, c/(127·32) for Q6_K, is an fp16
// subnormal and the precision coarser, as in ggml.)
func TestQuantizeKConstantBlocks(t *testing.T) {
	for _, d := range kTypes {
		for _, c := range []float32{0, 1, -1, 0.37, -1234.5, 0.3, -0.03, 60000} {
			x := make([]float32, 2*QKK)
			for i := range x {
				x[i] = c
			}
			y := roundTripK(d, x)
			for i, v := range y {
				if c == 0 {
					if math.Float32bits(v) != 0 {
						t.Fatalf("%v zero block: y[%d] = %v", d, i, v)
					}
					continue
				}
				if v != y[0] || math.Abs(float64(v-c)) > 2e-3*math.Abs(float64(c)) {
					t.Fatalf("%v constant %v: y[%d] = %v (y[0] = %v)", d, c, i, v, y[0])
				}
			}
		}
	}
}

// Values no model holds (huge, tiny, non-finite, wildly mixed scales) still
// quantize to blocks that dequantize to finite numbers.
func TestQuantizeKExtremes(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	cases := map[string]func(i int) float32{
		"max float":   func(i int) float32 { return math.MaxFloat32 * float32(1-2*(i%2)) },
		"1e30 spikes": func(i int) float32 { return map[bool]float32{true: 1e30, false: 1e-3}[i%37 == 0] },
		"subnormal":   func(i int) float32 { return math.SmallestNonzeroFloat32 * float32(i%5) },
		"tiny":        func(i int) float32 { return 1e-12 * float32(i%7-3) },
		"inf and nan": func(i int) float32 { return []float32{inf, -inf, nan, 1}[i%4] },
		"one spike":   func(i int) float32 { return map[bool]float32{true: -7e4, false: 0.01}[i == 100] },
	}
	for name, f := range cases {
		x := make([]float32, 2*QKK)
		for i := range x {
			x[i] = f(i)
		}
		for _, d := range kTypes {
			for i, v := range roundTripK(d, x) {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%v %s: y[%d] = %v", d, name, i, v)
				}
			}
		}
	}
}

// A block that the dequantizer produced from arbitrary scales quantizes
// back to nearly the same values: the layouts of the two directions agree
// field by field, not just on average.
func TestQuantizeKInvertsDequantize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, d := range kTypes {
		worst := 0.0
		for trial := 0; trial < 50; trial++ {
			blk := make([]byte, d.BlockBytes())
			for i := range blk {
				blk[i] = byte(rng.Uint32())
			}
			// Sane fp16 factors: d in [0.001, 0.01), dmin likewise.
			if d == Q6_K {
				binary.LittleEndian.PutUint16(blk[208:], F32ToF16(0.001+0.009*rng.Float32()))
			} else {
				binary.LittleEndian.PutUint16(blk[0:], F32ToF16(0.001+0.009*rng.Float32()))
				binary.LittleEndian.PutUint16(blk[2:], F32ToF16(0.001+0.009*rng.Float32()))
			}
			x := make([]float32, QKK)
			DequantizeRow(d, blk, x)
			worst = max(worst, relRMSE(x, roundTripK(d, x)))
		}
		t.Logf("%v: worst relative RMSE re-quantizing dequantized blocks %.4f", d, worst)
		if worst > kBounds[d]/2 {
			t.Errorf("%v: re-quantizing a dequantized block gives relative RMSE %.4f", d, worst)
		}
	}
}

// Quantize → dequantize never panics and stays finite.
func FuzzQuantizeK(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63}, uint8(0))
	f.Add([]byte{0xff, 0xff, 0x7f, 0x7f, 0, 0, 0x80, 0xff, 1, 0, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, raw []byte, mode uint8) {
		x := make([]float32, QKK*(1+int(mode)%2))
		for i := range x {
			if len(raw) >= 4 {
				j := (4 * i) % (len(raw) - len(raw)%4)
				x[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[j:]))
			}
		}
		for _, d := range kTypes {
			for i, v := range roundTripK(d, x) {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%v: y[%d] = %v", d, i, v)
				}
			}
		}
	})
}

func BenchmarkQuantizeK(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 2560)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, d := range kTypes {
		b.Run(d.String(), func(b *testing.B) {
			dst := make([]byte, d.RowBytes(len(x)))
			b.SetBytes(int64(4 * len(x)))
			for range b.N {
				quantizeKRow(d, dst, x)
			}
		})
	}
}
