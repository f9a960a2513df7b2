// Package kernels holds the numeric primitives of the Phalanx engine: weight
// matrices in their stored dtype (F32, F16, BF16), matrix–vector and
// matrix–matrix products that widen 16-bit weights inside the kernel, the
// element-wise operations of a Phi decoder layer, and the worker pool that
// spreads a product over the machine's cores.
//
// # Usage
//
//	pool := kernels.NewPool(runtime.NumCPU())
//	defer pool.Close()
//	w := kernels.Matrix{DType: kernels.F16, Rows: 2560, Cols: 2560, Data: raw}
//	kernels.MatMul(pool, y, w, x, bias, tokens) // y[t] = w·x[t] + bias
//
// # Implementation notes
//
// Weights are never widened at load: a matrix is a view of the bytes of the
// weight file (usually a read-only memory map), and every product reads them
// in their stored dtype. The decode path (one row of activations) streams each
// weight row once; the prefill path converts a block of weight rows to
// float32 scratch once and reuses it for every activation row, so 16-bit
// conversion is amortized over the prompt.
//
// The dot products are reached through package-level function variables
// chosen once at start-up (dot_generic.go holds the pure-Go reference).
// Assembly implementations drop in by assigning those variables in a
// per-architecture file; -tags purego forces the generic code, the generic
// code is always built and tested, and `go test -kernels.generic` runs the
// package on it alone. On amd64 init installs the first set the CPU runs:
//
//  1. avx512 (AVX-512 F+BW+VL, with AVX2+FMA+F16C): 16-lane float dots and
//     a 4-row × 3-token float tile; with AVX512-VNNI also VPDPBUSD Q8_0 and
//     Q4_0 dots and 4×3 quantized tiles (without VNNI it keeps the AVX2
//     integer dots and has no quantized tile);
//  2. avx2 (AVX2+FMA+F16C): 8-lane float dots, a 4×2 float tile, and
//     VPMADDUBSW integer dots;
//  3. generic.
//
// On arm64 the NEON set is always used. The tests run every set the
// machine supports and compare each with the generic code.
//
// Within one set the 16-bit dots and the tile kernels accumulate exactly as
// that set's float32 dot does, so decode and prefill give the same bits.
// The avx2 float dots use four 8-lane accumulators (chunk c of 8 into
// accumulator c mod 4, a zero-padded partial chunk into the fourth) summed
// (a0+a1)+(a2+a3); the avx512 ones use two 16-lane accumulators (chunk c of
// 16 into accumulator c mod 2, a mask-loaded partial chunk into the next in
// turn) summed a0+a1, then the high 8 lanes added to the low 8; both end
// with the same fixed 8-lane tree. The avx512 integer dots put two blocks
// in one 64-byte vector, take each lane's exact integer sum (weights made
// unsigned by a bias that a second VPDPBUSD removes), and add it times
// d_w·d_x into one 16-lane accumulator; the quantized tiles do the same per
// (row, token) pair, so quantized prefill gives decode's bits too.

// This package never touches the network or the file system.
package kernels
