package kernels

import (
	"encoding/binary"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"
)

var generic = flag.Bool("kernels.generic", false, "run the package's tests on the generic (pure-Go) kernels only")

func TestMain(m *testing.M) {
	flag.Parse()
	if *generic {
		active = genericKernels
	}
	os.Exit(m.Run())
}

// kernelSets is every kernel set this machine can run, generic first;
// with -kernels.generic, only the generic one.
func kernelSets() []kernelSet {
	if *generic {
		return []kernelSet{genericKernels}
	}
	return append([]kernelSet{genericKernels}, archKernels()...)
}

// genericX8 is the generic set reading the repacked layouts, as a set with
// x8 (or K x8) assembly does: it runs the x8 products (Repacked, planX8)
// with the reference kernels on every platform.
func genericX8() kernelSet {
	k := genericKernels
	k.name, k.x8, k.kx8 = "generic-x8", true, true
	return k
}

// withEachKernelSet runs f once per kernel set (and genericX8), with that
// set in use.
func withEachKernelSet(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, k := range append(kernelSets(), genericX8()) {
		t.Run(k.name, func(t *testing.T) {
			useKernels(t, k)
			f(t)
		})
	}
}

// useKernels makes k the set in use until t ends.
func useKernels(t testing.TB, k kernelSet) {
	prev := active
	active = k
	t.Cleanup(func() { active = prev })
}

// sameFunc reports whether f and g are the same function (a set that kept
// a generic kernel).
func sameFunc(f, g any) bool { return reflect.ValueOf(f).Pointer() == reflect.ValueOf(g).Pointer() }

// asmKernels is the best assembly set, or skips the test when there is none.
func asmKernels(t testing.TB) kernelSet {
	sets := kernelSets()
	if len(sets) < 2 {
		t.Skip("no assembly kernels on this machine (or -kernels.generic)")
	}
	return sets[1]
}

// dotLengths are 0 … twice the widest unroll (32 floats) + 1, and the real
// sizes.
func dotLengths() []int {
	var ns []int
	for n := 0; n <= 65; n++ {
		ns = append(ns, n)
	}
	return append(ns, 100, 203, 2560, 10240)
}

// randHalf is a random finite fp16 bit pattern, subnormals included.
func randHalf(r *rand.Rand) uint16 {
	for {
		h := uint16(r.Uint32())
		if h&0x7c00 != 0x7c00 && h&0x7fff < 0x5000 { // finite, |h| < 32
			return h
		}
	}
}

// absDot is Σ|a·b| in float64, the scale of a float dot's rounding error.
func absDot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += math.Abs(float64(a[i]) * float64(b[i]))
	}
	return s
}

func near(got, want float32, scale float64) bool {
	return math.Abs(float64(got)-float64(want)) <= 1e-6*scale
}

func TestDotKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, k := range kernelSets()[1:] {
		t.Run(k.name, func(t *testing.T) {
			for _, n := range dotLengths() {
				a, b := randVec(r, n), randVec(r, n)
				h, bf := make([]uint16, n), make([]uint16, n)
				ah, abf := make([]float32, n), make([]float32, n)
				for i := range h {
					h[i], bf[i] = randHalf(r), F32ToBF16(a[i])
					ah[i], abf[i] = F16ToF32(h[i]), BF16ToF32(bf[i])
				}
				if got, want := k.f32(a, b), dotF32Generic(a, b); !near(got, want, absDot(a, b)) {
					t.Errorf("dotF32 n=%d: %v, generic %v", n, got, want)
				}
				if got, want := k.f16(h, b), dotF16Generic(h, b); !near(got, want, absDot(ah, b)) {
					t.Errorf("dotF16 n=%d: %v, generic %v", n, got, want)
				}
				if got, want := k.bf16(bf, b), dotBF16Generic(bf, b); !near(got, want, absDot(abf, b)) {
					t.Errorf("dotBF16 n=%d: %v, generic %v", n, got, want)
				}
			}
			for _, blocks := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 80, 320} {
				w8, w4, x := randQ8_0(r, blocks, true), randQ4_0(r, blocks), randQ8_0(r, blocks, false)
				if got, want := k.q8_0.dot(w8, x), dotQ8_0Generic(w8, x); !near(got, want, absDotQ(Q8_0, w8, x)) {
					t.Errorf("dotQ8_0 %d blocks: %v, generic %v", blocks, got, want)
				}
				if got, want := k.q4_0.dot(w4, x), dotQ4_0Generic(w4, x); !near(got, want, absDotQ(Q4_0, w4, x)) {
					t.Errorf("dotQ4_0 %d blocks: %v, generic %v", blocks, got, want)
				}
				// With unit scales a product is its exact integer sum (below
				// 2^24 for up to 16 blocks), so both must agree exactly.
				if blocks > 16 {
					continue
				}
				setScales(w8, 34, 0x3c00)
				setScales(w4, 18, 0x3c00)
				setScales(x, 34, 0x3c00)
				if got, want := k.q8_0.dot(w8, x), dotQ8_0Generic(w8, x); got != want {
					t.Errorf("dotQ8_0 %d blocks, unit scales: %v, generic %v", blocks, got, want)
				}
				if got, want := k.q4_0.dot(w4, x), dotQ4_0Generic(w4, x); got != want {
					t.Errorf("dotQ4_0 %d blocks, unit scales: %v, generic %v", blocks, got, want)
				}
			}
		})
	}
}

