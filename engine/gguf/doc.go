// Package gguf reads and writes GGUF files, the single-file container that
// llama.cpp and its tools use for model weights and tokenizer metadata.
//
// A GGUF file is a little-endian header (magic "GGUF", version, tensor and
// key/value counts), a list of typed metadata key/value pairs, a list of
// tensor descriptors (name, dimensions, ggml element type, offset), and an
// aligned data section holding the tensor bytes.
//
// # Usage
//
// Reading:
//
//	f, err := gguf.Open("model.gguf")
//	if err != nil { ... }
//	defer f.Close()
//	arch, err := f.String("general.architecture")
//	for _, t := range f.Tensors {
//		// t.Offset and t.Size are absolute byte positions in the file;
//		// read them with f.TensorReader(t) or map the file yourself.
//	}
//
// Map opens a file the same way but memory-maps it read-only, so that
// TensorData returns views of the map instead of copies: weights are then
// paged in only as they are used.
//
//	f, err := gguf.Map("model.gguf")
//	t, err := f.Tensor("blk.0.ffn_up.weight")
//	data, err := f.TensorData(t) // valid until f.Close
//
// Writing:
//
//	w := gguf.NewWriter()
//	w.Set("general.architecture", gguf.String("phi2"))
//	w.AddTensor("token_embd.weight", gguf.TypeF32, []uint64{2560, 51200}, data)
//	_, err := w.WriteTo(out)
//
// # What the reader guarantees
//
// Files come from untrusted places, so the reader validates everything
// before it allocates: every string length and array count is bounded by
// the bytes left in the file, dimensions are positive and their product
// cannot overflow, rows are whole quantization blocks, tensor ranges are
// aligned, inside the file and disjoint. A hostile file yields an error
// wrapping one of the package's sentinel errors; it never panics and never
// makes the reader allocate in proportion to a lying header.
//
// Only versions 2 and 3 are accepted (version 1 used 32-bit counts and has
// not been produced since 2023), and only little-endian files.
//
// Metadata values keep arrays compact: an array of strings is one backing
// string plus offsets, and numeric arrays keep their raw bytes, so the
// 51,200-entry vocabulary of Phi-2 costs two allocations.
//
// The package does not interpret tensor bytes; dequantization lives in the
// kernels.
package gguf
