// Package ggufconv converts a Hugging Face Phi model directory (config.json
// and safetensors) into a single GGUF file that both Phalanx and llama.cpp
// read: architecture phi2 in llama.cpp's tensor layout, weights in F32, F16,
// Q8_0, Q4_0 or one of llama.cpp's K-quant mixes (Q4_K_M, Q5_K_M, Q6_K).
//
// Tensors are converted row block by row block while they are written, so
// converting a model needs a few MB of memory beyond the page cache,
// whatever its size. The package reads only local files.
package ggufconv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/gguf"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

// arch is the GGUF architecture written, llama.cpp's name for Phi-2.
const arch = "phi2"

// Options says how Write converts a model.
type Options struct {
	// Type chooses the 2-D weights' types (see FileType); norms and
	// biases are always F32.
	Type FileType
	// Name is general.name; empty means the model directory's base name.
	Name string
	// Tokenizer is stored as tokenizer.ggml.*, padded to the model's
	// vocabulary. Nil writes no tokenizer: Phalanx loads such a file,
	// llama.cpp does not.
	Tokenizer *tokenizer.Tokenizer
	// SplitQKV writes attn_q, attn_k and attn_v instead of the fused
	// attn_qkv; llama.cpp's phi2 graph reads either.
	SplitQKV bool
	// Threads quantizing rows; 0 means 2.
	Threads int
}

// Report describes a file Write wrote.
type Report struct {
	Tensors int
	Bytes   int64
	// Fallbacks are the matrices written in another type than the mix
	// asks for, because their rows are not whole blocks of it.
	Fallbacks []Fallback
	// Types counts the 2-D weights written in each type.
	Types map[kernels.DType]int
}

// Fallback is a matrix written in type Got instead of Want.
type Fallback struct {
	Name      string
	Want, Got kernels.DType
}

var ggufTypes = map[kernels.DType]gguf.Type{
	kernels.F32: gguf.TypeF32, kernels.F16: gguf.TypeF16, kernels.Q4_0: gguf.TypeQ4_0, kernels.Q8_0: gguf.TypeQ8_0,
	kernels.Q4_K: gguf.TypeQ4_K, kernels.Q5_K: gguf.TypeQ5_K, kernels.Q6_K: gguf.TypeQ6_K,
}

