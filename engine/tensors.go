package engine

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/phalanx-llm/phalanx/engine/gguf"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/engine/safetensors"
)

// TensorRef names one tensor a decoder layer needs, under its Hugging Face
// name, with the shape the configuration gives it: a matrix of Rows×Cols,
// or (Vector) a vector of Cols values with Rows 1.
type TensorRef struct {
	Name   string
	Vector bool
	Rows   int
	Cols   int
}

// layerTensor is one row of the table loadLayer fills a layer from.
type layerTensor struct {
	ref TensorRef
	mat *kernels.Matrix // nil for a vector
	vec *[]float32
}

// layerTable is the one list of a layer's tensors: loadLayer fills l from
// it, LayerTensors publishes it (l may be a scratch layer).
func layerTable(cfg *Config, i int, l *layer) []layerTensor {
	H, I, D := cfg.HiddenSize, cfg.IntermediateSize, cfg.HeadDim
	qDim, kvDim := cfg.NumHeads*D, cfg.KVDim()
	p := fmt.Sprintf("model.layers.%d.", i)
	var t []layerTensor
	mat := func(dst *kernels.Matrix, name string, rows, cols int) {
		t = append(t, layerTensor{ref: TensorRef{Name: p + name, Rows: rows, Cols: cols}, mat: dst})
	}
	vec := func(dst *[]float32, name string, n int) {
		t = append(t, layerTensor{ref: TensorRef{Name: p + name, Vector: true, Rows: 1, Cols: n}, vec: dst})
	}
	vec(&l.lnW, "input_layernorm.weight", H)
	vec(&l.lnB, "input_layernorm.bias", H)
	mat(&l.q, "self_attn.q_proj.weight", qDim, H)
	vec(&l.qB, "self_attn.q_proj.bias", qDim)
	mat(&l.k, "self_attn.k_proj.weight", kvDim, H)
	vec(&l.kB, "self_attn.k_proj.bias", kvDim)
	mat(&l.v, "self_attn.v_proj.weight", kvDim, H)
	vec(&l.vB, "self_attn.v_proj.bias", kvDim)
	mat(&l.dense, "self_attn.dense.weight", H, qDim)
	vec(&l.denseB, "self_attn.dense.bias", H)
	mat(&l.fc1, "mlp.fc1.weight", I, H)
	vec(&l.fc1B, "mlp.fc1.bias", I)
	mat(&l.fc2, "mlp.fc2.weight", H, I)
	vec(&l.fc2B, "mlp.fc2.bias", H)
	if cfg.QKLayerNorm {
		vec(&l.qLnW, "self_attn.q_layernorm.weight", D)
		vec(&l.qLnB, "self_attn.q_layernorm.bias", D)
		vec(&l.kLnW, "self_attn.k_layernorm.weight", D)
		vec(&l.kLnB, "self_attn.k_layernorm.bias", D)
	}
	return t
}

// LayerTensors lists the tensors decoder layer i needs, exactly those
// LoadFrom asks its TensorSource for: a serving side enumerates a layer
// range's weights with it.
func LayerTensors(cfg *Config, i int) []TensorRef {
	var scratch layer
	table := layerTable(cfg, i, &scratch)
	refs := make([]TensorRef, len(table))
	for j, t := range table {
		refs[j] = t.ref
	}
	return refs
}

// StoredTensors gives a model's tensors as bytes to ship elsewhere:
// matrices in their stored dtype (for a GGUF file's fused attn_qkv, the
// rows of the part asked for), vectors widened to F32 (the engine widens
// them at load anyway; they are a tenth of a percent of the bytes).
type StoredTensors interface {
	// Stored returns ref's dtype and bytes; they stay valid until Close.
	Stored(ref TensorRef) (kernels.DType, []byte, error)
	Close() error
}

// OpenStored opens the model's weight files for StoredTensors.
func (mf *ModelFiles) OpenStored() (StoredTensors, error) {
	if mf.Format == FormatGGUF {
		f, err := gguf.Map(mf.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrWeights, err)
		}
		return &storedSource{src: &ggufSource{f: f, cfg: mf.Config}}, nil
	}
	set, err := safetensors.OpenDir(mf.Path)
	if err != nil {
		return nil, err
	}
	return &storedSource{src: &safetensorsSource{set: set}}, nil
}

// storedSource serves stored bytes from a file-backed source.
type storedSource struct{ src TensorSource }

func (s *storedSource) Close() error { return s.src.Close() }

func (s *storedSource) Stored(ref TensorRef) (kernels.DType, []byte, error) {
	if ref.Vector {
		v, err := s.src.Vector(ref.Name, ref.Cols)
		if err != nil {
			return 0, nil, err
		}
		return kernels.F32, F32Bytes(v), nil
	}
	switch src := s.src.(type) {
	case *safetensorsSource:
		t, dt, err := src.tensor(ref.Name, ref.Rows, ref.Cols)
		if err != nil {
			return 0, nil, err
		}
		return dt, t.Data, nil
	case *ggufSource:
		t, first, total, err := src.lookup(ref.Name, ref.Rows)
		if err != nil {
			return 0, nil, err
		}
		data, dt, err := src.rows(t, ref.Name, first, ref.Rows, total, ref.Cols, false)
		return dt, data, err
	}
	return 0, nil, fmt.Errorf("%w: no stored bytes for %q", ErrWeights, ref.Name)
}

// F32Bytes is v as little-endian bytes.
func F32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
