package engine

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/phalanx-llm/phalanx/engine/gguf"
	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// ggufArch is the general.architecture llama.cpp gives Phi-1, Phi-1.5 and
// Phi-2, and the prefix of their hyperparameter keys.
const ggufArch = "phi2"

// LoadGGUF opens a llama.cpp GGUF file of architecture phi2 and loads the
// parts opts asks for. The file is memory-mapped: weights stay views of
// the map in their stored dtype, and only the requested layers' pages are
// read.
func LoadGGUF(path string, opts Options) (*Model, error) {
	f, err := gguf.Map(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWeights, err)
	}
	m, err := loadGGUFFile(f, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

func loadGGUFFile(f *gguf.File, opts Options) (*Model, error) {
	cfg, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, err
	}
	return LoadFrom(cfg, &ggufSource{f: f, cfg: cfg}, opts)
}

// ConfigFromGGUF resolves a Phi configuration from a GGUF file's phi2.*
// metadata, with llama.cpp's defaults for the optional keys: head_count_kv
// defaults to head_count, rope.dimension_count to the whole head (llama.cpp
// rotates head_dim values when the key is absent), rope.freq_base to 10000.
// The vocabulary size is phi2.vocab_size if present, else the row count of
// token_embd.weight, else the length of tokenizer.ggml.tokens.
func ConfigFromGGUF(f *gguf.File) (*Config, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if arch != ggufArch {
		return nil, fmt.Errorf("%w: %s: general.architecture %q is not supported (only %q)", ErrConfig, f.Name, arch, ggufArch)
	}
	var errs []error
	has := func(key string) bool { _, ok := f.Value(ggufArch + "." + key); return ok }
	num := func(key string, limit int) int {
		u, err := f.Uint(ggufArch + "." + key)
		if err != nil {
			errs = append(errs, err)
			return 0
		}
		if u > uint64(limit) {
			errs = append(errs, fmt.Errorf("%s: %s.%s = %d exceeds %d", f.Name, ggufArch, key, u, limit))
			return 0
		}
		return int(u)
	}
	c := &Config{
		ModelType:             "phi",
		HiddenAct:             "gelu_new",
		MaxPositionEmbeddings: num("context_length", maxPos),
		HiddenSize:            num("embedding_length", maxDim),
		IntermediateSize:      num("feed_forward_length", 4*maxDim),
		NumLayers:             num("block_count", maxLayers),
		NumHeads:              num("attention.head_count", maxDim),
		RopeTheta:             10000,
		BOSTokenID:            -1,
	}
	c.NumKVHeads = c.NumHeads
	if has("attention.head_count_kv") {
		c.NumKVHeads = num("attention.head_count_kv", maxDim)
	}
	if eps, err := ggufFloat(f, ggufArch+".attention.layer_norm_epsilon"); err != nil {
		errs = append(errs, err)
	} else {
		c.LayerNormEps = eps
	}
	if has("rope.freq_base") {
		if base, err := ggufFloat(f, ggufArch+".rope.freq_base"); err != nil {
			errs = append(errs, err)
		} else {
			c.RopeTheta = base
		}
	}
	rot := -1 // the whole head
	if has("rope.dimension_count") {
		rot = num("rope.dimension_count", maxDim)
	}
	c.VocabSize, err = ggufVocabSize(f)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errs[0])
	}

	// resolve computes the rotary width as HF does, int(head_dim × factor);
	// pick the factor that gives exactly the stored width back.
	if c.NumHeads > 0 && c.HiddenSize%c.NumHeads == 0 {
		headDim := c.HiddenSize / c.NumHeads
		if rot < 0 {
			rot = headDim
		}
		if rot > headDim {
			return nil, fmt.Errorf("%w: %s: %s.rope.dimension_count %d exceeds the head width %d", ErrConfig, f.Name, ggufArch, rot, headDim)
		}
		c.PartialRotaryFactor = rotaryFactor(rot, headDim)
	}
	if err := c.resolve(nil); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}

	if c.BOSTokenID, err = ggufTokenID(f, "tokenizer.ggml.bos_token_id", c.VocabSize); err != nil {
		return nil, err
	}
	eos, err := ggufTokenID(f, "tokenizer.ggml.eos_token_id", c.VocabSize)
	if err != nil {
		return nil, err
	}
	if eos >= 0 {
		c.EOSTokenIDs = []int{eos}
	}
	// llama.cpp's phi2 graph always has an output tensor; accept a file
	// without one by tying the head to the embedding, as HF would.
	_, errOut := f.Tensor("output.weight")
	c.TieWordEmbeddings = errOut != nil
	return c, nil
}

// ggufFloat reads a number. A float32 is read as the shortest decimal that
// rounds to it, so 1e-5 stored as float32 (as llama.cpp stores it) comes
// back as 1e-5 and the config equals the one config.json gives.
func ggufFloat(f *gguf.File, key string) (float64, error) {
	x, err := f.Float(key)
	if err != nil {
		return 0, err
	}
	if v, _ := f.Value(key); v.Type() == gguf.ValueFloat32 {
		x, _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', -1, 32), 64)
	}
	return x, nil
}