// Write converts the Hugging Face Phi model in dir (config.json and
// safetensors) to a GGUF version 3 file of architecture phi2 in llama.cpp's
// layout, written to out. Tensors are converted row block by row block
// while they are written, so memory stays small whatever the model's size.
func Write(ctx context.Context, dir string, out io.Writer, opts Options) (*Report, error) {
	if !opts.Type.valid() {
		return nil, fmt.Errorf("%w: GGUF file type %d (want one of %v)", engine.ErrInput, uint32(opts.Type), FileTypeNames())
	}
	cfg, err := engine.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	if cfg.QKLayerNorm {
		return nil, fmt.Errorf("%w: qk_layernorm models have no llama.cpp phi2 layout", engine.ErrConfig)
	}
	src, err := engine.OpenSafetensors(dir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	threads := opts.Threads
	if threads <= 0 {
		threads = 2
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(dir))
	}

	w := gguf.NewWriter()
	// Keys in the order llama.cpp's converter writes them for Phi-2.
	w.Set("general.architecture", gguf.String(arch))
	w.Set("general.name", gguf.String(name))
	u32 := func(key string, v int) { w.Set(arch+"."+key, gguf.Uint32(uint32(v))) }
	u32("context_length", cfg.MaxPositionEmbeddings)
	u32("embedding_length", cfg.HiddenSize)
	u32("feed_forward_length", cfg.IntermediateSize)
	u32("block_count", cfg.NumLayers)
	u32("attention.head_count", cfg.NumHeads)
	u32("attention.head_count_kv", cfg.NumKVHeads)
	w.Set(arch+".attention.layer_norm_epsilon", gguf.Float32(float32(cfg.LayerNormEps)))
	u32("rope.dimension_count", cfg.RotaryDim)
	if cfg.RopeTheta != 10000 {
		w.Set(arch+".rope.freq_base", gguf.Float32(float32(cfg.RopeTheta)))
	}
	w.Set("general.file_type", gguf.Uint32(uint32(opts.Type)))
	w.Set("tokenizer.ggml.add_bos_token", gguf.Bool(false))
	if opts.Tokenizer != nil {
		if err := opts.Tokenizer.SetGGUF(w, cfg.VocabSize, "phi-2"); err != nil {
			return nil, err
		}
	}
	// Without a tokenizer (or one without them), the config's ids.
	if _, ok := w.Get("tokenizer.ggml.bos_token_id"); !ok && cfg.BOSTokenID >= 0 {
		w.Set("tokenizer.ggml.bos_token_id", gguf.Uint32(uint32(cfg.BOSTokenID)))
	}
	if _, ok := w.Get("tokenizer.ggml.eos_token_id"); !ok && len(cfg.EOSTokenIDs) > 0 {
		w.Set("tokenizer.ggml.eos_token_id", gguf.Uint32(uint32(cfg.EOSTokenIDs[0])))
	}
	w.Set("general.quantization_version", gguf.Uint32(2))

	rep := &Report{Types: map[kernels.DType]int{}}
	conv := &converter{ctx: ctx, src: src, threads: threads}
	addMatrix := func(gname string, layer, cols int, parts ...rowSource) error {
		want := opts.Type.tensorType(gname, layer, cfg.NumLayers)
		typ := fitType(want, cols)
		if typ != want {
			rep.Fallbacks = append(rep.Fallbacks, Fallback{Name: gname, Want: want, Got: typ})
		}
		rep.Types[typ]++
		rows := 0
		for _, p := range parts {
			rows += p.rows
		}
		return w.AddTensorFrom(gname, ggufTypes[typ], []uint64{uint64(cols), uint64(rows)}, conv.stream(typ, cols, parts))
	}
	addVector := func(gname string, parts ...rowSource) error {
		n := 0
		for _, p := range parts {
			n += p.cols
		}
		return w.AddTensorFrom(gname, gguf.TypeF32, []uint64{uint64(n)}, conv.stream(kernels.F32, n, []rowSource{concatVectors(parts)}))
	}
	H, I, V := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	qDim, kvDim := cfg.NumHeads*cfg.HeadDim, cfg.KVDim()
	var errs []error
	add := func(err error) { errs = append(errs, err) }

	add(addMatrix("token_embd.weight", -1, H, matrixRows("model.embed_tokens.weight", V, H)))
	for i := 0; i < cfg.NumLayers; i++ {
		hf := func(s string) string { return fmt.Sprintf("model.layers.%d.%s", i, s) }
		g := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
		add(addVector(g("attn_norm.weight"), vectorRow(hf("input_layernorm.weight"), H)))
		add(addVector(g("attn_norm.bias"), vectorRow(hf("input_layernorm.bias"), H)))
		q, k, v := matrixRows(hf("self_attn.q_proj.weight"), qDim, H), matrixRows(hf("self_attn.k_proj.weight"), kvDim, H), matrixRows(hf("self_attn.v_proj.weight"), kvDim, H)
		qb, kb, vb := vectorRow(hf("self_attn.q_proj.bias"), qDim), vectorRow(hf("self_attn.k_proj.bias"), kvDim), vectorRow(hf("self_attn.v_proj.bias"), kvDim)
		if opts.SplitQKV {
			add(addMatrix(g("attn_q.weight"), i, H, q))
			add(addVector(g("attn_q.bias"), qb))
			add(addMatrix(g("attn_k.weight"), i, H, k))
			add(addVector(g("attn_k.bias"), kb))
			add(addMatrix(g("attn_v.weight"), i, H, v))
			add(addVector(g("attn_v.bias"), vb))
		} else {
			// llama.cpp's phi2 graph views the fused product as q (n_embd
			// values), then k, then v (n_embd_gqa each).
			add(addMatrix(g("attn_qkv.weight"), i, H, q, k, v))
			add(addVector(g("attn_qkv.bias"), qb, kb, vb))
		}
		add(addMatrix(g("attn_output.weight"), i, qDim, matrixRows(hf("self_attn.dense.weight"), H, qDim)))
		add(addVector(g("attn_output.bias"), vectorRow(hf("self_attn.dense.bias"), H)))
		add(addMatrix(g("ffn_up.weight"), i, H, matrixRows(hf("mlp.fc1.weight"), I, H)))
		add(addVector(g("ffn_up.bias"), vectorRow(hf("mlp.fc1.bias"), I)))
		add(addMatrix(g("ffn_down.weight"), i, I, matrixRows(hf("mlp.fc2.weight"), H, I)))
		add(addVector(g("ffn_down.bias"), vectorRow(hf("mlp.fc2.bias"), H)))
	}
	add(addVector("output_norm.weight", vectorRow("model.final_layernorm.weight", H)))
	add(addVector("output_norm.bias", vectorRow("model.final_layernorm.bias", H)))
	head := "lm_head.weight"
	if !src.Has(head) && cfg.TieWordEmbeddings {
		head = "model.embed_tokens.weight"
	}
	add(addMatrix("output.weight", -1, H, matrixRows(head, V, H)))
	// llama.cpp requires output.bias for phi2; HF's Phi always has one.
	headBias := vectorRow("lm_head.bias", V)
	if !src.Has("lm_head.bias") {
		headBias = zeroRow(V)
	}
	add(addVector("output.bias", headBias))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rep.Tensors = w.Tensors()
	n, err := w.WriteTo(out)
	rep.Bytes = n
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// rowSource is a tensor (or a vector, as one row) read from the source
// model when the writer first needs it.
type rowSource struct {
	rows, cols int
	open       func(src engine.TensorSource) (rowFunc, error)
}

// rowFunc widens row r into dst.
type rowFunc func(r int, dst []float32)

func matrixRows(name string, rows, cols int) rowSource {
	return rowSource{rows: rows, cols: cols, open: func(src engine.TensorSource) (rowFunc, error) {
		m, err := src.Matrix(name, rows, cols)
		if err != nil {
			return nil, err
		}
		return m.Row, nil
	}}
}

func vectorRow(name string, n int) rowSource {
	return rowSource{rows: 1, cols: n, open: func(src engine.TensorSource) (rowFunc, error) {
		v, err := src.Vector(name, n)
		if err != nil {
			return nil, err
		}
		return func(_ int, dst []float32) { copy(dst, v) }, nil
	}}
}

func zeroRow(n int) rowSource {
	return rowSource{rows: 1, cols: n, open: func(engine.TensorSource) (rowFunc, error) {
		return func(_ int, dst []float32) { clear(dst) }, nil
	}}
}

// concatVectors joins vectors (q, k and v biases) into one row.
func concatVectors(parts []rowSource) rowSource {
	if len(parts) == 1 {
		return parts[0]
	}
	n := 0
	for _, p := range parts {
		n += p.cols
	}
	return rowSource{rows: 1, cols: n, open: func(src engine.TensorSource) (rowFunc, error) {
		fns := make([]rowFunc, len(parts))
		for i, p := range parts {
			var err error
			if fns[i], err = p.open(src); err != nil {
				return nil, err
			}
		}
		return func(_ int, dst []float32) {
			off := 0
			for i, p := range parts {
				fns[i](0, dst[off:off+p.cols])
				off += p.cols
			}
		}, nil
	}}
}

type converter struct {
	ctx     context.Context
	src     engine.TensorSource
	threads int
}

// stream returns a reader of the tensor's bytes in typ: the rows of every
// part, in order, converted a block of rows at a time.
func (c *converter) stream(typ kernels.DType, cols int, parts []rowSource) io.Reader {
	return &tensorStream{c: c, typ: typ, cols: cols, parts: parts}
}

type tensorStream struct {
	c     *converter
	typ   kernels.DType
	cols  int
	parts []rowSource
	part  int     // current part
	row   int     // next row of the current part
	fn    rowFunc // the current part's rows, once opened
	buf   []byte
	off   int
}

// streamBlockBytes is about how much converted data a stream holds.
const streamBlockBytes = 4 << 20

func (s *tensorStream) Read(p []byte) (int, error) {
	if s.off == len(s.buf) {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf[s.off:])
	s.off += n
	if s.off == len(s.buf) && s.part == len(s.parts)-1 && s.row == s.parts[s.part].rows {
		// The writer reads exactly the tensor's size and never asks for
		// EOF: let go of the block and the source now.
		s.buf, s.off, s.fn = nil, 0, nil
	}
	return n, nil
}

// fill converts the next block of rows of the current part.
func (s *tensorStream) fill() error {
	if err := s.c.ctx.Err(); err != nil {
		return err
	}
	for s.part < len(s.parts) && s.row == s.parts[s.part].rows {
		s.part, s.row, s.fn = s.part+1, 0, nil
	}
	if s.part == len(s.parts) {
		return io.EOF
	}
	p := s.parts[s.part]
	if s.fn == nil {
		fn, err := p.open(s.c.src)
		if err != nil {
			return err
		}
		s.fn = fn
	}
	rb := s.typ.RowBytes(s.cols)
	n := max(1, min(p.rows-s.row, streamBlockBytes/max(rb, 4*s.cols)))
	if cap(s.buf) < n*rb {
		s.buf = make([]byte, n*rb)
	}
	s.buf, s.off = s.buf[:n*rb], 0
	first := s.row
	workers := min(s.c.threads, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := make([]float32, s.cols)
			for r := w; r < n; r += workers {
				s.fn(first+r, x)
				kernels.EncodeRow(s.typ, s.buf[r*rb:(r+1)*rb], x)
			}
		}()
	}
	wg.Wait()
	s.row += n
	return nil
}
