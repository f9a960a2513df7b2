package kernels

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

var kDotTypes = []DType{Q4_K, Q5_K, Q6_K}

// randKRow is nb random super-blocks of dt: any bytes are a valid K-quant
// super-block, but for the fp16 scales, which are finite (randHalf, times
// 2^e when scaleExp is not 0, to reach extreme values).
func randKRow(r *rand.Rand, dt DType, nb, scaleExp int) []byte {
	bb := dt.BlockBytes()
	w := make([]byte, nb*bb)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	half := func() uint16 {
		h := randHalf(r)
		if scaleExp != 0 {
			h = F32ToF16(F16ToF32(h) * float32(math.Ldexp(1, scaleExp)))
			if h&0x7c00 == 0x7c00 {
				h = 0x7bff | h&0x8000 // the largest finite fp16, kept signed
			}
		}
		return h
	}
	for b := 0; b < nb; b++ {
		blk := w[b*bb:]
		if dt == Q6_K {
			binary.LittleEndian.PutUint16(blk[208:], half())
		} else {
			binary.LittleEndian.PutUint16(blk[0:], half())
			binary.LittleEndian.PutUint16(blk[2:], half())
		}
	}
	return w
}

// randActs is n activations of magnitude about scale.
func randActs(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * scale)
	}
	return x
}

func q8K(x []float32) []byte {
	out := make([]byte, len(x)/QKK*q8KBytes)
	quantizeQ8K(out, x)
	return out
}

// kLengths are the super-blocks per row the table tests use: 1…5, and the
// real sizes 2,560 and 10,240 columns.
var kLengths = []int{1, 2, 3, 4, 5, 10, 40}

// Every set's K-quant dots give the generic ones' bits.
func TestKQuantDots(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	for _, k := range kernelSets() {
		for _, dt := range kDotTypes {
			for _, nb := range kLengths {
				for _, ext := range [][2]float64{{0, 1}, {0, 1e-30}, {0, 1e30}, {12, 1e5}, {-24, 1e-5}, {14, 3e38}} {
					name := fmt.Sprintf("%s/%v/%d/%g", k.name, dt, nb*QKK, ext)
					w := randKRow(r, dt, nb, int(ext[0]))
					x := q8K(randActs(r, nb*QKK, ext[1]))
					got, want := k.kquant(dt).dot(w, x), genericKernels.kquant(dt).dot(w, x)
					if !sameBits(got, want) {
						t.Errorf("%s: %v, generic %v", name, got, want)
					}
				}
			}
		}
	}
}

// dotKRef is the dequantized row times the dequantized activations in
// float64, and Σ|w|·d_x/2 over the row, which bounds the effect of
// quantizing the activations.
func dotKRef(dt DType, w []byte, x []float32) (dot, tol float64) {
	wf := make([]float32, len(x))
	DequantizeRow(dt, w, wf)
	for b := 0; b < len(x)/QKK; b++ {
		var amax float64
		for _, v := range x[b*QKK : (b+1)*QKK] {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		for i := b * QKK; i < (b+1)*QKK; i++ {
			dot += float64(wf[i]) * float64(x[i])
			tol += math.Abs(float64(wf[i])) * amax / 127 / 2
		}
	}
	return dot, tol
}

// The generic dots are the float product within the activations'
// quantization error (and float32 rounding).
func TestKQuantDotAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(53, 54))
	for _, dt := range kDotTypes {
		for _, nb := range kLengths {
			for i := 0; i < 5; i++ {
				w := randKRow(r, dt, nb, 0)
				x := randActs(r, nb*QKK, 1)
				want, tol := dotKRef(dt, w, x)
				got := genericKernels.kquant(dt).dot(w, q8K(x))
				if d := math.Abs(float64(got) - want); d > tol*1.001+math.Abs(want)*1e-5 {
					t.Errorf("%v, %d values: %v, float %v (|Δ| %g, bound %g)", dt, nb*QKK, got, want, d, tol)
				}
			}
		}
	}
}

