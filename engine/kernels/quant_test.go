package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func quantize(dt DType, rows, cols int, v []float32) []byte {
	rb := dt.RowBytes(cols)
	out := make([]byte, rows*rb)
	for r := 0; r < rows; r++ {
		switch dt {
		case Q8_0:
			QuantizeQ8_0(out[r*rb:(r+1)*rb], v[r*cols:(r+1)*cols])
		case Q4_0:
			QuantizeQ4_0(out[r*rb:(r+1)*rb], v[r*cols:(r+1)*cols])
		}
	}
	return out
}

func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	x := randVec(r, 4096)
	for _, tc := range []struct {
		dt  DType
		tol float64 // of the block's largest magnitude
	}{{Q8_0, 0.6 / 127}, {Q4_0, 1.0 / 8 * 1.05}} { // half a step, plus the fp16 rounding of the scale
		q := quantize(tc.dt, 1, len(x), x)
		back := make([]float32, len(x))
		DequantizeRow(tc.dt, q, back)
		for b := 0; b < len(x)/QK; b++ {
			var amax float64
			for _, v := range x[b*QK : (b+1)*QK] {
				amax = math.Max(amax, math.Abs(float64(v)))
			}
			for j := b * QK; j < (b+1)*QK; j++ {
				if d := math.Abs(float64(back[j] - x[j])); d > tc.tol*amax+1e-6 {
					t.Fatalf("%v: element %d: %v back as %v (block max %v)", tc.dt, j, x[j], back[j], amax)
				}
			}
		}
	}
	// An all-zero block has scale 0 and dequantizes to zeros.
	z := make([]float32, 32)
	for _, dt := range []DType{Q8_0, Q4_0} {
		q := quantize(dt, 1, 32, z)
		back := make([]float32, 32)
		DequantizeRow(dt, q, back)
		for _, v := range back {
			if v != 0 {
				t.Fatalf("%v: zero block came back %v", dt, back)
			}
		}
	}
}

// Q4_0's layout: low nibbles are elements 0–15, high nibbles 16–31,
// value (q−8)·d.
func TestQ4_0Layout(t *testing.T) {
	x := make([]float32, 32)
	for i := range x {
		x[i] = float32(i - 16) // max magnitude −16 → d = 2
	}
	q := quantize(Q4_0, 1, 32, x)
	if d := F16ToF32(uint16(q[0]) | uint16(q[1])<<8); d != 2 {
		t.Fatalf("scale %v, want 2", d)
	}
	// element 0: −16/2 + 8.5 = 0.5 → 0; element 16: 0/2 + 8.5 → 8.
	if q[2]&0x0f != 0 || q[2]>>4 != 8 {
		t.Errorf("byte 0 = %#x, want low 0 (element 0), high 8 (element 16)", q[2])
	}
}

func TestQuantMatMul(t *testing.T) {
	withEachKernelSet(t, testQuantMatMul)
}

func testQuantMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	pool := NewPool(2)
	defer pool.Close()
	for _, dt := range []DType{Q8_0, Q4_0} {
		rows, cols, tokens := 67, 2560, 3
		w := randVec(r, rows*cols)
		m := Matrix{DType: dt, Rows: rows, Cols: cols, Data: quantize(dt, rows, cols, w)}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
		x := randVec(r, tokens*cols)
		y := make([]float32, tokens*rows)
		MatMul(pool, y, m, x, nil, tokens)
		// Reference: dequantized weights × Q8_0-rounded activations in float64.
		xq := make([]float32, len(x))
		for tk := 0; tk < tokens; tk++ {
			qx := quantize(Q8_0, 1, cols, x[tk*cols:(tk+1)*cols])
			DequantizeRow(Q8_0, qx, xq[tk*cols:(tk+1)*cols])
		}
		want := ref(m, xq, nil, tokens)
		for i := range y {
			if d := math.Abs(float64(y[i]) - want[i]); d > 1e-3*math.Sqrt(float64(cols)) {
				t.Fatalf("%v: y[%d] = %v, want %v", dt, i, y[i], want[i])
			}
		}
		// Decode (one token) gives the batched bits.
		one := make([]float32, rows)
		for tk := 0; tk < tokens; tk++ {
			MatVec(pool, one, m, x[tk*cols:(tk+1)*cols], nil)
			for i := range one {
				if one[i] != y[tk*rows+i] {
					t.Fatalf("%v: token %d row %d: %v one by one, %v batched", dt, tk, i, one[i], y[tk*rows+i])
				}
			}
		}
	}
}

func TestRowBytes(t *testing.T) {
	if Q8_0.RowBytes(2560) != 2720 || Q4_0.RowBytes(2560) != 1440 || Q6_K.RowBytes(2560) != 2100 || Q4_K.RowBytes(10240) != 5760 {
		t.Error("row sizes")
	}
	if Q8_0.RowBytes(33) != -1 {
		t.Error("partial block accepted")
	}
	if err := (Matrix{DType: Q4_0, Rows: 1, Cols: 33, Data: make([]byte, 18)}).Check(); err == nil {
		t.Error("partial block matrix accepted")
	}
}
