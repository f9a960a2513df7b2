package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// build writes a safetensors image from a header map and a data section.
func build(t testing.TB, header map[string]any, data []byte) []byte {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(out, h...)
	return append(out, data...)
}

func entry(dtype string, shape []int, b, e int) map[string]any {
	return map[string]any{"dtype": dtype, "shape": shape, "data_offsets": []int{b, e}}
}

func TestParseValid(t *testing.T) {
	img := build(t, map[string]any{
		"__metadata__": map[string]string{"format": "pt"},
		"a":            entry("F32", []int{2, 3}, 0, 24),
		"b":            entry("BF16", []int{4}, 24, 32),
		"s":            entry("F16", []int{}, 32, 34),
		"z":            entry("F32", []int{0, 5}, 34, 34),
	}, make([]byte, 34))
	f, err := Parse("mem", img)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	a, err := f.Tensor("a")
	if err != nil || len(a.Data) != 24 || a.Elements() != 6 {
		t.Fatalf("a: %+v %v", a, err)
	}
	if got := strings.Join(f.Names(), ","); got != "a,b,s,z" {
		t.Errorf("names in data order: %s", got)
	}
	if _, err := f.Tensor("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tensor: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	data := make([]byte, 32)
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"short", []byte{1, 2, 3}, "too short"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 1<<40), "limit"},
		{"header past end", binary.LittleEndian.AppendUint64(nil, 100), "past the end"},
		{"not json", append(binary.LittleEndian.AppendUint64(nil, 4), "nope"...), "invalid header"},
		{"bad dtype", build(t, map[string]any{"x": entry("Q4", []int{4}, 0, 4)}, data), `"x"`},
		{"length mismatch", build(t, map[string]any{"x": entry("F32", []int{4}, 0, 12)}, data), "needs 16"},
		{"past data", build(t, map[string]any{"x": entry("F32", []int{16}, 0, 64)}, data), "outside"},
		{"reversed", build(t, map[string]any{"x": entry("F32", []int{0}, 8, 4)}, data), "outside"},
		{"negative dim", build(t, map[string]any{"x": entry("F32", []int{-1}, 0, 0)}, data), "negative"},
		{"overflow", build(t, map[string]any{"x": entry("F32", []int{1 << 40, 1 << 40}, 0, 0)}, data), "overflows"},
		{"negative offset", build(t, map[string]any{"x": map[string]any{"dtype": "F32", "shape": []int{1}, "data_offsets": []int{-4, 0}}}, data), "non-negative"},
		{"float offset", build(t, map[string]any{"x": map[string]any{"dtype": "F32", "shape": []int{1}, "data_offsets": []float64{0.5, 4.5}}}, data), "non-negative"},
		{"overlap", build(t, map[string]any{"x": entry("F32", []int{4}, 0, 16), "y": entry("F32", []int{4}, 8, 24)}, data), "overlap"},
		{"bad metadata", build(t, map[string]any{"__metadata__": map[string]int{"a": 1}}, data), "__metadata__"},
	} {
		_, err := Parse("file.safetensors", tc.img)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "file.safetensors") {
			t.Errorf("%s: error %v, want one naming the file and containing %q", tc.name, err, tc.want)
		}
	}
}

func TestOpenDirSharded(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, img []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.safetensors", build(t, map[string]any{"x": entry("F32", []int{2}, 0, 8)}, make([]byte, 8)))
	write("b.safetensors", build(t, map[string]any{"y": entry("F16", []int{2}, 0, 4)}, make([]byte, 4)))
	index := func(m map[string]string) {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": m})
		write(IndexFile, b)
	}
	index(map[string]string{"x": "a.safetensors", "y": "b.safetensors"})
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tensor("y"); err != nil {
		t.Error(err)
	}
	s.Close()

	index(map[string]string{"x": "b.safetensors", "y": "b.safetensors"})
	if _, err := OpenDir(dir); !errors.Is(err, ErrIndex) {
		t.Errorf("index naming the wrong shard: %v", err)
	}
	index(map[string]string{"x": "../a.safetensors"})
	if _, err := OpenDir(dir); !errors.Is(err, ErrIndex) {
		t.Errorf("index escaping the directory: %v", err)
	}
	index(map[string]string{"x": "a.safetensors", "y": "b.safetensors", "w": "a.safetensors"})
	if _, err := OpenDir(dir); !errors.Is(err, ErrIndex) {
		t.Errorf("index naming a missing tensor: %v", err)
	}
	index(map[string]string{"x": "missing.safetensors"})
	if _, err := OpenDir(dir); err == nil {
		t.Error("missing shard opened")
	}
}

func TestOpenFixture(t *testing.T) {
	s, err := OpenDir(filepath.Join("..", "..", "testdata", "phi-tiny-bf16-sharded"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, err := s.Tensor("model.embed_tokens.weight")
	if err != nil {
		t.Fatal(err)
	}
	if e.DType != "BF16" || e.Shape[0] != 768 || e.Shape[1] != 80 {
		t.Errorf("embed_tokens: %s %v", e.DType, e.Shape)
	}
	if n := len(s.Names()); n != 3*14+5 {
		t.Errorf("%d tensors", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(build(f, map[string]any{"a": entry("F32", []int{2}, 0, 8)}, make([]byte, 8)))
	f.Add(build(f, map[string]any{"a": entry("BF16", []int{2, 2}, 0, 8), "b": entry("F16", []int{1}, 8, 10)}, make([]byte, 10)))
	f.Add(binary.LittleEndian.AppendUint64(nil, 1<<62))
	f.Fuzz(func(t *testing.T, img []byte) {
		file, err := Parse("fuzz", img)
		if err != nil {
			return
		}
		for _, n := range file.Names() {
			tn, err := file.Tensor(n)
			if err != nil {
				t.Fatal(err)
			}
			if len(tn.Data) != tn.Elements()*dtypeSizes[tn.DType] {
				t.Fatalf("%s: %d bytes for %d elements of %s", n, len(tn.Data), tn.Elements(), tn.DType)
			}
		}
	})
}
