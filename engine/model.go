package engine

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/safetensors"
)

// Errors of model loading and use.
var (
	ErrWeights = errors.New("engine: weights")
	ErrInput   = errors.New("engine: invalid input")
	ErrNotHeld = errors.New("engine: part of the model not loaded")
)

// LayerRange is the half-open range [Start, End) of decoder layers.
type LayerRange struct{ Start, End int }

// AllLayers asks Load for every layer of the model.
var AllLayers = LayerRange{0, -1}

// Len is the number of layers in the range.
func (r LayerRange) Len() int { return r.End - r.Start }

func (r LayerRange) String() string { return fmt.Sprintf("[%d,%d)", r.Start, r.End) }

// Options says which parts of a model to load.
type Options struct {
	// Layers to load; AllLayers for all, the zero value for none.
	Layers LayerRange
	// Embedding loads model.embed_tokens (needed by Embed).
	Embedding bool
	// Head loads the final LayerNorm and lm_head (needed by Logits).
	Head bool
	// Threads for the kernels; 0 means DefaultThreads.
	Threads int
	// KVCache is how NewCache's caches keep keys and values: F32 (the
	// zero value means F32) or F16 (see NewCacheOf).
	KVCache kernels.DType
}

// Model is a loaded part of a Phi model: a range of layers and, optionally,
// the embedding and the head. Its methods are safe for concurrent use;
// forward passes are serialized, each one using every thread.
type Model struct {
	Config *Config
	Layers LayerRange

	embed   kernels.Matrix
	hasEmb  bool
	finalW  []float32
	finalB  []float32
	head    kernels.Matrix
	headB   []float32
	hasHead bool
	layers  []layer

	pool   *kernels.Pool
	closer io.Closer
	kvType kernels.DType // NewCache's

	mu sync.Mutex
	ws workspace
}

type layer struct {
	lnW, lnB                       []float32
	q, k, v, dense, fc1, fc2       kernels.Matrix
	qB, kB, vB, denseB, fc1B, fc2B []float32
	qLnW, qLnB, kLnW, kLnB         []float32
}

// TensorSource gives named tensors of a model file set.
type TensorSource interface {
	// Matrix returns a rows×cols weight matrix in its stored dtype.
	Matrix(name string, rows, cols int) (kernels.Matrix, error)
	// Vector returns a length-n vector widened to float32.
	Vector(name string, n int) ([]float32, error)
	// Has reports whether a tensor exists.
	Has(name string) bool
	io.Closer
}

// Load opens a Hugging Face model directory (config.json and safetensors),
// or a llama.cpp GGUF file (a path ending in .gguf, see LoadGGUF), and
// loads the parts opts asks for.
func Load(dir string, opts Options) (*Model, error) {
	if strings.EqualFold(filepath.Ext(dir), ".gguf") {
		return LoadGGUF(dir, opts)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	m, err := LoadFrom(cfg, &safetensorsSource{set: set}, opts)
	if err != nil {
		set.Close()
		return nil, err
	}
	return m, nil
}

// OpenSafetensors opens the safetensors files of a Hugging Face model
// directory as the TensorSource Load reads; the caller closes it.
func OpenSafetensors(dir string) (TensorSource, error) {
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	return &safetensorsSource{set: set}, nil
}

// LoadFrom builds a model from any tensor source named as Hugging Face
// names Phi's tensors. The model owns src and closes it.
func LoadFrom(cfg *Config, src TensorSource, opts Options) (*Model, error) {
	r := opts.Layers
	if r.End < 0 {
		r.End = cfg.NumLayers
	}
	if r.Start < 0 || r.Start > r.End || r.End > cfg.NumLayers {
		return nil, fmt.Errorf("%w: layer range %v outside the model's %d layers", ErrInput, r, cfg.NumLayers)
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = DefaultThreads()
	}
	kv := cmp.Or(opts.KVCache, kernels.F32)
	if _, err := kvPerBlock(kv); err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Layers: r, closer: src, kvType: kv}
	H, V := cfg.HiddenSize, cfg.VocabSize
	var err error
	if opts.Embedding {
		if m.embed, err = src.Matrix("model.embed_tokens.weight", V, H); err != nil {
			return nil, err
		}
		if m.embed.DType.Quantized() {
			// Embed reads rows in the stored layout: a copy interleaved for
			// the products (a source may make one) would only take memory.
			m.embed.Free()
		}
		m.hasEmb = true
	}
	if opts.Head {
		if m.finalW, err = src.Vector("model.final_layernorm.weight", H); err != nil {
			return nil, err
		}
		if m.finalB, err = src.Vector("model.final_layernorm.bias", H); err != nil {
			return nil, err
		}
		name := "lm_head.weight"
		if !src.Has(name) && cfg.TieWordEmbeddings {
			name = "model.embed_tokens.weight"
		}
		if m.head, err = src.Matrix(name, V, H); err != nil {
			return nil, err
		}
		m.head = m.head.Repacked()
		if src.Has("lm_head.bias") {
			if m.headB, err = src.Vector("lm_head.bias", V); err != nil {
				return nil, err
			}
		}
		m.hasHead = true
	}
	for i := r.Start; i < r.End; i++ {
		l, err := loadLayer(cfg, src, i)
		if err != nil {
			return nil, err
		}
		m.layers = append(m.layers, l)
	}
	m.pool = kernels.NewPool(threads)
	return m, nil
}

