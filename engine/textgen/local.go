package textgen

import (
	"context"
	"fmt"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

// LocalBackend runs a sequence on a model held in this process (every layer,
// the embedding and the head).
type LocalBackend struct {
	model  *engine.Model
	cache  *engine.KVCache
	hidden []float32
}

// NewLocalBackend starts a sequence on m.
func NewLocalBackend(m *engine.Model) (*LocalBackend, error) {
	if !m.HasEmbedding() || !m.HasHead() || m.Layers.Start != 0 || m.Layers.End != m.Config.NumLayers {
		return nil, fmt.Errorf("%w: a local backend needs the whole model", engine.ErrNotHeld)
	}
	return &LocalBackend{model: m, cache: m.NewCache()}, nil
}

// Forward implements Backend.
func (b *LocalBackend) Forward(ctx context.Context, ids []int, logits []float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	H := b.model.Config.HiddenSize
	if cap(b.hidden) < len(ids)*H {
		b.hidden = make([]float32, len(ids)*H)
	}
	x := b.hidden[:len(ids)*H]
	if err := b.model.Embed(ids, x); err != nil {
		return err
	}
	if err := b.model.Forward(x, []engine.Span{{Cache: b.cache, Tokens: len(ids)}}); err != nil {
		return err
	}
	return b.model.Logits(x[(len(ids)-1)*H:], logits)
}

// ForConfig is the Generator for a model of configuration cfg; tok may be
// nil for token-only requests.
func ForConfig(cfg *engine.Config, tok *tokenizer.Tokenizer) *Generator {
	return &Generator{Tokenizer: tok, VocabSize: cfg.VocabSize, Context: cfg.MaxPositionEmbeddings, IsEOS: cfg.IsEOS}
}
