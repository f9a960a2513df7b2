package engine

import (
	"errors"
	"testing"

	"github.com/phalanx-llm/phalanx/engine/kernels"
)

// After Close every entry point says so instead of touching unmapped or
// released weights (repacked copies are returned at Close).
func TestClosedModelRefuses(t *testing.T) {
	for _, path := range []string{fixtureDir(fixtures[0]), writeGGUFFile(t, fixtureDir(fixtures[0]), kernels.Q4_0, false)} {
		m := loadFull(t, path)
		H, V := m.Config.HiddenSize, m.Config.VocabSize
		cache := m.NewCache()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		x := make([]float32, H)
		if err := m.Embed([]int{1}, x); !errors.Is(err, ErrNotHeld) {
			t.Errorf("Embed after Close: %v", err)
		}
		if err := m.Forward(x, []Span{{Cache: cache, Tokens: 1}}); !errors.Is(err, ErrNotHeld) {
			t.Errorf("Forward after Close: %v", err)
		}
		if err := m.Logits(x, make([]float32, V)); !errors.Is(err, ErrNotHeld) {
			t.Errorf("Logits after Close: %v", err)
		}
	}
}
