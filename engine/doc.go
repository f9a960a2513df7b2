// Package engine runs Microsoft's Phi models (Phi-1, Phi-1.5, Phi-2) in a
// single process: configuration, weight loading, and the forward pass over
// a range of decoder layers with a per-sequence KV cache.
//
// # Usage
//
//	m, err := engine.Load("models/phi-2", engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true})
//	if err != nil { … }
//	defer m.Close()
//	cache := m.NewCache()
//	x := make([]float32, len(ids)*m.Config.HiddenSize)
//	m.Embed(ids, x)                                           // embedding rows
//	m.Forward(x, []engine.Span{{Cache: cache, Tokens: len(ids)}}) // prefill, in place
//	logits := make([]float32, m.Config.VocabSize)
//	m.Logits(x[(len(ids)-1)*m.Config.HiddenSize:], logits)   // last position
//
// A pipeline stage loads only its layers (Options.Layers) and neither the
// embedding nor the head; the coordinator loads the embedding and the head
// and no layers. Forward takes the hidden states of several sequences at
// once (a micro-batch), so every weight is read once for all of them.
//
// # Implementation notes
//
// Weights are views of memory-mapped files in their stored dtype (F32, F16,
// BF16); 16-bit matrices are widened inside the kernels, never at load, so
// memory follows the dtype and the layers actually used. Small vectors
// (biases, LayerNorm parameters) are widened to float32 at load.
//
// All arithmetic is float32, following Hugging Face's PhiForCausalLM: one
// LayerNorm shared by attention and MLP, a parallel residual (attn + mlp +
// x), partial rotary embeddings of width int(head_dim × partial_rotary_factor)
// in rotate-half form with float32 angles, attention scaled by 1/sqrt(head_dim)
// with a float32 softmax, gelu_new, and a biased lm_head.
//
// This package never touches the network.
package engine