// rotaryFactor returns the smallest factor p with int(headDim × p) = rot.
func rotaryFactor(rot, headDim int) float64 {
	p := float64(rot) / float64(headDim)
	for int(float64(headDim)*p) < rot {
		p = math.Nextafter(p, 2)
	}
	return p
}

func ggufVocabSize(f *gguf.File) (int, error) {
	if _, ok := f.Value(ggufArch + ".vocab_size"); ok {
		u, err := f.Uint(ggufArch + ".vocab_size")
		if err != nil {
			return 0, err
		}
		return int(min(u, maxVocab+1)), nil // resolve rejects anything above maxVocab
	}
	for _, name := range []string{"token_embd.weight", "output.weight"} {
		if t, err := f.Tensor(name); err == nil {
			if len(t.Dims) != 2 {
				return 0, fmt.Errorf("%s: tensor %q has dims %v, want [hidden vocab]", f.Name, name, t.Dims)
			}
			return int(min(t.Dims[1], maxVocab+1)), nil
		}
	}
	if v, ok := f.Value("tokenizer.ggml.tokens"); ok && v.Len() > 0 {
		return v.Len(), nil
	}
	return 0, fmt.Errorf("%s: no %s.vocab_size, token_embd.weight or tokenizer.ggml.tokens to size the vocabulary", f.Name, ggufArch)
}

// ggufTokenID reads an optional token id; -1 when absent.
func ggufTokenID(f *gguf.File, key string, vocab int) (int, error) {
	if _, ok := f.Value(key); !ok {
		return -1, nil
	}
	u, err := f.Uint(key)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if u >= uint64(vocab) {
		return 0, fmt.Errorf("%w: %s: %s = %d is outside the %d-token vocabulary", ErrConfig, f.Name, key, u, vocab)
	}
	return int(u), nil
}

// ggufSource gives a GGUF file's tensors under the Hugging Face names the
// engine asks for (see ggufName).
type ggufSource struct {
	f   *gguf.File
	cfg *Config
}

func (s *ggufSource) Close() error { return s.f.Close() }

// qkvPart says which third of a fused attn_qkv tensor a name selects.
type qkvPart int

const (
	wholeTensor qkvPart = iota - 1
	partQ
	partK
	partV
)

// ggufLayerNames maps a decoder layer's HF tensor names (after
// "model.layers.N.", before ".weight" or ".bias") to llama.cpp's.
var ggufLayerNames = map[string]string{
	"input_layernorm":       "attn_norm",
	"self_attn.q_proj":      "attn_q",
	"self_attn.k_proj":      "attn_k",
	"self_attn.v_proj":      "attn_v",
	"self_attn.dense":       "attn_output",
	"self_attn.q_layernorm": "attn_q_norm",
	"self_attn.k_layernorm": "attn_k_norm",
	"mlp.fc1":               "ffn_up",
	"mlp.fc2":               "ffn_down",
}

// ggufModelNames maps the tensors outside the layers likewise.
var ggufModelNames = map[string]string{
	"model.embed_tokens":    "token_embd",
	"model.final_layernorm": "output_norm",
	"lm_head":               "output",
}

