//go:build arm64 && !purego

package kernels

// Advanced SIMD (NEON) is part of every arm64 CPU, so these kernels need
// no feature check. The quantized dots use widening multiplies (SMULL,
// SADALP) rather than SDOT, which is optional on arm64.
//
// The NEON set keeps Q4_0 and Q8_0 matrices in the plain layout (x8 is
// false): its widening-multiply dots are faster than the pure-Go x8
// kernels it would otherwise run.
func neonSet() kernelSet {
	k := genericKernels
	k.name = "neon"
	k.f32, k.f16, k.bf16 = dotF32NEON, dotF16NEON, dotBF16NEON
	k.dotsF32 = dotsF32NEONAsm
	k.q8_0.dot, k.q4_0.dot = dotQ8_0NEON, dotQ4_0NEON
	k.q4_K.dot, k.q5_K.dot, k.q6_K.dot = dotQ4KNEON, dotQ5KNEON, dotQ6KNEON
	return k
}

func archKernels() []kernelSet { return []kernelSet{neonSet()} }

// The float dots accumulate in four 4-lane accumulators: whole 4-element
// chunk c goes to accumulator c mod 4, in order, and the last len mod 4
// elements into a scalar, in order. The result is ((acc0+acc1)+(acc2+acc3))
// reduced pairwise, plus the scalar. dotF16 and dotBF16 widen first and
// follow the same sequence, so all three agree bit for bit on equal
// inputs. The Go wrappers bound the second operand by the first.

func dotF32NEON(a, b []float32) float32           { return dotF32NEONAsm(a, b[:len(a)]) }
func dotF16NEON(a []uint16, b []float32) float32  { return dotF16NEONAsm(a, b[:len(a)]) }
func dotBF16NEON(a []uint16, b []float32) float32 { return dotBF16NEONAsm(a, b[:len(a)]) }

// The quantized dots scale each block's exact integer sum and add it in
// block order, like the generic code.

func dotQ8_0NEON(w, x []byte) float32 { return dotQ8_0NEONAsm(w, x[:len(w)/34*34]) }
func dotQ4_0NEON(w, x []byte) float32 { return dotQ4_0NEONAsm(w, x[:len(w)/18*34]) }

//go:noescape
func dotQ8_0NEONAsm(w, x []byte) float32

//go:noescape
func dotQ4_0NEONAsm(w, x []byte) float32

//go:noescape
func dotF32NEONAsm(a, b []float32) float32

//go:noescape
func dotF16NEONAsm(a []uint16, b []float32) float32

//go:noescape
func dotBF16NEONAsm(a []uint16, b []float32) float32

// dotsF32NEONAsm is DotsF32 with dotF32NEONAsm's steps for every row; the
// caller checks the bounds.
//
//go:noescape
func dotsF32NEONAsm(out, q, keys []float32, stride int)
