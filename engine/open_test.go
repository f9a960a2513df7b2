package engine

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// Open answers the same questions for a Hugging Face directory and for a
// GGUF file of the same model: configuration, identity, per-layer sizes;
// the models it loads compute the same greedy tokens.
func TestOpenBothFormats(t *testing.T) {
	dir := fixtureDir("phi-tiny-f32")
	hf, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	gg, err := Open(writeGGUFFile(t, dir, kernels.F32, false))
	if err != nil {
		t.Fatal(err)
	}
	if hf.Format != FormatSafetensors || gg.Format != FormatGGUF {
		t.Fatalf("formats %q and %q", hf.Format, gg.Format)
	}
	if hf.Config.NumLayers != gg.Config.NumLayers || hf.Config.HiddenSize != gg.Config.HiddenSize || hf.Config.VocabSize != gg.Config.VocabSize {
		t.Fatalf("configs differ: %+v vs %+v", hf.Config, gg.Config)
	}
	if hf.ID == "" || gg.ID == "" || hf.ID == gg.ID || !strings.HasPrefix(hf.ID, "phi-tiny-f32@") {
		t.Fatalf("identities %q and %q", hf.ID, gg.ID)
	}
	if again, _ := Open(dir); again.ID != hf.ID {
		t.Fatalf("identity not stable: %q then %q", hf.ID, again.ID)
	}
	for i := range hf.LayerBytes {
		// Same F32 weights; the GGUF fuses q, k, v, which adds nothing.
		if hf.LayerBytes[i] == 0 || hf.LayerBytes[i] != gg.LayerBytes[i] {
			t.Fatalf("layer %d: %d bytes in the directory, %d in the GGUF", i, hf.LayerBytes[i], gg.LayerBytes[i])
		}
	}
	if hf.RangeBytes(LayerRange{Start: 0, End: 2}) != hf.LayerBytes[0]+hf.LayerBytes[1] || hf.MaxLayerBytes() < hf.LayerBytes[0] {
		t.Fatal("range sizes do not add up")
	}
	prompt := []int{5, 6, 7}
	var want []int
	for _, mf := range []*ModelFiles{hf, gg} {
		m, err := mf.Load(Options{Layers: AllLayers, Embedding: true, Head: true, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Greedy(m, prompt, 6)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = got
		} else if !slices.Equal(got, want) {
			t.Fatalf("GGUF greedy %v, directory %v", got, want)
		}
	}
}

// Paths that are not models fail with the cause, not a later confusion.
func TestOpenRefusesNonModels(t *testing.T) {
	tmp := t.TempDir()
	notModel := filepath.Join(tmp, "notes.txt")
	os.WriteFile(notModel, []byte("hello"), 0o644)
	badGGUF := filepath.Join(tmp, "bad.gguf")
	os.WriteFile(badGGUF, []byte("GGUFxxxx"), 0o644)
	for _, p := range []string{filepath.Join(tmp, "missing"), tmp, notModel, badGGUF} {
		_, err := Open(p)
		if err == nil || !(errors.Is(err, ErrConfig) || errors.Is(err, ErrWeights)) {
			t.Errorf("Open(%s): %v", p, err)
		}
	}
}
