// Package safetensors reads Hugging Face safetensors files: one file or a
// sharded set described by model.safetensors.index.json.
//
// # Usage
//
//	set, err := safetensors.OpenDir("models/phi-2")
//	if err != nil { … }
//	defer set.Close()
//	t, err := set.Tensor("model.layers.0.mlp.fc1.weight")
//	// t.Data is a read-only view of the mapped file: no copy is made.
//
// # Implementation notes
//
// Files are memory-mapped read-only, so a tensor costs resident memory only
// once its pages are touched: a process that uses a few layers of a large
// file holds only those layers. Data must never be written (the mapping is
// read-only and a write faults).
//
// The header is untrusted input. Its length is bounded (MaxHeaderBytes) and
// by the file size; every tensor's dtype must be known, its shape must be
// non-negative with a product that does not overflow, its byte length must
// equal shape × dtype size, its range must lie inside the data section, and
// no two tensors may overlap. Errors name the file and the tensor.
package safetensors
