package textgen

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

func setup(t *testing.T) (*engine.Model, *Generator) {
	t.Helper()
	m, err := engine.Load(filepath.Join("..", "..", "testdata", "phi-tiny-f32"), engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	js, err := tokenizer.SynthesizeByteLevelJSON(m.Config.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromHFJSON(js, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, ForConfig(m.Config, tok)
}

func run(t *testing.T, m *engine.Model, g *Generator, req Request) (*Result, []Chunk) {
	t.Helper()
	b, err := NewLocalBackend(m)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []Chunk
	res, err := g.Run(context.Background(), b, req, func(c Chunk) error {
		chunks = append(chunks, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, chunks
}

func TestTokenModeMatchesGreedyReference(t *testing.T) {
	m, g := setup(t)
	prompt := []int{0, 1023, 5, 123, 77, 5, 999}
	want, err := engine.Greedy(m, prompt, 16)
	if err != nil {
		t.Fatal(err)
	}
	res, chunks := run(t, m, g, Request{Tokens: prompt, MaxTokens: 16, IgnoreEOS: true})
	if len(res.Tokens) != 16 || len(chunks) < 16 {
		t.Fatalf("%d tokens in %d chunks", len(res.Tokens), len(chunks))
	}
	for i := range want {
		if res.Tokens[i] != want[i] {
			t.Fatalf("tokens %v, want %v", res.Tokens, want)
		}
	}
	if res.FinishReason != sample.FinishLength {
		t.Errorf("finish %q", res.FinishReason)
	}
	var streamed strings.Builder
	for _, c := range chunks {
		streamed.WriteString(c.Text)
	}
	if streamed.String() != res.Text || res.Text != g.Tokenizer.Decode(res.Tokens) {
		t.Errorf("streamed %q, result %q, decode %q", streamed.String(), res.Text, g.Tokenizer.Decode(res.Tokens))
	}
}

func TestSeedReproducible(t *testing.T) {
	m, g := setup(t)
	req := Request{Prompt: "Hello there", MaxTokens: 24, Sampling: sample.Params{Temperature: 1, TopP: 0.95, Seed: 42}, IgnoreEOS: true}
	a, _ := run(t, m, g, req)
	b, _ := run(t, m, g, req)
	if a.Text != b.Text || len(a.Tokens) != 24 {
		t.Fatalf("same seed, different text: %q vs %q", a.Text, b.Text)
	}
	req.Sampling.Seed = 43
	c, _ := run(t, m, g, req)
	if slices.Equal(a.Tokens, c.Tokens) {
		t.Errorf("different seeds gave the same %d tokens", len(a.Tokens))
	}
}

func TestStopSequenceCutsExactly(t *testing.T) {
	m, g := setup(t)
	base, _ := run(t, m, g, Request{Prompt: "abc", MaxTokens: 30, IgnoreEOS: true})
	if len(base.Text) < 6 {
		t.Skipf("reference text %q too short", base.Text)
	}
	// Stop at a piece of the text that starts somewhere in the middle.
	stopAt := strings.Index(base.Text, base.Text[3:6])
	res, chunks := run(t, m, g, Request{Prompt: "abc", MaxTokens: 30, IgnoreEOS: true, Stop: []string{base.Text[3:6]}})
	if res.Text != base.Text[:stopAt] {
		t.Errorf("text %q, want %q (cut before the stop)", res.Text, base.Text[:stopAt])
	}
	if res.FinishReason != sample.FinishStop {
		t.Errorf("finish %q", res.FinishReason)
	}
	var streamed strings.Builder
	for _, c := range chunks {
		streamed.WriteString(c.Text)
	}
	if streamed.String() != res.Text {
		t.Errorf("streamed %q != %q", streamed.String(), res.Text)
	}
}

func TestTemplateDefaultStops(t *testing.T) {
	_, g := setup(t)
	ids, err := g.PromptTokens(&Request{Prompt: "Say hi.", Template: prompt.Instruct})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Tokenizer.Decode(ids); got != "Instruct: Say hi.\nOutput:" {
		t.Errorf("rendered %q", got)
	}
}

func TestLimits(t *testing.T) {
	m, g := setup(t)
	res, _ := run(t, m, g, Request{Tokens: []int{1, 2}, MaxTokens: 0})
	if len(res.Tokens) != 0 {
		t.Errorf("max_tokens 0 generated %d", len(res.Tokens))
	}
	// The window (256) bounds the answer.
	long := make([]int, 250)
	res, _ = run(t, m, g, Request{Tokens: long, MaxTokens: 1000, IgnoreEOS: true})
	if len(res.Tokens) != 6 || res.FinishReason != sample.FinishLength {
		t.Errorf("%d tokens (%s), want 6 to fill the window", len(res.Tokens), res.FinishReason)
	}
	b, _ := NewLocalBackend(m)
	for _, req := range []Request{
		{Tokens: make([]int, 256), MaxTokens: 1},
		{Tokens: []int{1}, MaxTokens: -1},
		{Tokens: []int{1024}, MaxTokens: 1},
		{Tokens: []int{}, MaxTokens: 1},
		{Prompt: "x", Template: "nope", MaxTokens: 1},
		{Tokens: []int{1}, MaxTokens: 1, Sampling: sample.Params{Temperature: -1}},
	} {
		if _, err := g.Run(context.Background(), b, req, func(Chunk) error { return nil }); !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrPromptTooLong) {
			t.Errorf("%+v: error %v", req, err)
		}
	}
}

func TestEOSStops(t *testing.T) {
	m, g := setup(t)
	// Force EOS with a logit bias: generation ends at once with "stop".
	res, _ := run(t, m, g, Request{Tokens: []int{1, 2}, MaxTokens: 5, Sampling: sample.Params{LogitBias: map[int]float32{1023: 1000}}})
	if len(res.Tokens) != 0 || res.FinishReason != sample.FinishStop {
		t.Errorf("tokens %v finish %s", res.Tokens, res.FinishReason)
	}
}
