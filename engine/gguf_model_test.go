package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/gguf"
	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// roundedSource gives a fixture's matrices converted to another dtype in
// memory, the way the converter converts them: a safetensors model with the
// same rounded weights as a GGUF file.
type roundedSource struct {
	TensorSource
	typ kernels.DType
}

func (s roundedSource) Matrix(name string, rows, cols int) (kernels.Matrix, error) {
	m, err := s.TensorSource.Matrix(name, rows, cols)
	if err != nil {
		return m, err
	}
	typ := s.typ
	if typ.RowBytes(cols) < 0 {
		typ = kernels.F16
	}
	rb := typ.RowBytes(cols)
	w := make([]uint64, (rows*rb+7)/8)
	out := kernels.Matrix{DType: typ, Rows: rows, Cols: cols, Data: unsafeBytes(w)[:rows*rb]}
	x := make([]float32, cols)
	for r := 0; r < rows; r++ {
		m.Row(r, x)
		kernels.EncodeRow(typ, out.Data[r*rb:(r+1)*rb], x)
	}
	return out, nil
}

func loadRounded(t testing.TB, dir string, typ kernels.DType) *Model {
	t.Helper()
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := roundedSource{TensorSource: m.closer.(TensorSource), typ: typ}
	m.closer = nil
	m.Close()
	r, err := LoadFrom(cfg, src, Options{Layers: AllLayers, Embedding: true, Head: true, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// An F32 GGUF reproduces the golden logits and greedy tokens.
func TestGGUFGoldenF32(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			g := loadGolden(t, fx)
			m := loadFull(t, writeGGUFFile(t, fixtureDir(fx), kernels.F32, false))
			ref := loadFull(t, fixtureDir(fx))
			if got, want := *m.Config, *ref.Config; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("config from GGUF\n%+v\nfrom config.json\n%+v", got, want)
			}
			for _, c := range g.Cases {
				logits, worst := goldenLogits(t, m, c)
				if worst > 1e-4 {
					t.Errorf("%s: logits differ by %.3g (limit 1e-4)", c.Name, worst)
				}
				if !equalBits(logits, allLogits(t, ref, c.InputIDs)) {
					t.Errorf("%s: logits differ from the safetensors model's", c.Name)
				}
				goldenGreedy(t, m, c)
			}
		})
	}
}

// F16, Q8_0 and Q4_0 files run exactly as the safetensors model with the
// same rounded weights: the loader adds no error of its own.
func TestGGUFMatchesRoundedWeights(t *testing.T) {
	for _, fx := range fixtures {
		for _, typ := range []kernels.DType{kernels.F16, kernels.Q8_0, kernels.Q4_0} {
			t.Run(fx+"/"+typ.String(), func(t *testing.T) {
				g := loadGolden(t, fx)
				m := loadFull(t, writeGGUFFile(t, fixtureDir(fx), typ, false))
				ref := loadRounded(t, fixtureDir(fx), typ)
				V := m.Config.VocabSize
				worst := 0.0
				for _, c := range g.Cases {
					logits := allLogits(t, m, c.InputIDs)
					if !equalBits(logits, allLogits(t, ref, c.InputIDs)) {
						t.Errorf("%s: logits differ from the rounded safetensors model's", c.Name)
					}
					for i, pos := range c.LogitsFull.Positions {
						worst = math.Max(worst, maxDiff(logits[pos*V:(pos+1)*V], c.LogitsFull.Rows[i]))
					}
					if typ == kernels.F16 {
						got, err := Greedy(m, c.InputIDs, len(c.Greedy.Tokens))
						if err != nil {
							t.Fatal(err)
						}
						want, err := Greedy(ref, c.InputIDs, len(c.Greedy.Tokens))
						if err != nil {
							t.Fatal(err)
						}
						if !slices.Equal(got, want) {
							t.Errorf("%s: greedy %v, rounded safetensors %v", c.Name, got, want)
						}
						if !slices.Equal(got, c.Greedy.Tokens) {
							t.Logf("%s: F16 greedy %v differs from the F32 golden %v", c.Name, got, c.Greedy.Tokens)
						}
					}
				}
				t.Logf("max logit deviation from golden: %.3g", worst)
			})
		}
	}
}