// The integer dots are exact: unit activations at one position pick out
// one dequantized weight (up to the float32 rounding of d·sc).
func TestKQuantDotPicksWeight(t *testing.T) {
	r := rand.New(rand.NewPCG(55, 56))
	for _, dt := range kDotTypes {
		w := randKRow(r, dt, 2, 0)
		wf := make([]float32, 2*QKK)
		DequantizeRow(dt, w, wf)
		for _, i := range []int{0, 1, 15, 16, 31, 32, 63, 64, 100, 127, 128, 200, 255, 256, 300, 511} {
			x := make([]float32, 2*QKK)
			x[i] = 127 // d_x = 1, q = 127
			got := genericKernels.kquant(dt).dot(w, q8K(x)) / 127
			if d := math.Abs(float64(got - wf[i])); d > 1e-6*math.Abs(float64(wf[i]))+1e-30 {
				t.Errorf("%v: element %d: %v, dequantized %v", dt, i, got, wf[i])
			}
		}
	}
}

// The Q8_K activations: |q| ≤ 127, q·d within d/2 of x, block sums right.
func TestQuantizeQ8K(t *testing.T) {
	r := rand.New(rand.NewPCG(57, 58))
	for _, scale := range []float64{0, 1e-44, 1e-38, 1e-5, 1, 1e30, 3e38} {
		x := randActs(r, 3*QKK, scale)
		q := q8K(x)
		for b := 0; b < 3; b++ {
			xb := q[b*q8KBytes:]
			d := float64(q8KScale(xb))
			for g := 0; g < QKK/kSubSumVals; g++ {
				var s int32
				for i := g * kSubSumVals; i < (g+1)*kSubSumVals; i++ {
					v := int8(xb[q8KQuants+i])
					if v == -128 {
						t.Fatalf("scale %g: q = −128", scale)
					}
					s += int32(v)
					if e := math.Abs(float64(v)*d - float64(x[b*QKK+i])); e > d/2*1.0001+1e-43 { // a subnormal d is coarse
						t.Fatalf("scale %g: element %d: %d·%g, x = %g", scale, i, v, d, x[b*QKK+i])
					}
				}
				if s != q8KSum(xb, g) {
					t.Fatalf("scale %g: block sum %d = %d, want %d", scale, g, q8KSum(xb, g), s)
				}
			}
		}
	}
}

// A K-quant product gives each (row, token) the dot's bits, whether the
// token is alone (decode) or in a batch (prefill), in every set.
func TestKQuantMatMulBitIdentity(t *testing.T) {
	withEachKernelSet(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(59, 60))
		pool := NewPool(3)
		defer pool.Close()
		for _, dt := range kDotTypes {
			for _, shape := range [][3]int{{1, 256, 1}, {37, 512, 3}, {20, 2560, 7}} {
				rows, cols, tokens := shape[0], shape[1], shape[2]
				m := Matrix{DType: dt, Rows: rows, Cols: cols, Data: randKRow(r, dt, rows*cols/QKK, 0)}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
				m = m.Repacked() // groups of eight rows packed where the set reads them so
				defer m.Free()
				x := randActs(r, tokens*cols, 1)
				bias := randActs(r, rows, 1)
				y := make([]float32, tokens*rows)
				MatMul(pool, y, m, x, bias, tokens)
				one := make([]float32, rows)
				for tk := 0; tk < tokens; tk++ {
					xt := x[tk*cols : (tk+1)*cols]
					MatMul(pool, one, m, xt, bias, 1)
					xq := q8K(xt)
					for i := 0; i < rows; i++ {
						want := float32(active.kquant(dt).dot(m.rowData(i), xq)) + bias[i]
						if !sameBits(y[tk*rows+i], one[i]) || !sameBits(one[i], want) {
							t.Fatalf("%v %dx%d×%d: y[%d][%d] = %v batched, %v alone, dot %v", dt, rows, cols, tokens, tk, i, y[tk*rows+i], one[i], want)
						}
					}
				}
			}
		}
	})
}