// randQ8_0 is blocks random Q8_0 blocks with random scales. Weights use
// every byte; activations, like QuantizeQ8_0's, stay within ±127.
func randQ8_0(r *rand.Rand, blocks int, weights bool) []byte {
	q := make([]byte, blocks*34)
	for b := 0; b < blocks; b++ {
		binary.LittleEndian.PutUint16(q[b*34:], randHalf(r))
		for j := 2; j < 34; j++ {
			v := byte(r.Uint32())
			if !weights && v == 0x80 {
				v = 0x81
			}
			q[b*34+j] = v
		}
	}
	return q
}

func randQ4_0(r *rand.Rand, blocks int) []byte {
	q := make([]byte, blocks*18)
	for b := 0; b < blocks; b++ {
		binary.LittleEndian.PutUint16(q[b*18:], randHalf(r))
		for j := 2; j < 18; j++ {
			q[b*18+j] = byte(r.Uint32())
		}
	}
	return q
}

func setScales(q []byte, blockBytes int, h uint16) {
	for b := 0; b+blockBytes <= len(q); b += blockBytes {
		binary.LittleEndian.PutUint16(q[b:], h)
	}
}

// absDotQ is Σ|a·b| over the dequantized weights and activations.
func absDotQ(dt DType, w, x []byte) float64 {
	n := len(x) / 34 * QK
	a, b := make([]float32, n), make([]float32, n)
	DequantizeRow(dt, w, a)
	DequantizeRow(Q8_0, x, b)
	return absDot(a, b)
}

// The 16-bit dots and the tile kernel must give dotF32's bits on the same
// (widened) values, and the F16 tiles the F16 dot's: decode and prefill
// then agree exactly.
func TestDotBitIdentity(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, k := range kernelSets() {
		t.Run(k.name, func(t *testing.T) {
			for _, n := range dotLengths() {
				h, bf := make([]uint16, n), make([]uint16, n)
				wh, wbf := make([]float32, n), make([]float32, n)
				for i := range h {
					h[i], bf[i] = randHalf(r), uint16(r.Uint32())&0xbfff // finite bf16
					wh[i], wbf[i] = F16ToF32(h[i]), BF16ToF32(bf[i])
				}
				b := randVec(r, n)
				if got, want := k.f16(h, b), k.f32(wh, b); math.Float32bits(got) != math.Float32bits(want) {
					t.Errorf("n=%d: dotF16 %v, dotF32 of the widened row %v", n, got, want)
				}
				if got, want := k.bf16(bf, b), k.f32(wbf, b); math.Float32bits(got) != math.Float32bits(want) {
					t.Errorf("n=%d: dotBF16 %v, dotF32 of the widened row %v", n, got, want)
				}
				if k.tileParts == nil {
					continue
				}
				// One part over the whole row is the whole tile; the rest
				// tile likewise for every smaller token count.
				tr, tt := k.tileRows, k.tileTokens
				out := make([]float32, tileAccFloats)
				check := func(name string, hasRest bool, tile func(tokens int), dot func(i, tk int) float32) {
					for tokens := 1; tokens <= tt; tokens++ {
						if tokens < tt && !hasRest {
							continue
						}
						clear(out)
						tile(tokens)
						for tk := 0; tk < tokens; tk++ {
							for i := 0; i < tr; i++ {
								if got, want := out[tk*tr+i], dot(i, tk); math.Float32bits(got) != math.Float32bits(want) {
									t.Errorf("n=%d, %d tokens: %s tile row %d token %d: %v, dot %v", n, tokens, name, i, tk, got, want)
								}
							}
						}
					}
				}
				w, x := randVec(r, tr*n), randVec(r, tt*n)
				check("float32", k.tilePartsRest != nil, tileOrRest(k.tileParts, k.tilePartsRest, out, w, x, n, tt),
					func(i, tk int) float32 { return k.f32(w[i*n:(i+1)*n], x[tk*n:(tk+1)*n]) })
				if k.tilePartsH == nil || n%8 != 0 && k.tilePartsHAlign != 0 {
					continue
				}
				// The F16 tile and its rest tile for every token count.
				hw := make([]uint16, tr*n)
				for i := range hw {
					hw[i] = randHalf(r)
				}
				check("F16", k.tilePartsHRest != nil, tileOrRest(k.tilePartsH, k.tilePartsHRest, out, hw, x, n, tt),
					func(i, tk int) float32 { return k.f16(hw[i*n:(i+1)*n], x[tk*n:(tk+1)*n]) })
			}
		})
	}
}

