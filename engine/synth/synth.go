// Package synth writes random-weight Phi models in the Hugging Face layout
// (config.json, safetensors, optional shard index), deterministic per seed,
// so tests and benchmarks at real sizes need no download.
//
// Every tensor is drawn from its own generator seeded by (seed, crc32 of its
// name), so a model is the same whatever the shard count, and the F16 and
// BF16 variants of a seed are roundings of the same float32 values. The
// initialization is fan-in scaled, so activations keep a sane scale at any
// size:
//
//	embed_tokens            N(0, 0.02)
//	q/k/v/dense/fc1 weight  N(0, 1/sqrt(hidden))
//	fc2 weight              N(0, 1/sqrt(intermediate))
//	lm_head weight          N(0, 2/sqrt(hidden))
//	biases                  N(0, 0.02)
//	LayerNorm weight        1 + N(0, 0.05); LayerNorm bias N(0, 0.02)
package synth

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// Preset is a model shape.
type Preset struct {
	Hidden, Intermediate, Layers, Heads, KVHeads, Vocab, MaxPos int
	RotaryFactor, RopeTheta, Eps                                float64
	BOS, EOS                                                    int
}

// Presets by name: "phi-2" is microsoft/phi-2's real configuration, "tiny"
// the shape of the tiny test fixtures.
var Presets = map[string]Preset{
	"phi-2": {Hidden: 2560, Intermediate: 10240, Layers: 32, Heads: 32, KVHeads: 32, Vocab: 51200, MaxPos: 2048,
		RotaryFactor: 0.4, RopeTheta: 10000, Eps: 1e-5, BOS: 50256, EOS: 50256},
	"tiny": {Hidden: 64, Intermediate: 256, Layers: 4, Heads: 4, KVHeads: 4, Vocab: 1024, MaxPos: 256,
		RotaryFactor: 0.5, RopeTheta: 10000, Eps: 1e-5, BOS: 1023, EOS: 1023},
}

// Options for Write.
type Options struct {
	Preset Preset
	DType  kernels.DType // F32, F16 or BF16
	Seed   uint64
	Shards int // 1 (or 0) writes model.safetensors
}

type spec struct {
	name  string
	shape []int
	kind  int // 0 normal, 1 ones+normal
	std   float64
}

func (s spec) elements() int {
	n := 1
	for _, d := range s.shape {
		n *= d
	}
	return n
}

func specs(p Preset) []spec {
	H, I, V := p.Hidden, p.Intermediate, p.Vocab
	kv := p.KVHeads * (H / p.Heads)
	sH, sI := 1/math.Sqrt(float64(H)), 1/math.Sqrt(float64(I))
	out := []spec{{"model.embed_tokens.weight", []int{V, H}, 0, 0.02}}
	for i := 0; i < p.Layers; i++ {
		pre := fmt.Sprintf("model.layers.%d.", i)
		out = append(out,
			spec{pre + "self_attn.q_proj.weight", []int{H, H}, 0, sH}, spec{pre + "self_attn.q_proj.bias", []int{H}, 0, 0.02},
			spec{pre + "self_attn.k_proj.weight", []int{kv, H}, 0, sH}, spec{pre + "self_attn.k_proj.bias", []int{kv}, 0, 0.02},
			spec{pre + "self_attn.v_proj.weight", []int{kv, H}, 0, sH}, spec{pre + "self_attn.v_proj.bias", []int{kv}, 0, 0.02},
			spec{pre + "self_attn.dense.weight", []int{H, H}, 0, sH}, spec{pre + "self_attn.dense.bias", []int{H}, 0, 0.02},
			spec{pre + "mlp.fc1.weight", []int{I, H}, 0, sH}, spec{pre + "mlp.fc1.bias", []int{I}, 0, 0.02},
			spec{pre + "mlp.fc2.weight", []int{H, I}, 0, sI}, spec{pre + "mlp.fc2.bias", []int{H}, 0, 0.02},
			spec{pre + "input_layernorm.weight", []int{H}, 1, 0.05}, spec{pre + "input_layernorm.bias", []int{H}, 0, 0.02},
		)
	}
	return append(out,
		spec{"model.final_layernorm.weight", []int{H}, 1, 0.05}, spec{"model.final_layernorm.bias", []int{H}, 0, 0.02},
		spec{"lm_head.weight", []int{V, H}, 0, 2 * sH}, spec{"lm_head.bias", []int{V}, 0, 0.02},
	)
}