// FuzzDotK fuzzes every set's K-quant dots against the generic ones: the
// data is a type byte, the weights' super-blocks and the activations (as
// float32 values).
func FuzzDotK(f *testing.F) {
	f.Add(byte(0), make([]byte, 144+4*256))
	f.Add(byte(1), make([]byte, 2*(176+4*256)))
	f.Add(byte(2), make([]byte, 3*(210+4*256)))
	f.Fuzz(func(t *testing.T, typ byte, data []byte) {
		dt := kDotTypes[int(typ)%len(kDotTypes)]
		per := dt.BlockBytes() + 4*QKK
		nb := len(data) / per
		w := data[:nb*dt.BlockBytes()]
		x := make([]float32, nb*QKK)
		for i := range x {
			v := math.Float32frombits(binary.LittleEndian.Uint32(data[len(w)+4*i:]))
			if v != v || math.IsInf(float64(v), 0) {
				v = 0
			}
			x[i] = v
		}
		xq := q8K(x)
		want := genericKernels.kquant(dt).dot(w, xq)
		for _, k := range kernelSets()[1:] {
			if got := k.kquant(dt).dot(w, xq); !sameBits(got, want) {
				t.Errorf("%s %v, %d super-blocks: %v, generic %v", k.name, dt, nb, got, want)
			}
			if tile := k.kquant(dt).tile; tile != nil { // the same activations for every token
				out := make([]float32, kTileToks)
				tile(out, w, bytes.Repeat(xq, kTileToks), nb)
				for tk, got := range out {
					if !sameBits(got, want) {
						t.Errorf("%s %v tile, %d super-blocks, token %d: %v, generic %v", k.name, dt, nb, tk, got, want)
					}
				}
			}
		}
	})
}