// tileOrRest is one part (the last) of n columns over the tile's rows w
// for a number of tokens: the whole tile (parts) for tt tokens, the rest
// tile for fewer, as tileBlock calls them.
func tileOrRest[T float32 | uint16](parts func(acc []float32, w []T, x []float32, ld, n, flags, tiles int),
	rest func(acc []float32, w []T, x []float32, ld, n, flags, tokens int), out []float32, w []T, x []float32, n, tt int) func(tokens int) {
	return func(tokens int) {
		if tokens == tt {
			parts(out, w, x, n, n, tileLast, 1)
		} else {
			rest(out, w, x, n, n, tileLast, tokens)
		}
	}
}

// The quantized tiles must give the set's dotQ8_0 / dotQ4_0 bits for every
// pair: decode and prefill then agree exactly.
func TestQuantTileBitIdentity(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, k := range kernelSets() {
		if k.q8_0.tile == nil {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			tr, tt := k.qTileRows, k.qTileToks
			for _, blocks := range []int{0, 1, 2, 3, 4, 5, 7, 8, 80, 81} {
				x := randQ8_0(r, tt*blocks, false)
				for _, c := range []struct {
					name string
					bb   int
					w    []byte
					tile func(out []float32, w, x []byte, blocks int)
					dot  func(w, x []byte) float32
				}{
					{"Q8_0", 34, randQ8_0(r, tr*blocks, true), k.q8_0.tile, k.q8_0.dot},
					{"Q4_0", 18, randQ4_0(r, tr*blocks), k.q4_0.tile, k.q4_0.dot},
				} {
					out := make([]float32, tr*tt)
					c.tile(out, c.w, x, blocks)
					for tk := 0; tk < tt; tk++ {
						for i := 0; i < tr; i++ {
							want := c.dot(c.w[i*blocks*c.bb:(i+1)*blocks*c.bb], x[tk*blocks*34:(tk+1)*blocks*34])
							if got := out[tk*tr+i]; math.Float32bits(got) != math.Float32bits(want) {
								t.Errorf("%s %d blocks: tile row %d token %d: %v, dot %v", c.name, blocks, i, tk, got, want)
							}
						}
					}
				}
			}
		})
	}
}

// widenF16 must give f16Table's bits for every half but NaNs (signalling
// NaNs come back quiet), at every tail length.
func TestWidenF16(t *testing.T) {
	for _, k := range kernelSets() {
		if k.widenF16 == nil {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			src := make([]uint16, 1<<16)
			for i := range src {
				src[i] = uint16(i)
			}
			for _, n := range []int{0, 1, 7, 15, 16, 17, 31, 33, 1 << 16} {
				dst := make([]float32, n+1)
				dst[n] = 42
				k.widenF16(dst, src[len(src)-n:])
				for i, h := range src[len(src)-n:] {
					if isNaN(f16Table[h]) && isNaN(dst[i]) {
						continue
					}
					if math.Float32bits(dst[i]) != math.Float32bits(f16Table[h]) {
						t.Fatalf("n=%d: half %#04x widened to %#08x, want %#08x", n, h, math.Float32bits(dst[i]), math.Float32bits(f16Table[h]))
					}
				}
				if dst[n] != 42 {
					t.Fatalf("n=%d: wrote past the end", n)
				}
			}
		})
	}
}

// floats reads little-endian float32s.
func floats(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// comparable reports whether a float dot over these values can be checked
// against a tolerance: finite, and far from overflow and from underflow.
func comparable(a, b []float32) (scale float64, ok bool) {
	for i := range a {
		p := math.Abs(float64(a[i]) * float64(b[i]))
		if math.IsNaN(p) || math.IsInf(p, 0) || p > 1e30 || (p != 0 && p < 1e-30) {
			return 0, false
		}
		scale += p
	}
	return scale, scale < 1e30
}

func FuzzDotF32(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64})
	f.Add(make([]byte, 4*2*37))
	f.Fuzz(func(t *testing.T, data []byte) {
		k := asmKernels(t)
		v := floats(data)
		a, b := v[:len(v)/2], v[len(v)/2:len(v)/2*2]
		scale, ok := comparable(a, b)
		if !ok {
			return
		}
		if got, want := k.f32(a, b), dotF32Generic(a, b); !near(got, want, scale) {
			t.Errorf("n=%d: %v, generic %v", len(a), got, want)
		}
	})
}