func loadLayer(cfg *Config, src TensorSource, i int) (layer, error) {
	var l layer
	var errs []error
	for _, t := range layerTable(cfg, i, &l) {
		if t.mat != nil {
			m, err := src.Matrix(t.ref.Name, t.ref.Rows, t.ref.Cols)
			*t.mat = m.Repacked()
			errs = append(errs, err)
			continue
		}
		v, err := src.Vector(t.ref.Name, t.ref.Cols)
		*t.vec = v
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return layer{}, err
	}
	return l, nil
}

// matrices are the layer's weight matrices.
func (l *layer) matrices() []*kernels.Matrix {
	return []*kernels.Matrix{&l.q, &l.k, &l.v, &l.dense, &l.fc1, &l.fc2}
}

// WeightBytes is the size of the weights this model reads per token.
func (m *Model) WeightBytes() int64 {
	var n int64
	for _, l := range m.layers {
		for _, w := range l.matrices() {
			n += int64(w.Bytes())
		}
	}
	if m.hasHead {
		n += int64(m.head.Bytes())
	}
	return n
}

// HasEmbedding and HasHead report which ends of the model are loaded.
func (m *Model) HasEmbedding() bool { return m.hasEmb }

// HasHead reports whether the final LayerNorm and lm_head are loaded.
func (m *Model) HasHead() bool { return m.hasHead }

// DefaultThreads is the kernel threads a model takes when none are asked
// for: one per CPU the process may use, which is GOMAXPROCS — the CPUs of
// the machine, or of the process's CPU limit in a container (Go sets
// GOMAXPROCS from a cgroup CPU quota), so a worker limited to 2 CPUs on a
// 32-CPU node runs 2 threads, not 32 that the quota would stall.
func DefaultThreads() int { return runtime.GOMAXPROCS(0) }

// Threads is the number of kernel threads.
func (m *Model) Threads() int { return m.pool.Threads() }

// Close releases the kernel threads and unmaps the weight files.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pool != nil {
		m.pool.Close()
		m.pool = nil
	}
	// Repacked weights live outside the Go heap: give them back now (a
	// worker re-planning loads other layers right after).
	for i := range m.layers {
		for _, w := range m.layers[i].matrices() {
			w.Free()
		}
	}
	m.head.Free()
	m.embed.Free()
	if m.closer != nil {
		err := m.closer.Close()
		m.closer = nil
		return err
	}
	return nil
}

// safetensorsSource adapts a safetensors set to TensorSource.
type safetensorsSource struct{ set *safetensors.Set }

func (s *safetensorsSource) Has(name string) bool { return s.set.Has(name) }
func (s *safetensorsSource) Close() error         { return s.set.Close() }

func (s *safetensorsSource) tensor(name string, shape ...int) (*safetensors.Tensor, kernels.DType, error) {
	t, err := s.set.Tensor(name)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrWeights, err)
	}
	dt, err := kernels.ParseDType(t.DType)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: tensor %q: %v", ErrWeights, t.File, name, err)
	}
	ok := len(t.Shape) == len(shape)
	for i := 0; ok && i < len(shape); i++ {
		ok = t.Shape[i] == shape[i]
	}
	if !ok {
		return nil, 0, fmt.Errorf("%w: %s: tensor %q has shape %v, config wants %v", ErrWeights, t.File, name, t.Shape, shape)
	}
	return t, dt, nil
}

func (s *safetensorsSource) Matrix(name string, rows, cols int) (kernels.Matrix, error) {
	t, dt, err := s.tensor(name, rows, cols)
	if err != nil {
		return kernels.Matrix{}, err
	}
	data := t.Data
	m := kernels.Matrix{DType: dt, Rows: rows, Cols: cols, Data: data}
	copied := false
	if m.Check() != nil { // misaligned inside the file: keep an aligned copy
		m.Data, copied = alignedCopy(data), true
	}
	if err := m.Check(); err != nil {
		return kernels.Matrix{}, fmt.Errorf("%w: %s: tensor %q: %v", ErrWeights, t.File, name, err)
	}
	// A float tensor is copied to aligned, large-page memory (Repacked):
	// the mapped pages need not stay resident as well.
	if m = m.Repacked(); m.IsRepacked() && !copied {
		s.set.Release(t)
		return m, nil
	}
	s.set.Prefetch(t)
	return m, nil
}

func (s *safetensorsSource) Vector(name string, n int) ([]float32, error) {
	t, dt, err := s.tensor(name, n)
	if err != nil {
		return nil, err
	}
	m := kernels.Matrix{DType: dt, Rows: 1, Cols: n, Data: alignedCopy(t.Data)}
	out := make([]float32, n)
	m.Row(0, out)
	return out, nil
}

func alignedCopy(b []byte) []byte {
	w := make([]uint64, (len(b)+7)/8)
	out := unsafeBytes(w)[:len(b)]
	copy(out, b)
	return out
}