// ggufName translates an HF tensor name to its GGUF name. For the q, k and
// v projections it also returns the name of the fused attn_qkv tensor
// llama.cpp's phi2 graph prefers, and which third of it they are.
func ggufName(hf string) (name, fused string, part qkvPart, ok bool) {
	base, suffix, found := cutLast(hf, ".")
	if !found || (suffix != "weight" && suffix != "bias") {
		return "", "", wholeTensor, false
	}
	if g, ok := ggufModelNames[base]; ok {
		return g + "." + suffix, "", wholeTensor, true
	}
	rest, found := strings.CutPrefix(base, "model.layers.")
	if !found {
		return "", "", wholeTensor, false
	}
	idx, sub, found := strings.Cut(rest, ".")
	if _, err := strconv.Atoi(idx); err != nil || !found {
		return "", "", wholeTensor, false
	}
	g, found := ggufLayerNames[sub]
	if !found {
		return "", "", wholeTensor, false
	}
	p := "blk." + idx + "."
	part = wholeTensor
	switch sub {
	case "self_attn.q_proj":
		part = partQ
	case "self_attn.k_proj":
		part = partK
	case "self_attn.v_proj":
		part = partV
	}
	if part != wholeTensor {
		fused = p + "attn_qkv." + suffix
	}
	return p + g + "." + suffix, fused, part, true
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// lookup finds the tensor behind an HF name. For a q/k/v part of a fused
// tensor it returns the fused tensor, the first row of the part and the
// fused tensor's row count.
func (s *ggufSource) lookup(hf string, rows int) (t *gguf.TensorInfo, first, total int, err error) {
	name, fused, part, ok := ggufName(hf)
	if !ok {
		return nil, 0, 0, fmt.Errorf("%w: %s: no GGUF name for tensor %q", ErrWeights, s.f.Name, hf)
	}
	if fused != "" {
		if ft, err := s.f.Tensor(fused); err == nil {
			qDim, kvDim := s.cfg.NumHeads*s.cfg.HeadDim, s.cfg.KVDim()
			first = [...]int{0, qDim, qDim + kvDim}[part]
			return ft, first, qDim + 2*kvDim, nil
		}
	}
	t, err = s.f.Tensor(name)
	if err != nil {
		if fused != "" {
			return nil, 0, 0, fmt.Errorf("%w: %w (nor the fused %q)", ErrWeights, err, fused)
		}
		return nil, 0, 0, fmt.Errorf("%w: %w", ErrWeights, err)
	}
	return t, 0, rows, nil
}

func (s *ggufSource) Has(name string) bool {
	g, fused, _, ok := ggufName(name)
	if !ok {
		return false
	}
	if _, err := s.f.Tensor(g); err == nil {
		return true
	}
	if fused != "" {
		if _, err := s.f.Tensor(fused); err == nil {
			return true
		}
	}
	return false
}

// ggufDType maps the ggml types the kernels run to their dtypes.
func ggufDType(t gguf.Type) (kernels.DType, bool) {
	switch t {
	case gguf.TypeF32:
		return kernels.F32, true
	case gguf.TypeF16:
		return kernels.F16, true
	case gguf.TypeBF16:
		return kernels.BF16, true
	case gguf.TypeQ8_0:
		return kernels.Q8_0, true
	case gguf.TypeQ4_0:
		return kernels.Q4_0, true
	case gguf.TypeQ4_K:
		return kernels.Q4_K, true
	case gguf.TypeQ5_K:
		return kernels.Q5_K, true
	case gguf.TypeQ6_K:
		return kernels.Q6_K, true
	}
	return 0, false
}

// rows returns the bytes of rows [first, first+n) of a tensor of total
// rows of cols values, after checking its type and GGUF dims (ne[0] is the
// number of columns).
func (s *ggufSource) rows(t *gguf.TensorInfo, hf string, first, n, total, cols int, vector bool) ([]byte, kernels.DType, error) {
	dt, ok := ggufDType(t.Type)
	if !ok {
		return nil, 0, fmt.Errorf("%w: %s: tensor %q has ggml type %v, which the engine cannot run", ErrWeights, s.f.Name, t.Name, t.Type)
	}
	want := []uint64{uint64(cols), uint64(total)}
	if vector {
		want = want[1:]
	}
	ok = len(t.Dims) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = t.Dims[i] == want[i]
	}
	if !ok {
		return nil, 0, fmt.Errorf("%w: %s: tensor %q (for %s) has GGUF dims %v, config wants %v", ErrWeights, s.f.Name, t.Name, hf, t.Dims, want)
	}
	data, err := s.f.TensorData(t)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrWeights, err)
	}
	rb := dt.RowBytes(cols)
	if vector {
		rb = dt.RowBytes(total)
		if rb < 0 || len(data) != rb {
			return nil, 0, fmt.Errorf("%w: %s: tensor %q: %d values are not whole %v blocks", ErrWeights, s.f.Name, t.Name, total, dt)
		}
		return data, dt, nil
	}
	if rb < 0 || len(data) != total*rb {
		return nil, 0, fmt.Errorf("%w: %s: tensor %q: %d bytes do not hold %d rows of %d %v values", ErrWeights, s.f.Name, t.Name, len(data), total, cols, dt)
	}
	s.f.Prefetch(t)
	return data[first*rb : (first+n)*rb], dt, nil
}

func (s *ggufSource) Matrix(name string, rows, cols int) (kernels.Matrix, error) {
	t, first, total, err := s.lookup(name, rows)
	if err != nil {
		return kernels.Matrix{}, err
	}
	data, dt, err := s.rows(t, name, first, rows, total, cols, false)
	if err != nil {
		return kernels.Matrix{}, err
	}
	m := kernels.Matrix{DType: dt, Rows: rows, Cols: cols, Data: data}
	copied := false
	if m.Check() != nil { // misaligned (general.alignment below 4): keep an aligned copy
		m.Data, copied = alignedCopy(data), true
	}
	if err := m.Check(); err != nil {
		return kernels.Matrix{}, fmt.Errorf("%w: %s: tensor %q: %v", ErrWeights, s.f.Name, t.Name, err)
	}
	if m = m.Repacked(); m.IsRepacked() && !copied {
		// The kernels read the repacked copy: the mapped pages need not
		// stay resident as well.
		s.f.Release(data)
	}
	return m, nil
}

func (s *ggufSource) Vector(name string, n int) ([]float32, error) {
	t, first, total, err := s.lookup(name, n)
	if err != nil {
		return nil, err
	}
	data, dt, err := s.rows(t, name, 0, 1, total, total, true)
	if err != nil {
		return nil, err
	}
	m := kernels.Matrix{DType: dt, Rows: 1, Cols: total, Data: alignedCopy(data)}
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("%w: %s: tensor %q: %v", ErrWeights, s.f.Name, t.Name, err)
	}
	all := make([]float32, total)
	m.Row(0, all)
	if first == 0 && n == total {
		return all, nil
	}
	return append([]float32(nil), all[first:first+n]...), nil
}