// BenchmarkKQuantMatVec is the decode product with K-quant weights (random
// super-blocks), beside Q4_0 for comparison, each set in turn: weight bytes
// streamed per second.
func BenchmarkKQuantMatVec(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	rows, cols := 10240, 2560
	for _, k := range kernelSets() {
		for _, dt := range []DType{Q4_0, Q4_K, Q5_K, Q6_K} {
			for _, packed := range []bool{false, true} {
				if packed && (dt == Q4_0 || !k.kx8) {
					continue
				}
				name := fmt.Sprintf("%s/%v", k.name, dt)
				if packed {
					name += "/x8"
				}
				b.Run(name, func(b *testing.B) {
					useKernels(b, k)
					var m Matrix
					if dt == Q4_0 {
						m = benchMatrix(dt, rows, cols, randVec(r, rows*cols))
					} else {
						m = Matrix{DType: dt, Rows: rows, Cols: cols, Data: randKRow(r, dt, rows*cols/QKK, 0)}
						if packed {
							m = m.Repacked()
							defer m.Free()
						}
					}
					x, y := randVec(r, cols), make([]float32, rows)
					p := NewPool(2)
					defer p.Close()
					for b.Loop() {
						MatVec(p, y, m, x, nil)
					}
					b.ReportMetric(float64(len(m.Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
		}
	}
}

// BenchmarkKQuantMatVecDRAM is BenchmarkKQuantMatVec over enough matrices
// (about 400 MB) that each product streams its weights from memory, as in
// decode, rather than from the last-level cache: packed matrices, each set
// in turn. Compare its GB/s with BenchmarkReadBandwidth's in the same run.
func BenchmarkKQuantMatVecDRAM(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	rows, cols := 10240, 2560
	for _, k := range kernelSets() {
		if !k.kx8 {
			continue
		}
		for _, dt := range kDotTypes {
			b.Run(fmt.Sprintf("%s/%v", k.name, dt), func(b *testing.B) {
				useKernels(b, k)
				n := 400e6 / (rows * cols / QKK * dt.BlockBytes())
				ms := make([]Matrix, n)
				for i := range ms {
					ms[i] = Matrix{DType: dt, Rows: rows, Cols: cols, Data: randKRow(r, dt, rows*cols/QKK, 0)}.Repacked()
					defer ms[i].Free()
				}
				x, y := randVec(r, cols), make([]float32, rows)
				p := NewPool(2)
				defer p.Close()
				i := 0
				for b.Loop() {
					MatVec(p, y, ms[i%n], x, nil)
					i++
				}
				b.ReportMetric(float64(len(ms[0].Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkBatchMatMulDRAM is a batched decode step's products: 1 to 32
// tokens (2–5: the AVX-512 F16 rest tiles alone; 6 and 12: whole F16
// tiles) against 10,240×2,560 matrices streamed from memory (F32, F16 and
// Q4_0 repacked, about 400 MB of each, F16 and F32 in large-page aligned
// memory as a model load leaves them), each set that has tiles, in GFLOP/s
// of the tokens' work. It shows whether the tiles keep memory streaming
// while later token tiles compute from cache (the prefetches of
// docs/kernels.md, "Batched decode").
func BenchmarkBatchMatMulDRAM(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	rows, cols := 10240, 2560
	w := randVec(r, rows*cols)
	for _, k := range kernelSets() {
		if k.tileParts == nil {
			continue
		}
		for _, dt := range []DType{F32, F16, Q4_0} {
			for _, tokens := range []int{1, 2, 3, 4, 5, 6, 8, 12, 32} {
				b.Run(fmt.Sprintf("%s/%v/tokens=%d", k.name, dt, tokens), func(b *testing.B) {
					useKernels(b, k)
					ms := make([]Matrix, max(1, int(400e6)/(rows*dt.RowBytes(cols))))
					for i := range ms {
						ms[i] = benchMatrix(dt, rows, cols, w)
						if !dt.Quantized() {
							mem := allocOffHeap(len(ms[i].Data))
							copy(mem.b, ms[i].Data)
							ms[i].Data = mem.b
							defer runtime.KeepAlive(mem)
						}
						defer ms[i].Free()
					}
					x, y := randVec(r, tokens*cols), make([]float32, tokens*rows)
					p := NewPool(2)
					defer p.Close()
					i := 0
					for b.Loop() {
						MatMul(p, y, ms[i%len(ms)], x, nil, tokens)
						i++
					}
					b.ReportMetric(float64(2*rows*cols*tokens)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// BenchmarkKX8Gemv is one group of eight rows of 2,560 columns from L1, one
// core: each set's K x8 gemv, against eight of its plain dots ("dots"), in
// weight bytes per second.
func BenchmarkKX8Gemv(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const nb = 10
	for _, k := range kernelSets()[1:] {
		for _, dt := range kDotTypes {
			w := randKRow(r, dt, x8Rows*nb, 0)
			packed := make([]byte, len(w))
			packKx8(dt, packed, w, x8Rows, nb*QKK)
			x := q8K(randActs(r, nb*QKK, 1))
			q := k.kquant(dt)
			rb := nb * dt.BlockBytes()
			b.Run(fmt.Sprintf("%s/%v/dots", k.name, dt), func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					for i := 0; i < x8Rows; i++ {
						q.dot(w[i*rb:(i+1)*rb], x)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/%v/x8", k.name, dt), func(b *testing.B) {
				var out [8]float32
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					q.x8Gemv(&out, packed, x, nb)
				}
			})
		}
	}
}

// BenchmarkKQuantDot is one row of 2,560 columns from L1: the kernels'
// compute rate, in weight bytes per second.
func BenchmarkKQuantDot(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, k := range kernelSets()[1:] {
		for _, dt := range kDotTypes {
			b.Run(fmt.Sprintf("%s/%v", k.name, dt), func(b *testing.B) {
				w := randKRow(r, dt, 10, 0)
				x := q8K(randActs(r, 10*QKK, 1))
				dot := k.kquant(dt).dot
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					dot(w, x)
				}
			})
		}
	}
}

// BenchmarkQuantizeQ8K is the per-product cost of the activations' Q8_K
// form (one token of 10,240 values, the widest product).
func BenchmarkQuantizeQ8K(b *testing.B) {
	x := randActs(rand.New(rand.NewPCG(1, 1)), 10240, 1)
	dst := make([]byte, 10240/QKK*q8KBytes)
	b.SetBytes(4 * 10240)
	for b.Loop() {
		quantizeQ8K(dst, x)
	}
}

// Every set's K-quant tiles give each token the dot's bits.
func TestKQuantTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	for _, k := range kernelSets() {
		for _, dt := range kDotTypes {
			tile := k.kquant(dt).tile
			if tile == nil {
				continue
			}
			for _, nb := range append([]int{0}, kLengths...) {
				w := randKRow(r, dt, nb, 0)
				x := make([]byte, 0, kTileToks*nb*q8KBytes)
				for tk := 0; tk < kTileToks; tk++ {
					x = append(x, q8K(randActs(r, nb*QKK, math.Ldexp(1, 20*tk-30)))...)
				}
				out := make([]float32, kTileToks)
				tile(out, w, x, nb)
				for tk := range out {
					want := genericKernels.kquant(dt).dot(w, x[tk*nb*q8KBytes:(tk+1)*nb*q8KBytes])
					if !sameBits(out[tk], want) {
						t.Errorf("%s %v, %d super-blocks, token %d: %v, dot %v", k.name, dt, nb, tk, out[tk], want)
					}
				}
			}
		}
	}
}

// BenchmarkKQuantPrefill is a 64-token product of 2,560² K-quant weights,
// each set with its tiles and (for comparison) without them, and packed by
// eight rows where the set reads that layout.
func BenchmarkKQuantPrefill(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	rows, cols, tokens := 2560, 2560, 64
	for _, k := range kernelSets()[1:] {
		for _, dt := range kDotTypes {
			for _, mode := range []string{"tiles=true", "tiles=false", "x8"} {
				if mode == "tiles=false" && k.kquant(dt).tile == nil || mode == "x8" && !k.kx8 {
					continue
				}
				b.Run(fmt.Sprintf("%s/%v/%s", k.name, dt, mode), func(b *testing.B) {
					if mode == "tiles=false" {
						k.kquant(dt).tile = nil
					}
					useKernels(b, k)
					m := Matrix{DType: dt, Rows: rows, Cols: cols, Data: randKRow(r, dt, rows*cols/QKK, 0)}
					if mode == "x8" {
						m = m.Repacked()
						defer m.Free()
					}
					x, y := randActs(r, tokens*cols, 1), make([]float32, tokens*rows)
					p := NewPool(2)
					defer p.Close()
					for b.Loop() {
						MatMul(p, y, m, x, nil, tokens)
					}
					b.ReportMetric(float64(2*rows*cols*tokens)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// Every set's Q8_K quantizer gives quantizeQ8K's bytes: random values from
// subnormal to huge, zero blocks, and exact ties (a maximum of 127 makes
// the factor 1, so x.5 is a tie) and their neighbours.
func TestQuantizeQ8KSets(t *testing.T) {
	r := rand.New(rand.NewPCG(63, 64))
	var cases [][]float32
	for _, scale := range []float64{0, 1e-44, 1e-38, 1e-5, 1, 1e30, 3e38} {
		cases = append(cases, randActs(r, 3*QKK, scale))
	}
	ties := make([]float32, 2*QKK)
	for i := range ties {
		base := float32(r.IntN(253) - 126)
		switch i % 5 {
		case 0:
			ties[i] = base + 0.5
		case 1:
			ties[i] = base - 0.5
		case 2:
			ties[i] = math.Nextafter32(base+0.5, 0)
		case 3:
			ties[i] = math.Nextafter32(base-0.5, -200)
		case 4:
			ties[i] = -base
		}
	}
	ties[7], ties[QKK+9] = 127, -127
	mixed := randActs(r, 4*QKK, 1)
	clear(mixed[QKK : 2*QKK]) // a zero block between others
	cases = append(cases, ties, mixed)
	for _, x := range cases { // finite input only (3e38 overflows)
		for i, v := range x {
			if math.IsInf(float64(v), 0) {
				x[i] = float32(math.Copysign(math.MaxFloat32, float64(v)))
			}
		}
	}
	for _, k := range kernelSets() {
		for ci, x := range cases {
			want, got := q8K(x), make([]byte, len(x)/QKK*q8KBytes)
			k.quantQ8K(got, x)
			if !bytes.Equal(got, want) {
				t.Errorf("%s: case %d: %x\nwant %x", k.name, ci, got, want)
			}
		}
	}
}

// FuzzQuantizeQ8K compares every set's Q8_K quantizer with the reference
// on arbitrary finite floats.
func FuzzQuantizeQ8K(f *testing.F) {
	f.Add(make([]byte, 4*QKK))
	f.Add(bytes.Repeat([]byte{0, 0, 0x40, 0x3f}, 2*QKK))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := floats(data)
		x = x[:len(x)/QKK*QKK]
		for i, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				x[i] = 1
			}
		}
		want := q8K(x)
		for _, k := range kernelSets()[1:] {
			got := make([]byte, len(want))
			k.quantQ8K(got, x)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: %x\nwant %x", k.name, got, want)
			}
		}
	})
}

// BenchmarkQuantizeQ8KSets is each set's Q8_K quantizer on one token of
// 10,240 values.
func BenchmarkQuantizeQ8KSets(b *testing.B) {
	x := randActs(rand.New(rand.NewPCG(1, 1)), 10240, 1)
	dst := make([]byte, 10240/QKK*q8KBytes)
	for _, k := range kernelSets() {
		b.Run(k.name, func(b *testing.B) {
			b.SetBytes(4 * 10240)
			for b.Loop() {
				k.quantQ8K(dst, x)
			}
		})
	}
}