// ConfigJSON is the config.json of a preset, as Hugging Face writes it.
func ConfigJSON(p Preset, dt kernels.DType) ([]byte, error) {
	torch := map[kernels.DType]string{kernels.F32: "float32", kernels.F16: "float16", kernels.BF16: "bfloat16"}[dt]
	return json.MarshalIndent(map[string]any{
		"architectures": []string{"PhiForCausalLM"}, "model_type": "phi",
		"attention_dropout": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
		"bos_token_id": p.BOS, "eos_token_id": p.EOS, "hidden_act": "gelu_new",
		"hidden_size": p.Hidden, "intermediate_size": p.Intermediate, "initializer_range": 0.02,
		"layer_norm_eps": p.Eps, "max_position_embeddings": p.MaxPos,
		"num_attention_heads": p.Heads, "num_hidden_layers": p.Layers, "num_key_value_heads": p.KVHeads,
		"partial_rotary_factor": p.RotaryFactor, "qk_layernorm": false, "rope_scaling": nil,
		"rope_theta": p.RopeTheta, "tie_word_embeddings": false, "torch_dtype": torch,
		"use_cache": true, "vocab_size": p.Vocab,
	}, "", "  ")
}

// Write creates dir and writes the model into it.
func Write(dir string, o Options) error {
	if o.DType.Size() == 0 {
		return fmt.Errorf("synth: dtype %v", o.DType)
	}
	p := o.Preset
	if p.Hidden <= 0 || p.Heads <= 0 || p.Hidden%p.Heads != 0 || p.KVHeads <= 0 || p.Heads%p.KVHeads != 0 {
		return fmt.Errorf("synth: inconsistent preset %+v", p)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, err := ConfigJSON(p, o.DType)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(cfg, '\n'), 0o644); err != nil {
		return err
	}
	all := specs(p)
	shards := max(o.Shards, 1)
	// Split in state-dict order into shards of roughly equal bytes.
	var total int64
	for _, s := range all {
		total += int64(s.elements() * o.DType.Size())
	}
	groups := make([][]spec, shards)
	var acc int64
	for _, s := range all {
		g := int(acc * int64(shards) / max(total, 1))
		groups[min(g, shards-1)] = append(groups[min(g, shards-1)], s)
		acc += int64(s.elements() * o.DType.Size())
	}
	weightMap := map[string]string{}
	for i, g := range groups {
		name := "model.safetensors"
		if shards > 1 {
			name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, shards)
		}
		if err := writeFile(filepath.Join(dir, name), g, o); err != nil {
			return err
		}
		for _, s := range g {
			weightMap[s.name] = name
		}
	}
	if shards > 1 {
		idx, err := json.MarshalIndent(map[string]any{
			"metadata": map[string]any{"total_size": total}, "weight_map": weightMap,
		}, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), append(idx, '\n'), 0o644)
	}
	return nil
}

func writeFile(path string, group []spec, o Options) error {
	sort.Slice(group, func(i, j int) bool { return group[i].name < group[j].name })
	size := o.DType.Size()
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	offsets := make([]int64, len(group))
	var off int64
	for i, s := range group {
		n := int64(s.elements() * size)
		offsets[i] = off
		header[s.name] = map[string]any{"dtype": o.DType.String(), "shape": s.shape, "data_offsets": []int64{off, off + n}}
		off += n
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(8 + int64(len(h)) + off); err != nil {
		return err
	}
	if _, err := f.WriteAt(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(h, 8); err != nil {
		return err
	}
	base := 8 + int64(len(h))
	// Tensors are independent: fill them on every core.
	var wg sync.WaitGroup
	errs := make(chan error, len(group))
	sem := make(chan struct{}, runtime.NumCPU())
	for i, s := range group {
		wg.Add(1)
		sem <- struct{}{}
		go func(s spec, at int64) {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- fillTensor(f, at, s, o)
		}(s, base+offsets[i])
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		if e != nil {
			return e
		}
	}
	return f.Close()
}

func fillTensor(f *os.File, at int64, s spec, o Options) error {
	rng := rand.New(rand.NewPCG(o.Seed, uint64(crc32.ChecksumIEEE([]byte(s.name)))))
	w := bufio.NewWriterSize(&offsetWriter{f: f, off: at}, 1<<20)
	var buf [4]byte
	for i, n := 0, s.elements(); i < n; i++ {
		v := float32(rng.NormFloat64() * s.std)
		if s.kind == 1 {
			v += 1
		}
		var b []byte
		switch o.DType {
		case kernels.F32:
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
			b = buf[:4]
		case kernels.F16:
			binary.LittleEndian.PutUint16(buf[:], kernels.F32ToF16(v))
			b = buf[:2]
		case kernels.BF16:
			binary.LittleEndian.PutUint16(buf[:], kernels.F32ToBF16(v))
			b = buf[:2]
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return w.Flush()
}

type offsetWriter struct {
	f   *os.File
	off int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}
