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
// per-architecture file (AVX2+FMA+F16C on amd64, NEON on arm64; -tags
// purego forces the generic code); the generic code is always built and
// tested, and `go test -kernels.generic` runs the package on it alone.
// Within one implementation the 16-bit dots and the prefill tile kernel
// accumulate exactly as the float32 dot does, so decode and prefill give
// the same bits.
//
// This package never touches the network or the file system.
package kernels
