// Package textgen is the generation loop: it turns a request (a text prompt
// with a template, or token ids; sampling settings; stop sequences; a token
// limit) into streamed text, over any Backend that computes next-token
// logits. The CLI runs it over a model in this process; the coordinator runs
// it over the pipeline of workers. It never touches the network itself.
//
// Per request it renders the template, tokenizes, checks the context window,
// prefills the prompt in one Backend call, then samples one token at a time.
// Text is emitted as it becomes safe: never half a UTF-8 character (the
// tokenizer's stream decoder) and never the start of what may turn out to be
// a stop sequence (the stop matcher), which is not emitted when it
// completes.
package textgen

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

// Errors of a request that cannot run.
var (
	ErrPromptTooLong = errors.New("textgen: prompt exceeds the context window")
	ErrBadRequest    = errors.New("textgen: invalid request")
)

// Backend computes next-token logits for one sequence. Forward appends ids
// to the sequence and writes the logits of the last of them into logits.
type Backend interface {
	Forward(ctx context.Context, ids []int, logits []float32) error
}

// Request is one generation.
type Request struct {
	// Prompt is rendered with Template and tokenized, unless Tokens is set.
	Prompt   string
	Tokens   []int
	Template prompt.Template
	// MaxTokens bounds the new tokens; it is also cut to what the context
	// window leaves. 0 generates nothing.
	MaxTokens int
	Sampling  sample.Params
	// Stop strings end generation and are not emitted. The template's
	// default stops are added unless NoDefaultStops.
	Stop           []string
	NoDefaultStops bool
	// IgnoreEOS keeps generating past the end-of-text token.
	IgnoreEOS bool
}

// Result summarizes a finished generation.
type Result struct {
	PromptTokens []int
	Tokens       []int // every generated id, stop sequence included, EOS excluded
	Text         string
	FinishReason sample.FinishReason
	TimeToFirst  time.Duration
	Prefill      time.Duration
	Decode       time.Duration
}

// PrefillTokensPerSecond is the prompt's processing rate.
func (r *Result) PrefillTokensPerSecond() float64 {
	return rate(len(r.PromptTokens), r.Prefill)
}

// DecodeTokensPerSecond is the rate of the tokens after the first.
func (r *Result) DecodeTokensPerSecond() float64 {
	return rate(len(r.Tokens)-1, r.Decode)
}

func rate(n int, d time.Duration) float64 {
	if n <= 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Chunk is what one step makes visible: the new token ids and the text that
// is now safe to show (possibly empty).
type Chunk struct {
	Tokens []int
	Text   string
}

// Generator holds what every request of one model shares.
type Generator struct {
	Tokenizer *tokenizer.Tokenizer // needed for text prompts and text output
	VocabSize int
	Context   int // the model's context window in tokens
	IsEOS     func(id int) bool
}

// PromptTokens renders and tokenizes a request's prompt.
func (g *Generator) PromptTokens(req *Request) ([]int, error) {
	if req.Tokens != nil {
		for _, id := range req.Tokens {
			if id < 0 || id >= g.VocabSize {
				return nil, fmt.Errorf("%w: token id %d outside the vocabulary [0, %d)", ErrBadRequest, id, g.VocabSize)
			}
		}
		return req.Tokens, nil
	}
	if g.Tokenizer == nil {
		return nil, fmt.Errorf("%w: a text prompt needs a tokenizer", ErrBadRequest)
	}
	t := req.Template
	if t == "" {
		t = prompt.Raw
	}
	if !t.Valid() {
		return nil, fmt.Errorf("%w: unknown template %q", ErrBadRequest, t)
	}
	ids := g.Tokenizer.Encode(prompt.Render(t, req.Prompt))
	for _, id := range ids {
		if id >= g.VocabSize {
			return nil, fmt.Errorf("%w: the tokenizer produced id %d, past the model's %d-token vocabulary", ErrBadRequest, id, g.VocabSize)
		}
	}
	return ids, nil
}

// Run generates for req over b, calling emit after every step that makes
// tokens or text visible (emit may be nil). An error from emit stops the
// run and is returned.
func (g *Generator) Run(ctx context.Context, b Backend, req Request, emit func(Chunk) error) (*Result, error) {
	if emit == nil { // the caller wants only the Result
		emit = func(Chunk) error { return nil }
	}
	ids, err := g.PromptTokens(&req)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: empty prompt", ErrBadRequest)
	}
	if req.MaxTokens < 0 {
		return nil, fmt.Errorf("%w: max_tokens %d is negative", ErrBadRequest, req.MaxTokens)
	}
	if len(ids) >= g.Context {
		return nil, fmt.Errorf("%w: %d prompt tokens, the window holds %d (and one more for the answer)", ErrPromptTooLong, len(ids), g.Context)
	}
	maxNew := min(req.MaxTokens, g.Context-len(ids))
	stops := append([]string(nil), req.Stop...)
	if !req.NoDefaultStops && req.Tokens == nil {
		stops = append(stops, prompt.DefaultStops(req.Template)...)
	}
	sampler, err := sample.New(req.Sampling, ids)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	res := &Result{PromptTokens: ids, FinishReason: sample.FinishLength}
	if maxNew == 0 {
		return res, nil
	}
	var dec *tokenizer.StreamDecoder
	if g.Tokenizer != nil {
		dec = g.Tokenizer.NewStreamDecoder()
	}
	stop := sample.NewStopMatcher(stops)
	logits := make([]float32, g.VocabSize)
	start := time.Now()
	if err := b.Forward(ctx, ids, logits); err != nil {
		return nil, err
	}
	var decodeStart time.Time
	var text []byte
	for {
		id, err := sampler.Sample(logits)
		if err != nil {
			return res, err
		}
		if res.TimeToFirst == 0 {
			res.TimeToFirst = time.Since(start)
			res.Prefill = res.TimeToFirst
			decodeStart = time.Now()
		}
		if !req.IgnoreEOS && g.IsEOS != nil && g.IsEOS(id) {
			res.FinishReason = sample.FinishStop
			break
		}
		res.Tokens = append(res.Tokens, id)
		chunk := Chunk{Tokens: []int{id}}
		stopped := false
		if dec != nil {
			chunk.Text, stopped = stop.Push(dec.Add(id))
			text = append(text, chunk.Text...)
		}
		if err := emit(chunk); err != nil {
			return res, err
		}
		if stopped {
			res.FinishReason = sample.FinishStop
			break
		}
		if len(res.Tokens) >= maxNew {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := b.Forward(ctx, []int{id}, logits); err != nil {
			return res, err
		}
	}
	res.Decode = time.Since(decodeStart)
	if dec != nil && !stop.Stopped() {
		tail, stopped := stop.Push(dec.Flush())
		if !stopped {
			tail += stop.Flush()
		} else {
			res.FinishReason = sample.FinishStop
		}
		if tail != "" {
			text = append(text, tail...)
			if err := emit(Chunk{Text: tail}); err != nil {
				return res, err
			}
		}
	}
	res.Text = string(text)
	return res, nil
}