// Split attn_q/k/v tensors give what the fused attn_qkv gives.
func TestGGUFSplitQKV(t *testing.T) {
	for _, fx := range fixtures {
		for _, typ := range []kernels.DType{kernels.F32, kernels.Q8_0} {
			t.Run(fx+"/"+typ.String(), func(t *testing.T) {
				fusedPath := writeGGUFFile(t, fixtureDir(fx), typ, false)
				splitPath := writeGGUFFile(t, fixtureDir(fx), typ, true)
				for path, want := range map[string]string{fusedPath: "blk.0.attn_qkv.weight", splitPath: "blk.0.attn_k.bias"} {
					f, err := gguf.Open(path)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.Tensor(want); err != nil {
						t.Error(err)
					}
					f.Close()
				}
				fused, split := loadFull(t, fusedPath), loadFull(t, splitPath)
				ids := loadGolden(t, fx).Cases[2].InputIDs
				if !equalBits(allLogits(t, fused, ids), allLogits(t, split, ids)) {
					t.Error("split q/k/v logits differ from fused")
				}
			})
		}
	}
}

// Loading [0,k) and [k,L) from a GGUF file and chaining them is bit-identical
// to the whole model.
func TestGGUFSplitLayerRangesBitIdentical(t *testing.T) {
	for _, fx := range fixtures {
		for _, typ := range []kernels.DType{kernels.Q8_0, kernels.Q4_0} {
			t.Run(fx+"/"+typ.String(), func(t *testing.T) {
				path := writeGGUFFile(t, fixtureDir(fx), typ, false)
				checkSplitsBitIdentical(t, path, loadGolden(t, fx).Cases[2].InputIDs)
			})
		}
	}
}

// Quantized files decode token by token (and in small chunks) to exactly a
// full pass's logits: Q4_0 weights are repacked for the AVX-512 kernels, and
// their one-token and batched kernels must agree bit for bit.
func TestGGUFKVCacheMatchesFullPass(t *testing.T) {
	for _, fx := range fixtures {
		for _, typ := range []kernels.DType{kernels.Q8_0, kernels.Q4_0} {
			t.Run(fx+"/"+typ.String(), func(t *testing.T) {
				m := loadFull(t, writeGGUFFile(t, fixtureDir(fx), typ, false))
				for _, c := range loadGolden(t, fx).Cases {
					full := allLogits(t, m, c.InputIDs)
					for _, chunk := range []int{1, 2, 5} {
						if d := maxDiff(full, decodeStepwise(t, m, c.InputIDs, chunk)); d != 0 {
							t.Errorf("%s chunk %d: KV-cache logits differ from a full pass by %.3g", c.Name, chunk, d)
						}
					}
				}
			})
		}
	}
}