func FuzzDotF16(f *testing.F) {
	f.Add([]byte{0, 60, 0, 0, 128, 63})
	f.Add(make([]byte, 6*41))
	f.Fuzz(func(t *testing.T, data []byte) {
		k := asmKernels(t)
		n := len(data) / 6
		a := make([]uint16, n)
		wa := make([]float32, n)
		for i := range a {
			a[i] = binary.LittleEndian.Uint16(data[2*i:])
			wa[i] = F16ToF32(a[i])
		}
		b := floats(data[2*n : 6*n])
		got := k.f16(a, b)
		if want := k.f32(wa, b); math.Float32bits(got) != math.Float32bits(want) && !(isNaN(got) && isNaN(want)) {
			t.Errorf("n=%d: %v, dotF32 of the widened row %v", n, got, want)
		}
		if scale, ok := comparable(wa, b); ok {
			if want := dotF16Generic(a, b); !near(got, want, scale) {
				t.Errorf("n=%d: %v, generic %v", n, got, want)
			}
		}
	})
}

func isNaN(f float32) bool { return f != f }

// FuzzDotQ4_0 takes blocks of 18 weight bytes and 34 activation bytes;
// scales are made finite.
func FuzzDotQ4_0(f *testing.F) {
	f.Add(make([]byte, 52))
	f.Add(make([]byte, 52*9))
	f.Fuzz(func(t *testing.T, data []byte) {
		k := asmKernels(t)
		blocks := len(data) / 52
		w := append([]byte(nil), data[:18*blocks]...)
		x := append([]byte(nil), data[18*blocks:52*blocks]...)
		finiteScales(w, 18)
		finiteScales(x, 34)
		if got, want := k.q4_0.dot(w, x), dotQ4_0Generic(w, x); !near(got, want, absDotQ(Q4_0, w, x)) {
			t.Errorf("%d blocks: %v, generic %v", blocks, got, want)
		}
	})
}

func finiteScales(q []byte, blockBytes int) {
	for b := 0; b+blockBytes <= len(q); b += blockBytes {
		q[b+1] &^= 0x40 // exponent below 31
	}
}

// FuzzDotQ8_0 takes blocks of 34 weight bytes and 34 activation bytes;
// scales are made finite and activations kept within ±127, as
// QuantizeQ8_0 produces them.
func FuzzDotQ8_0(f *testing.F) {
	f.Add(make([]byte, 68))
	f.Add(make([]byte, 68*9))
	f.Fuzz(func(t *testing.T, data []byte) {
		k := asmKernels(t)
		blocks := len(data) / 68
		w := append([]byte(nil), data[:34*blocks]...)
		x := append([]byte(nil), data[34*blocks:68*blocks]...)
		finiteScales(w, 34)
		finiteScales(x, 34)
		for b := 0; b < blocks; b++ {
			for j := 2; j < 34; j++ {
				if x[b*34+j] == 0x80 {
					x[b*34+j] = 0x81
				}
			}
		}
		if got, want := k.q8_0.dot(w, x), dotQ8_0Generic(w, x); !near(got, want, absDotQ(Q8_0, w, x)) {
			t.Errorf("%d blocks: %v, generic %v", blocks, got, want)
		}
	})
}

// BenchmarkTileParts is each set's float tiles (tileParts on F32 rows,
// tilePartsH on F16 rows) over one part of 1,024 columns from L1, three
// token tiles per call as a batch of 8–9 streams has them, on one core.
func BenchmarkTileParts(b *testing.B) {
	r := rand.New(rand.NewPCG(35, 36))
	const n = tilePartLength
	for _, k := range kernelSets() {
		if k.tileParts == nil {
			continue
		}
		const tiles = 3
		tr, tt := k.tileRows, k.tileTokens
		w := randVec(r, tr*n)
		h := make([]uint16, len(w))
		for i, v := range w {
			h[i] = F32ToF16(v)
		}
		x := randVec(r, tiles*tt*n)
		acc := make([]float32, tiles*tileAccFloats)
		flops := float64(2 * tr * tt * tiles * n)
		b.Run(k.name+"/F32", func(b *testing.B) {
			for b.Loop() {
				k.tileParts(acc, w, x, n, n, 0, tiles)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		if k.tilePartsH != nil {
			b.Run(k.name+"/F16", func(b *testing.B) {
				for b.Loop() {
					k.tilePartsH(acc, h, x, n, n, 0, tiles)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
