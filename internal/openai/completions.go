package openai

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/pipeline/api"
)

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if !decode(w, r, &req) {
		return
	}
	if !s.knownModel(req.Model) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("The model '%s' does not exist", req.Model))
		return
	}
	if req.Echo || req.Suffix != nil && *req.Suffix != "" {
		badRequest(w, "echo and suffix are not supported")
		return
	}
	treq, err := req.toRequest(16) // OpenAI's default for completions
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	if treq.Prompt, treq.Tokens, err = parsePrompt(req.Prompt); err != nil {
		badRequest(w, "%v", err)
		return
	}
	if !promptFits(w, treq) {
		return
	}
	if req.Template != "" {
		t, err := prompt.Parse(req.Template)
		if err != nil {
			badRequest(w, "%v", err)
			return
		}
		treq.Template = t
	} else {
		treq.Template = prompt.Raw
	}
	id, created := newID("cmpl-"), time.Now().Unix()
	choice := func(text string, finish any) map[string]any {
		return map[string]any{"text": text, "index": 0, "logprobs": nil, "finish_reason": finish}
	}
	model := s.gen.ModelID()
	s.run(w, r, id, treq, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		func(text string, finish any, u *usage) any {
			m := map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
				"choices": []any{choice(text, finish)}}
			if !req.Stream {
				m["usage"] = u
			}
			return m
		}, func(u *usage) any {
			return map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
				"choices": []any{}, "usage": u}
		})
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !decode(w, r, &req) {
		return
	}
	if !s.knownModel(req.Model) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("The model '%s' does not exist", req.Model))
		return
	}
	treq, err := req.toRequest(0)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	if len(req.Messages) == 0 || len(req.Messages) > maxMessages {
		badRequest(w, "messages must hold 1 to %d messages", maxMessages)
		return
	}
	tmpl := prompt.Chat
	if req.Template != "" {
		if tmpl, err = prompt.Parse(req.Template); err != nil {
			badRequest(w, "%v", err)
			return
		}
	}
	msgs := make([]prompt.Message, len(req.Messages))
	for i, m := range req.Messages {
		role := m.Role
		if role == "developer" {
			role = prompt.RoleSystem
		}
		text, err := messageText(m.Content)
		if err != nil {
			badRequest(w, "messages[%d]: %v", i, err)
			return
		}
		msgs[i] = prompt.Message{Role: role, Content: text}
	}
	rendered, err := prompt.RenderMessages(tmpl, msgs)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	treq.Prompt, treq.Template = rendered, prompt.Raw
	if !promptFits(w, treq) {
		return
	}
	treq.Stop = append(treq.Stop, prompt.DefaultStops(tmpl)...)
	id, created := newID("chatcmpl-"), time.Now().Unix()
	model := s.gen.ModelID()
	first := true
	s.run(w, r, id, treq, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		func(text string, finish any, u *usage) any {
			if !req.Stream {
				return map[string]any{"id": id, "object": "chat.completion", "created": created, "model": model,
					"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text},
						"logprobs": nil, "finish_reason": finish}},
					"usage": u}
			}
			delta := map[string]any{}
			if first {
				delta["role"] = "assistant"
				first = false
			}
			if text != "" || finish == nil {
				delta["content"] = text
			}
			m := map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
				"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
			return m
		}, func(u *usage) any {
			return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
				"choices": []any{}, "usage": u}
		})
}

// run executes a request, streaming (SSE) or not. object builds a response
// (or chunk) from text, finish reason and usage; usageChunk, if set, builds
// the final usage-only chunk of stream_options.include_usage.
func (s *Server) run(w http.ResponseWriter, r *http.Request, id string, req textgen.Request, stream, includeUsage bool,
	object func(text string, finish any, u *usage) any, usageChunk func(*usage) any) {
	if err := s.gen.CheckServing(); err != nil {
		writeStatus(w, err)
		return
	}
	log := s.log.With("request_id", id)
	if !stream {
		res, err := s.gen.Generate(r.Context(), id, req, func(textgen.Chunk) error { return nil })
		if err != nil {
			writeStatus(w, api.StatusOf(r.Context(), err))
			return
		}
		writeJSON(w, object(res.Text, string(res.FinishReason), usageOf(res)))
		return
	}
	var ev *sse
	started := false
	start := func() {
		if !started {
			ev = startSSE(w)
			started = true
		}
	}
	res, err := s.gen.Generate(r.Context(), id, req, func(c textgen.Chunk) error {
		start()
		if c.Text == "" {
			return nil
		}
		return ev.send(object(c.Text, nil, nil))
	})
	if err != nil {
		err = api.StatusOf(r.Context(), err)
		if !started {
			writeStatus(w, err)
			return
		}
		if r.Context().Err() != nil { // the client hung up: nobody to tell
			log.Info("stream stopped: the client went away", "err", err)
			return
		}
		log.Warn("stream ended by an error", "err", err)
		ev.error(err)
		ev.done()
		return
	}
	start()
	ev.send(object("", string(res.FinishReason), nil))
	if includeUsage {
		ev.send(usageChunk(usageOf(res)))
	}
	ev.done()
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(res *textgen.Result) *usage {
	return &usage{len(res.PromptTokens), len(res.Tokens), len(res.PromptTokens) + len(res.Tokens)}
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