// rewriteGGUF copies a GGUF file through edit, which may change or drop
// (nil) metadata values, and tensor, which may rename, retype or drop ("")
// tensors; it returns the new file's path.
func rewriteGGUF(t testing.TB, path string, edit func(key string, v gguf.Value) *gguf.Value, tensor func(ti *gguf.TensorInfo) (name string, typ gguf.Type, dims []uint64)) string {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := gguf.NewWriter()
	for _, k := range f.Keys() {
		v, _ := f.Value(k)
		if edit != nil {
			nv := edit(k, v)
			if nv == nil {
				continue
			}
			v = *nv
		}
		w.Set(k, v)
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		name, typ, dims := ti.Name, ti.Type, ti.Dims
		if tensor != nil {
			name, typ, dims = tensor(ti)
		}
		if name == "" {
			continue
		}
		data, err := f.ReadTensor(ti)
		if err != nil {
			t.Fatal(err)
		}
		// A retyped or reshaped tensor keeps its bytes, cut or extended
		// with a fixed pattern to the new size.
		elems := uint64(1)
		for _, d := range dims {
			elems *= d
		}
		size, err := typ.RowBytes(elems)
		if err != nil {
			t.Fatalf("test edit of %q: %v", ti.Name, err)
		}
		for i := len(data); i < int(size); i++ {
			data = append(data, byte(i*37%251))
		}
		data = data[:size]
		if err := w.AddTensor(name, typ, dims, data); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "edited.gguf")
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every ggml type the kernels run loads as a view of its bytes: K-quant and
// BF16 rows read back exactly as kernels.DequantizeRow reads the file.
func TestGGUFTensorTypes(t *testing.T) {
	path := writeGGUFFile(t, fixtureDir("phi-tiny-f32"), kernels.F32, false)
	for _, typ := range []gguf.Type{gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeF16} {
		t.Run(typ.String(), func(t *testing.T) {
			// ffn_down has rows of 256 values, one K-quant super-block.
			edited := rewriteGGUF(t, path, nil, func(ti *gguf.TensorInfo) (string, gguf.Type, []uint64) {
				if ti.Name == "blk.1.ffn_down.weight" {
					return ti.Name, typ, ti.Dims
				}
				return ti.Name, ti.Type, ti.Dims
			})
			m, err := Load(edited, Options{Layers: LayerRange{1, 2}, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			f, err := gguf.Open(edited)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ti, err := f.Tensor("blk.1.ffn_down.weight")
			if err != nil {
				t.Fatal(err)
			}
			raw, err := f.ReadTensor(ti)
			if err != nil {
				t.Fatal(err)
			}
			w := m.layers[0].fc2
			dt, _ := ggufDType(typ)
			if w.DType != dt || w.Rows != 64 || w.Cols != 256 {
				t.Fatalf("matrix %v %dx%d", w.DType, w.Rows, w.Cols)
			}
			rb := dt.RowBytes(256)
			got, want := make([]float32, 256), make([]float32, 256)
			for r := 0; r < w.Rows; r++ {
				w.Row(r, got)
				kernels.DequantizeRow(dt, raw[r*rb:(r+1)*rb], want)
				if !equalBits(got, want) {
					t.Fatalf("row %d differs from the file's bytes", r)
				}
			}
		})
	}
}

// Without rope.dimension_count llama.cpp rotates the whole head.
func TestGGUFRotaryDefaults(t *testing.T) {
	path := writeGGUFFile(t, fixtureDir("phi-tiny-f32"), kernels.F32, false)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ConfigFromGGUF(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RotaryDim != 8 || cfg.HeadDim != 16 || cfg.RopeTheta != 10000 || cfg.NumKVHeads != 4 {
		t.Errorf("config %+v", cfg)
	}
	noRope := rewriteGGUF(t, path, func(k string, v gguf.Value) *gguf.Value {
		if k == "phi2.rope.dimension_count" || k == "phi2.attention.head_count_kv" {
			return nil
		}
		return &v
	}, nil)
	m, err := Load(noRope, Options{Layers: AllLayers, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if c := m.Config; c.RotaryDim != c.HeadDim || c.PartialRotaryFactor != 1 || c.NumKVHeads != c.NumHeads {
		t.Errorf("without rope.dimension_count: rotary %d of head %d (factor %v), kv heads %d", c.RotaryDim, c.HeadDim, c.PartialRotaryFactor, c.NumKVHeads)
	}
	for _, tc := range []struct{ rot, head int }{{24, 80}, {32, 80}, {26, 96}, {10, 30}, {2, 2}, {0, 64}} {
		p := rotaryFactor(tc.rot, tc.head)
		if got := int(float64(tc.head) * p); got != tc.rot {
			t.Errorf("rotaryFactor(%d, %d) = %v gives %d", tc.rot, tc.head, p, got)
		}
	}
}

// Bad files fail with errors that name what is wrong.
func TestGGUFRejects(t *testing.T) {
	path := writeGGUFFile(t, fixtureDir("phi-tiny-f32"), kernels.Q8_0, false)
	drop := func(key string) func(string, gguf.Value) *gguf.Value {
		return func(k string, v gguf.Value) *gguf.Value {
			if k == key {
				return nil
			}
			return &v
		}
	}
	set := func(key string, nv gguf.Value) func(string, gguf.Value) *gguf.Value {
		return func(k string, v gguf.Value) *gguf.Value {
			if k == key {
				return &nv
			}
			return &v
		}
	}
	tensor := func(name string, f func(ti *gguf.TensorInfo) (string, gguf.Type, []uint64)) func(*gguf.TensorInfo) (string, gguf.Type, []uint64) {
		return func(ti *gguf.TensorInfo) (string, gguf.Type, []uint64) {
			if ti.Name == name {
				return f(ti)
			}
			return ti.Name, ti.Type, ti.Dims
		}
	}
	for _, tc := range []struct {
		name   string
		edit   func(string, gguf.Value) *gguf.Value
		tensor func(*gguf.TensorInfo) (string, gguf.Type, []uint64)
		want   []string
		is     error
	}{
		{"architecture", set("general.architecture", gguf.String("llama")), nil, []string{`"llama"`}, ErrConfig},
		{"no block count", drop("phi2.block_count"), nil, []string{"phi2.block_count"}, ErrConfig},
		{"string head count", set("phi2.attention.head_count", gguf.String("4")), nil, []string{"phi2.attention.head_count"}, ErrConfig},
		{"huge hidden", set("phi2.embedding_length", gguf.Uint64(1<<40)), nil, []string{"phi2.embedding_length"}, ErrConfig},
		{"heads do not divide", set("phi2.attention.head_count", gguf.Uint32(5)), nil, []string{"hidden_size 64"}, ErrConfig},
		{"odd rotary", set("phi2.rope.dimension_count", gguf.Uint32(7)), nil, []string{"odd"}, ErrConfig},
		{"rotary wider than head", set("phi2.rope.dimension_count", gguf.Uint32(18)), nil, []string{"rope.dimension_count 18"}, ErrConfig},
		{"eos outside vocab", set("tokenizer.ggml.eos_token_id", gguf.Uint32(5000)), nil, []string{"eos_token_id"}, ErrConfig},
		{"missing ffn_down", nil, tensor("blk.2.ffn_down.weight", func(*gguf.TensorInfo) (string, gguf.Type, []uint64) { return "", 0, nil }),
			[]string{"blk.2.ffn_down.weight"}, ErrWeights},
		{"missing qkv", nil, tensor("blk.1.attn_qkv.weight", func(*gguf.TensorInfo) (string, gguf.Type, []uint64) { return "", 0, nil }),
			[]string{"blk.1.attn_q.weight", "blk.1.attn_qkv.weight"}, ErrWeights},
		{"transposed ffn_up", nil, tensor("blk.3.ffn_up.weight", func(ti *gguf.TensorInfo) (string, gguf.Type, []uint64) {
			return ti.Name, ti.Type, []uint64{ti.Dims[1], ti.Dims[0]}
		}), []string{"blk.3.ffn_up.weight", "[256 64]"}, ErrWeights},
		{"short qkv", nil, tensor("blk.0.attn_qkv.weight", func(ti *gguf.TensorInfo) (string, gguf.Type, []uint64) {
			return ti.Name, ti.Type, []uint64{ti.Dims[0], ti.Dims[1] - 1}
		}), []string{"blk.0.attn_qkv.weight", "[64 191]"}, ErrWeights},
		{"3-D bias", nil, tensor("blk.0.ffn_up.bias", func(ti *gguf.TensorInfo) (string, gguf.Type, []uint64) {
			return ti.Name, ti.Type, []uint64{ti.Dims[0], 1, 1}
		}), []string{"blk.0.ffn_up.bias"}, ErrWeights},
		{"unsupported type", nil, tensor("output.weight", func(ti *gguf.TensorInfo) (string, gguf.Type, []uint64) {
			return ti.Name, gguf.TypeQ4_1, ti.Dims
		}), []string{"output.weight", "Q4_1"}, ErrWeights},
		{"I32 norm", nil, tensor("output_norm.weight", func(ti *gguf.TensorInfo) (string, gguf.Type, []uint64) {
			return ti.Name, gguf.TypeI32, ti.Dims
		}), []string{"output_norm.weight", "I32"}, ErrWeights},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := rewriteGGUF(t, path, tc.edit, tc.tensor)
			m, err := Load(bad, Options{Layers: AllLayers, Embedding: true, Head: true, Threads: 1})
			if err == nil {
				m.Close()
				t.Fatal("loaded")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	// A range of layers does not read the others' tensors.
	bad := rewriteGGUF(t, path, nil, tensor("blk.3.ffn_up.weight", func(ti *gguf.TensorInfo) (string, gguf.Type, []uint64) {
		return ti.Name, gguf.TypeQ4_1, ti.Dims
	}))
	m, err := Load(bad, Options{Layers: LayerRange{0, 3}, Threads: 1})
	if err != nil {
		t.Fatalf("layers [0,3) of a file whose layer 3 is bad: %v", err)
	}
	m.Close()
}

// smallGGUF writes a one-layer phi2 model (hidden 32, vocab 32) with random
// weights of type typ, small enough for the fuzzer to mutate quickly.
func smallGGUF(t testing.TB, typ kernels.DType, split bool) []byte {
	t.Helper()
	const H, I, V, heads = 32, 64, 32, 2
	w := gguf.NewWriter()
	w.Set("general.architecture", gguf.String("phi2"))
	for k, v := range map[string]int{"context_length": 64, "embedding_length": H, "feed_forward_length": I,
		"block_count": 1, "attention.head_count": heads, "rope.dimension_count": 8} {
		w.Set("phi2."+k, gguf.Uint32(uint32(v)))
	}
	w.Set("phi2.attention.layer_norm_epsilon", gguf.Float32(1e-5))
	w.Set("tokenizer.ggml.eos_token_id", gguf.Uint32(V-1))
	rng := uint32(1)
	random := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			rng = rng*1664525 + 1013904223
			x[i] = float32(int32(rng>>8)-1<<23) / (1 << 25)
		}
		return x
	}
	add := func(name string, d kernels.DType, rows, cols int) {
		rb := d.RowBytes(cols)
		data := make([]byte, rows*rb)
		x := random(rows * cols)
		for r := 0; r < rows; r++ {
			kernels.EncodeRow(d, data[r*rb:(r+1)*rb], x[r*cols:(r+1)*cols])
		}
		dims := []uint64{uint64(cols), uint64(rows)}
		if rows == 1 {
			dims = dims[:1]
		}
		if err := w.AddTensor(name, ggufTypeOf(d), dims, data); err != nil {
			t.Fatal(err)
		}
	}
	add("token_embd.weight", typ, V, H)
	add("blk.0.attn_norm.weight", kernels.F32, 1, H)
	add("blk.0.attn_norm.bias", kernels.F16, 1, H)
	if split {
		for _, n := range []string{"attn_q", "attn_k", "attn_v"} {
			add("blk.0."+n+".weight", typ, H, H)
			add("blk.0."+n+".bias", kernels.F32, 1, H)
		}
	} else {
		add("blk.0.attn_qkv.weight", typ, 3*H, H)
		add("blk.0.attn_qkv.bias", kernels.F32, 1, 3*H)
	}
	add("blk.0.attn_output.weight", typ, H, H)
	add("blk.0.attn_output.bias", kernels.F32, 1, H)
	add("blk.0.ffn_up.weight", typ, I, H)
	add("blk.0.ffn_up.bias", kernels.F32, 1, I)
	add("blk.0.ffn_down.weight", typ, H, I)
	add("blk.0.ffn_down.bias", kernels.F32, 1, H)
	add("output_norm.weight", kernels.F32, 1, H)
	add("output_norm.bias", kernels.F32, 1, H)
	add("output.weight", typ, V, H)
	add("output.bias", kernels.F32, 1, V)
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Hostile GGUF files fail cleanly: no panic, no allocation beyond what the
// file's own bytes justify.
func FuzzLoadGGUF(f *testing.F) {
	f.Add(smallGGUF(f, kernels.Q8_0, false))
	f.Add(smallGGUF(f, kernels.Q4_0, true))
	f.Add(smallGGUF(f, kernels.F16, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := gguf.NewFile(bytes.NewReader(b), int64(len(b)), "fuzz.gguf")
		if err != nil {
			return
		}
		m, err := loadGGUFFile(file, Options{Layers: AllLayers, Embedding: true, Head: true, Threads: 1})
		if err != nil {
			return
		}
		defer m.Close()
		// Every size the forward pass allocates for is bounded by tensors
		// the file holds, so one token runs within the file's means.
		H, V := m.Config.HiddenSize, m.Config.VocabSize
		x := make([]float32, H)
		if err := m.Embed([]int{0}, x); err != nil {
			t.Fatal(err)
		}
		if err := m.Forward(x, []Span{{Cache: m.NewCache(), Tokens: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := m.Logits(x, make([]float32, V)); err != nil {
			t.Fatal(err)
		}
	})
}

// The small fuzz seeds load and run, fused and split alike.
func TestSmallGGUFSeeds(t *testing.T) {
	for _, typ := range []kernels.DType{kernels.Q8_0, kernels.Q4_0, kernels.F16, kernels.F32} {
		var logits [2][]float32
		for i, split := range []bool{false, true} {
			b := smallGGUF(t, typ, split)
			file, err := gguf.NewFile(bytes.NewReader(b), int64(len(b)), "small.gguf")
			if err != nil {
				t.Fatal(err)
			}
			m, err := loadGGUFFile(file, Options{Layers: AllLayers, Embedding: true, Head: true, Threads: 1})
			if err != nil {
				t.Fatalf("%v split=%v: %v", typ, split, err)
			}
			logits[i] = allLogits(t, m, []int{0, 5, 31})
			m.Close()
		}
		// Split files draw q, k and v from the random stream in another
		// order, so only their shapes and finiteness are comparable.
		for _, v := range append(logits[0], logits[1]...) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%v: non-finite logit", typ)
			}
		}
	}
}
