package kernels

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// Every set's activation quantizer gives QuantizeQ8_0's bytes on finite
// input: magnitudes from subnormal to huge, all-zero blocks, and values
// that land exactly on a rounding tie (x.5) or just beside one.
func TestQuantizeActQ8_0(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	var cases [][]float32
	for _, scale := range []float64{0, 1e-44, 1e-40, 1e-30, 1e-5, 1, 127, 1e5, 1e30, 3e38} {
		for n := 0; n < 4; n++ {
			v := make([]float32, 4*QK)
			for i := range v {
				v[i] = float32(r.NormFloat64() * scale)
			}
			cases = append(cases, v)
		}
	}
	ties := make([]float32, QK) // amax 127: d = 1, id = 1, so values round as given
	ties[0] = 127
	for i := 1; i < QK; i++ {
		base := float32(i%20) - 10
		switch i % 4 {
		case 0:
			ties[i] = base + 0.5
		case 1:
			ties[i] = base - 0.5
		case 2:
			ties[i] = math.Nextafter32(base+0.5, 0)
		case 3:
			ties[i] = math.Nextafter32(base-0.5, -100)
		}
	}
	cases = append(cases, ties, make([]float32, QK))
	for _, k := range kernelSets() {
		if k.quantQ8_0 == nil {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			for ci, v := range cases {
				want := make([]byte, len(v)/QK*34)
				got := make([]byte, len(want))
				QuantizeQ8_0(want, v)
				k.quantQ8_0(got, v)
				if !bytes.Equal(got, want) {
					t.Fatalf("case %d: %x\nwant %x", ci, got, want)
				}
			}
		})
	}
}

// FuzzQuantizeActQ8_0 compares the activation quantizer in use with the
// reference on arbitrary finite floats.
func FuzzQuantizeActQ8_0(f *testing.F) {
	f.Add(make([]byte, 4*QK))
	f.Add(bytes.Repeat([]byte{0, 0, 0x40, 0x3f}, 2*QK))
	f.Fuzz(func(t *testing.T, data []byte) {
		v := floats(data)
		v = v[:len(v)/QK*QK]
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				v[i] = 1
			}
		}
		want := make([]byte, len(v)/QK*34)
		got := make([]byte, len(want))
		QuantizeQ8_0(want, v)
		active.quantQ8_0(got, v)
		if !bytes.Equal(got, want) {
			t.Fatalf("%x\nwant %x", got, want)
		}
	})
}
