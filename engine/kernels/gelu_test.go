package kernels

import (
	"encoding/binary"
	"flag"
	"math"
	"math/rand/v2"
	"testing"
)

var geluExhaustive = flag.Bool("kernels.gelu-exhaustive", false, "check every GELU kernel on every float32 input (minutes)")

// geluTol is the accuracy every GELU kernel keeps against geluNewGeneric:
// |got − ref| ≤ geluTol·max(1, |ref|) for every finite input.
const geluTol = 4e-7

// geluKernel is one GELU implementation this machine runs.
type geluKernel struct {
	name string
	fn   func([]float32)
}

// geluKernels is every GELU kernel of kernelSets(), generic first (sets
// that keep the generic one add nothing); with -kernels.generic, only the
// generic one.
func geluKernels() []geluKernel {
	var ks []geluKernel
	for i, k := range kernelSets() {
		if i == 0 || !sameFunc(k.gelu, geluNewGeneric) {
			ks = append(ks, geluKernel{k.name, k.gelu})
		}
	}
	return ks
}

// geluRef is geluNewGeneric of a copy of x.
func geluRef(x []float32) []float32 {
	r := append([]float32(nil), x...)
	geluNewGeneric(r)
	return r
}

// geluErr is |got − want|/max(1, |want|), 0 when both are NaN or both the
// same infinity, and +Inf for any other mismatch of NaN or infinities.
func geluErr(got, want float32) float64 {
	g, w := float64(got), float64(want)
	switch {
	case math.IsNaN(w) || math.IsNaN(g):
		if math.IsNaN(w) && math.IsNaN(g) {
			return 0
		}
		return math.Inf(1)
	case math.IsInf(w, 0) || math.IsInf(g, 0):
		if g == w {
			return 0
		}
		return math.Inf(1)
	}
	return math.Abs(g-w) / max(1, math.Abs(w))
}

// geluInputs is a dense sweep of [−20, 20], every 65521st float32 bit
// pattern (all binades, subnormals, both signs), special values, and
// random values at several scales.
func geluInputs() []float32 {
	var in []float32
	for i := -20 * 4096; i <= 20*4096; i++ {
		in = append(in, float32(i)/4096)
	}
	for b := uint64(0); b < 1<<32; b += 65521 {
		in = append(in, math.Float32frombits(uint32(b)))
	}
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	for _, v := range []float32{
		0, 1, 0.5, 2, 3, 5, 9, 10, 10.5, 11, 20, 30, 100, 1e4, 1e10, 1e19, 1e20, 1e30,
		math.MaxFloat32, math.SmallestNonzeroFloat32, 1e-40, 1e-38, 1.17549435e-38,
		1e-20, 1e-7, 0.0001, inf,
	} {
		in = append(in, v, -v)
	}
	in = append(in, nan, -nan, math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00001))
	r := rand.New(rand.NewPCG(3, 4))
	for _, scale := range []float64{0.01, 0.3, 1, 3, 10, 1e3} {
		for range 10000 {
			in = append(in, float32(r.NormFloat64()*scale))
		}
	}
	for range 10000 {
		in = append(in, math.Float32frombits(r.Uint32()))
	}
	return in
}

func TestGELUAgainstReference(t *testing.T) {
	in := geluInputs()
	want := geluRef(in)
	for _, k := range geluKernels() {
		got := append([]float32(nil), in...)
		k.fn(got)
		worst, at := 0.0, float32(0)
		for i, x := range in {
			if e := geluErr(got[i], want[i]); e > worst {
				worst, at = e, x
			}
			if x == 0 && math.Float32bits(got[i]) != math.Float32bits(x) {
				t.Errorf("%s: gelu(%v) = %v", k.name, x, got[i])
			}
		}
		if worst > geluTol {
			t.Errorf("%s: gelu(%v) = %v, reference %v: error %.3g > %g",
				k.name, at, got[indexOf(in, at)], want[indexOf(in, at)], worst, geluTol)
		}
		t.Logf("%s: worst error %.3g at %v", k.name, worst, at)
	}
}

func indexOf(s []float32, v float32) int {
	for i, x := range s {
		if math.Float32bits(x) == math.Float32bits(v) {
			return i
		}
	}
	return -1
}

// TestGELUSpecial pins the values the kernels must give exactly.
func TestGELUSpecial(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, k := range geluKernels() {
		for _, c := range []struct{ x, want float32 }{
			{0, 0}, {inf, inf}, {1e30, 1e30}, {math.MaxFloat32, math.MaxFloat32}, {20, 20},
		} {
			x := []float32{c.x}
			k.fn(x)
			if x[0] != c.want {
				t.Errorf("%s: gelu(%v) = %v, want %v", k.name, c.x, x[0], c.want)
			}
		}
		for _, v := range []float32{-20, -1e4, -1e30, -math.MaxFloat32} {
			x := []float32{v}
			k.fn(x)
			if x[0] > 0 || x[0] < -1e-30 {
				t.Errorf("%s: gelu(%v) = %v, want −0 or tiny", k.name, v, x[0])
			}
		}
		x := []float32{float32(math.NaN()), -inf, float32(math.Copysign(0, -1))}
		k.fn(x)
		if !math.IsNaN(float64(x[0])) || !math.IsNaN(float64(x[1])) || math.Float32bits(x[2]) != 1<<31 {
			t.Errorf("%s: gelu(NaN, −Inf, −0) = %v", k.name, x)
		}
		if k.name != "generic" {
			// The assembly kernels' exp is exactly 0 from here down.
			x := []float32{-10.1, -11, -1e20, -math.MaxFloat32}
			k.fn(x)
			for _, v := range x {
				if math.Float32bits(v) != 1<<31 {
					t.Errorf("%s: gelu(x ≤ −10.1) = %v, want −0", k.name, x)
					break
				}
			}
		}
	}
}

