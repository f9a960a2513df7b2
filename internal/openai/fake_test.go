package openai

import (
	"context"
	"strings"
	"sync"

	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/textgen"
)

// fakeGen is a scripted Generator. Generate records the request, emits
// chunks in order, then returns err if set, or else a result whose text
// and tokens are the chunks' and whose prompt tokens are promptTokens
// (the request's token ids when nil).
type fakeGen struct {
	serving      error // CheckServing's answer
	chunks       []textgen.Chunk
	err          error
	finish       sample.FinishReason // FinishStop when empty
	promptTokens []int

	mu   sync.Mutex
	reqs []textgen.Request
	ids  []string
}

func (g *fakeGen) CheckServing() error { return g.serving }
func (g *fakeGen) ModelID() string     { return "phi-2@test" }

func (g *fakeGen) Generate(_ context.Context, requestID string, req textgen.Request, emit func(textgen.Chunk) error) (*textgen.Result, error) {
	g.mu.Lock()
	g.reqs = append(g.reqs, req)
	g.ids = append(g.ids, requestID)
	g.mu.Unlock()
	res := &textgen.Result{PromptTokens: g.promptTokens, FinishReason: g.finish}
	if res.PromptTokens == nil {
		res.PromptTokens = req.Tokens
	}
	if res.FinishReason == "" {
		res.FinishReason = sample.FinishStop
	}
	var text strings.Builder
	for _, c := range g.chunks {
		if err := emit(c); err != nil {
			return nil, err
		}
		text.WriteString(c.Text)
		res.Tokens = append(res.Tokens, c.Tokens...)
	}
	if g.err != nil {
		return nil, g.err
	}
	res.Text = text.String()
	return res, nil
}

// calls is the number of Generate calls so far.
func (g *fakeGen) calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.reqs)
}

// last is the last request Generate got and its request id.
func (g *fakeGen) last() (textgen.Request, string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.reqs) == 0 {
		return textgen.Request{}, "", false
	}
	return g.reqs[len(g.reqs)-1], g.ids[len(g.ids)-1], true
}

// readyGen adds Readiness, which /readyz consults after CheckServing.
type readyGen struct {
	*fakeGen
	ready error
}

func (g readyGen) Readiness() error { return g.ready }
