package kernels

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Packing a K-quant matrix by eight rows and taking a row back out gives
// the row.
func TestKX8PackRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(71, 72))
	for _, dt := range kDotTypes {
		for _, nb := range []int{1, 3, 10} {
			rows := 2*x8Rows + 3
			data := randKRow(r, dt, rows*nb, 0)
			out := make([]byte, rows/x8Rows*nb*kx8BlockBytes(dt))
			packKx8(dt, out, data, rows, nb*QKK)
			rb := nb * dt.BlockBytes()
			row := make([]byte, rb)
			for g := 0; g < rows/x8Rows; g++ {
				for i := 0; i < x8Rows; i++ {
					unpackKx8Row(dt, row, out[g*nb*kx8BlockBytes(dt):], i, nb)
					if want := data[(g*x8Rows+i)*rb:][:rb]; !bytes.Equal(row, want) {
						t.Fatalf("%v, %d super-blocks: row %d of group %d differs after packing", dt, nb, i, g)
					}
				}
			}
		}
	}
}

// kx8Check runs every set's K x8 gemv and tile on the group of eight rows
// w (nb super-blocks each, plain layout) and the Q8_K rows xs (x8Tokens of
// them) and compares every (row, token) with the generic dot.
func kx8Check(t *testing.T, dt DType, w []byte, xs [][]byte, nb int, name string) {
	t.Helper()
	packed := make([]byte, nb*kx8BlockBytes(dt))
	packKx8(dt, packed, w, x8Rows, nb*QKK)
	rb := nb * dt.BlockBytes()
	var want [x8Tokens][x8Rows]float32
	for tk := range xs {
		for i := 0; i < x8Rows; i++ {
			want[tk][i] = genericKernels.kquant(dt).dot(w[i*rb:(i+1)*rb], xs[tk])
		}
	}
	xstride := nb*q8KBytes + 40 // tokens not back to back
	xt := make([]byte, (x8Tokens-1)*xstride+nb*q8KBytes)
	for tk, x := range xs {
		copy(xt[tk*xstride:], x)
	}
	for _, k := range kernelSets() {
		q := k.kquant(dt)
		for tk, x := range xs {
			var out [8]float32
			q.x8Gemv(&out, packed, x, nb)
			for i, v := range out {
				if !sameBits(v, want[tk][i]) {
					t.Errorf("%s %v gemv %s: token %d row %d: %v, dot %v", k.name, dt, name, tk, i, v, want[tk][i])
				}
			}
		}
		var out [32]float32
		q.x8Tile(&out, packed, xt, nb, xstride)
		for j, v := range out {
			if tk, i := j/x8Rows, j%x8Rows; !sameBits(v, want[tk][i]) {
				t.Errorf("%s %v tile %s: token %d row %d: %v, dot %v", k.name, dt, name, tk, i, v, want[tk][i])
			}
		}
	}
}

// Every set's K x8 kernels give each row and token the generic dot's bits:
// 0…5 super-blocks and the real sizes, activations and weight scales from
// tiny to huge.
func TestKX8Kernels(t *testing.T) {
	r := rand.New(rand.NewPCG(73, 74))
	for _, dt := range kDotTypes {
		for _, nb := range append([]int{0}, kLengths...) {
			for _, ext := range [][2]float64{{0, 1}, {0, 1e-30}, {0, 1e30}, {12, 1e5}, {-24, 1e-5}, {14, 3e38}} {
				w := randKRow(r, dt, x8Rows*nb, int(ext[0]))
				var xs [][]byte
				for tk := 0; tk < x8Tokens; tk++ {
					xs = append(xs, q8K(randActs(r, nb*QKK, ext[1]*math.Ldexp(1, 4*tk))))
				}
				kx8Check(t, dt, w, xs, nb, fmt.Sprintf("%d/%g", nb*QKK, ext))
			}
		}
	}
}

// The largest products the kernels must add without overflow: every quant
// at its maximum against activations of ±127 of one sign.
func TestKX8Extremes(t *testing.T) {
	for _, dt := range kDotTypes {
		for _, sign := range []float32{1, -1} {
			nb := 2
			w := bytes.Repeat([]byte{0xff}, x8Rows*nb*dt.BlockBytes())
			for b := 0; b < x8Rows*nb; b++ { // finite scales
				blk := w[b*dt.BlockBytes():]
				if dt == Q6_K {
					binary.LittleEndian.PutUint16(blk[208:], F32ToF16(1))
				} else {
					binary.LittleEndian.PutUint16(blk[0:], F32ToF16(1))
					binary.LittleEndian.PutUint16(blk[2:], F32ToF16(0.5))
				}
			}
			x := make([]float32, nb*QKK)
			for i := range x {
				x[i] = sign
			}
			xq := q8K(x)
			kx8Check(t, dt, w, [][]byte{xq, xq, xq, xq}, nb, fmt.Sprintf("all ones ×%v", sign))
		}
	}
}

// FuzzKX8 fuzzes every set's K x8 kernels against the generic dot: a type
// byte, eight rows' super-blocks and one token's activations (float32).
func FuzzKX8(f *testing.F) {
	f.Add(byte(0), make([]byte, 8*144+4*256))
	f.Add(byte(1), make([]byte, 2*(8*176+4*256)))
	f.Add(byte(2), make([]byte, 8*210+4*256))
	f.Fuzz(func(t *testing.T, typ byte, data []byte) {
		dt := kDotTypes[int(typ)%len(kDotTypes)]
		per := x8Rows*dt.BlockBytes() + 4*QKK
		nb := len(data) / per
		w := data[:x8Rows*nb*dt.BlockBytes()]
		x := make([]float32, nb*QKK)
		for i := range x {
			v := math.Float32frombits(binary.LittleEndian.Uint32(data[len(w)+4*i:]))
			if v != v || math.IsInf(float64(v), 0) {
				v = 0
			}
			x[i] = v
		}
		xq := q8K(x)
		kx8Check(t, dt, w, [][]byte{xq, xq, xq, xq}, nb, fmt.Sprintf("%d super-blocks", nb))
	})
}

// BenchmarkKX8Pack is the load-time cost of packing: a 10,240×2,560 Q4_K
// matrix.
func BenchmarkKX8Pack(b *testing.B) {
	for _, dt := range kDotTypes {
		b.Run(dt.String(), func(b *testing.B) { benchKX8Pack(b, dt) })
	}
}

func benchKX8Pack(b *testing.B, dt DType) {
	rows, cols := 10240, 2560
	data := randKRow(rand.New(rand.NewPCG(1, 1)), dt, rows*cols/QKK, 0)
	out := make([]byte, len(data))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		packKx8(dt, out, data, rows, cols)
	}
}