// TestGELULengths runs every length 0…67 at several offsets, so every
// loop and tail path runs: the values must be the kernel's own results on
// a long slice, bit for bit, and nothing outside the slice may change.
func TestGELULengths(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const guard = 19
	canary := math.Float32frombits(0x7fa5a5a5) // a NaN no kernel produces
	for _, k := range geluKernels() {
		for n := 0; n <= 67; n++ {
			for off := 0; off < 3; off++ {
				src := randVec(r, n)
				for i := range src {
					src[i] *= 4
				}
				whole := append(append([]float32(nil), src...), randVec(r, 64)...)
				k.fn(whole)
				buf := make([]float32, off+n+guard)
				for i := range buf {
					buf[i] = canary
				}
				copy(buf[off:], src)
				k.fn(buf[off : off+n])
				for i := range buf {
					if i >= off && i < off+n {
						if math.Float32bits(buf[i]) != math.Float32bits(whole[i-off]) {
							t.Errorf("%s n=%d off=%d: [%d] = %v, long slice gives %v", k.name, n, off, i-off, buf[i], whole[i-off])
						}
					} else if math.Float32bits(buf[i]) != 0x7fa5a5a5 {
						t.Errorf("%s n=%d off=%d: wrote buf[%d] outside the slice", k.name, n, off, i)
					}
				}
			}
		}
	}
}

// TestGELUKernelsAgree checks that the assembly kernels give the same bits
// as one another (they do the same operations lane by lane).
func TestGELUKernelsAgree(t *testing.T) {
	ks := geluKernels()
	if len(ks) < 3 {
		t.Skip("fewer than two assembly GELU kernels on this machine")
	}
	in := geluInputs()
	first := append([]float32(nil), in...)
	ks[1].fn(first)
	for _, k := range ks[2:] {
		got := append([]float32(nil), in...)
		k.fn(got)
		for i := range got {
			a, b := got[i], first[i]
			if math.Float32bits(a) != math.Float32bits(b) && !(a != a && b != b) {
				t.Fatalf("gelu(%v): %s %v, %s %v", in[i], k.name, a, ks[1].name, b)
			}
		}
	}
}

// TestGELUNewInstalled checks that GELUNew runs the GELU of the set in use
// (under -kernels.generic, the generic one), bit for bit.
func TestGELUNewInstalled(t *testing.T) {
	in := geluInputs()
	check := func(name string, kernel func([]float32)) {
		t.Helper()
		want := append([]float32(nil), in...)
		kernel(want)
		got := append([]float32(nil), in...)
		GELUNew(got)
		for i := range got {
			a, b := got[i], want[i]
			if math.Float32bits(a) != math.Float32bits(b) && !(a != a && b != b) {
				t.Fatalf("%s: GELUNew(%v) = %v, its kernel gives %v", name, in[i], a, b)
			}
		}
	}
	if *generic {
		check("-kernels.generic", geluNewGeneric)
	}
	for _, k := range kernelSets() {
		t.Run(k.name, func(t *testing.T) {
			useKernels(t, k)
			check(k.name, k.gelu)
		})
	}
}

// TestGELUExhaustive checks every float32 input (with
// -kernels.gelu-exhaustive; it takes minutes).
func TestGELUExhaustive(t *testing.T) {
	if !*geluExhaustive {
		t.Skip("needs -kernels.gelu-exhaustive")
	}
	ks := geluKernels()
	worst := make([]float64, len(ks))
	at := make([]float32, len(ks))
	const chunk = 1 << 16
	in := make([]float32, chunk)
	got := make([]float32, chunk)
	for base := uint64(0); base < 1<<32; base += chunk {
		for i := range in {
			in[i] = math.Float32frombits(uint32(base) + uint32(i))
		}
		want := geluRef(in)
		for j, k := range ks[1:] {
			copy(got, in)
			k.fn(got)
			for i := range got {
				if e := geluErr(got[i], want[i]); e > worst[j+1] {
					worst[j+1], at[j+1] = e, in[i]
				}
			}
		}
	}
	for j, k := range ks[1:] {
		t.Logf("%s: worst error %.4g at %v (0x%08x)", k.name, worst[j+1], at[j+1], math.Float32bits(at[j+1]))
		if worst[j+1] > geluTol {
			t.Errorf("%s: worst error %.4g > %g", k.name, worst[j+1], geluTol)
		}
	}
}

// FuzzGELU compares every kernel with the reference on the fuzzer's
// float32s (little-endian, any count, so every tail runs).
func FuzzGELU(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x3f})
	f.Add(binary.LittleEndian.AppendUint32(nil, math.Float32bits(-3.5)))
	f.Add(make([]byte, 4*37))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := make([]float32, len(b)/4)
		for i := range in {
			in[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		want := geluRef(in)
		for _, k := range geluKernels() {
			got := append([]float32(nil), in...)
			k.fn(got)
			for i := range got {
				if geluErr(got[i], want[i]) > geluTol {
					t.Fatalf("%s: gelu(%v) = %v, reference %v", k.name, in[i], got[i], want[i])
				}
			}
		}
	})
}

// BenchmarkGELU is one token's MLP activation of the full-size model
// (10240 values); each iteration first copies the input back (about
// 0.4 µs of it), as GELUNew works in place.
func BenchmarkGELU(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	x := randVec(r, 10240)
	buf := make([]float32, len(x))
	for _, k := range geluKernels() {
		b.Run(k.name, func(b *testing.B) {
			b.SetBytes(4 * int64(len(x)))
			for b.Loop() {
				copy(buf, x)
				k.fn(buf)
			}
		})
	}
}
