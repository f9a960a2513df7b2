package openai

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/pipeline/api"
)

// Limits on a request body and its parts; the prompt and stop limits are
// the gRPC API's (api.MaxPromptBytes and the others).
const (
	// maxBodyBytes leaves room for JSON's escapes and the other fields
	// around a prompt of api.MaxPromptBytes.
	maxBodyBytes = 2 * api.MaxPromptBytes
	maxMessages  = 256
)

// common are the request fields completions and chat share.
type common struct {
	Model         string   `json:"model"`
	MaxTokens     *int     `json:"max_tokens"`
	MaxCompletion *int     `json:"max_completion_tokens"`
	Temperature   *float64 `json:"temperature"`
	TopP          *float64 `json:"top_p"`
	N             *int     `json:"n"`
	Stream        bool     `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Stop             json.RawMessage    `json:"stop"`
	Seed             *int64             `json:"seed"`
	FrequencyPenalty *float64           `json:"frequency_penalty"`
	PresencePenalty  *float64           `json:"presence_penalty"`
	LogitBias        map[string]float64 `json:"logit_bias"`
	Logprobs         json.RawMessage    `json:"logprobs"`
	// Extensions (ignored by OpenAI's servers, accepted by clients as extra body).
	TopK              *int     `json:"top_k"`
	MinP              *float64 `json:"min_p"`
	RepetitionPenalty *float64 `json:"repetition_penalty"`
	Template          string   `json:"template"`
	IgnoreEOS         bool     `json:"ignore_eos"`
}

func finite(p *float64, name string, lo, hi float64) (float32, error) {
	if p == nil {
		return 0, nil
	}
	if math.IsNaN(*p) || *p < lo || *p > hi {
		return 0, fmt.Errorf("%s must be in [%g, %g], got %g", name, lo, hi, *p)
	}
	return float32(*p), nil
}

// toRequest converts the shared fields; maxDefault is OpenAI's default
// max_tokens for the endpoint (0: as many as the context allows).
func (c *common) toRequest(maxDefault int) (textgen.Request, error) {
	var r textgen.Request
	if c.N != nil && *c.N != 1 {
		return r, fmt.Errorf("n must be 1 (Phalanx returns one choice per request), got %d", *c.N)
	}
	if len(c.Logprobs) > 0 && string(c.Logprobs) != "null" && string(c.Logprobs) != "false" {
		return r, errors.New("logprobs are not supported")
	}
	r.MaxTokens = maxDefault
	if c.MaxTokens != nil {
		r.MaxTokens = *c.MaxTokens
	}
	if c.MaxCompletion != nil {
		r.MaxTokens = *c.MaxCompletion
	}
	if r.MaxTokens < 0 {
		return r, fmt.Errorf("max_tokens must be ≥ 0, got %d", r.MaxTokens)
	}
	if r.MaxTokens == 0 {
		r.MaxTokens = math.MaxInt32 // cut to the context window by the generator
	}
	p := sample.Params{Temperature: 1}
	var err error
	if c.Temperature != nil {
		if p.Temperature, err = finite(c.Temperature, "temperature", 0, 2); err != nil {
			return r, err
		}
	}
	if p.TopP, err = finite(c.TopP, "top_p", 0, 1); err != nil {
		return r, err
	}
	if p.FrequencyPenalty, err = finite(c.FrequencyPenalty, "frequency_penalty", -2, 2); err != nil {
		return r, err
	}
	if p.PresencePenalty, err = finite(c.PresencePenalty, "presence_penalty", -2, 2); err != nil {
		return r, err
	}
	if p.MinP, err = finite(c.MinP, "min_p", 0, 1); err != nil {
		return r, err
	}
	if p.RepetitionPenalty, err = finite(c.RepetitionPenalty, "repetition_penalty", 0, 10); err != nil {
		return r, err
	}
	if c.TopK != nil {
		p.TopK = *c.TopK
	}
	if len(c.LogitBias) > 1024 {
		return r, errors.New("at most 1024 logit_bias entries")
	}
	for k, v := range c.LogitBias {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 {
			return r, fmt.Errorf("logit_bias key %q is not a token id", k)
		}
		if v < -100 || v > 100 || math.IsNaN(v) {
			return r, fmt.Errorf("logit_bias for %d must be in [-100, 100]", id)
		}
		if p.LogitBias == nil {
			p.LogitBias = map[int]float32{}
		}
		p.LogitBias[id] = float32(v)
	}
	if c.Seed != nil {
		p.Seed = uint64(*c.Seed)
	} else {
		p.Seed = sample.RandomSeed()
	}
	if err := p.Validate(); err != nil {
		return r, err
	}
	r.Sampling = p
	if r.Stop, err = parseStop(c.Stop); err != nil {
		return r, err
	}
	r.IgnoreEOS = c.IgnoreEOS
	return r, nil
}

// parseStop reads OpenAI's stop: a string, an array of up to
// api.MaxStops strings, or null. Empty strings are dropped.
func parseStop(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var many []string
	var one string
	if json.Unmarshal(raw, &one) == nil {
		many = []string{one}
	} else if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("stop must be a string or an array of strings")
	}
	if len(many) > api.MaxStops {
		return nil, fmt.Errorf("%d stop sequences, at most %d", len(many), api.MaxStops)
	}
	var out []string
	for _, s := range many {
		if len(s) > api.MaxStopBytes {
			return nil, fmt.Errorf("a stop sequence of %d bytes exceeds %d", len(s), api.MaxStopBytes)
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// completionRequest is POST /v1/completions.
type completionRequest struct {
	common
	Prompt json.RawMessage `json:"prompt"`
	Echo   bool            `json:"echo"`
	Suffix *string         `json:"suffix"`
}

func parsePrompt(raw json.RawMessage) (string, []int, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil, nil
	}
	var ss []string
	if json.Unmarshal(raw, &ss) == nil {
		if len(ss) != 1 {
			return "", nil, fmt.Errorf("prompt arrays must hold exactly one prompt (got %d)", len(ss))
		}
		return ss[0], nil, nil
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
		return "", ids, nil
	}
	var idss [][]int
	if json.Unmarshal(raw, &idss) == nil && len(idss) == 1 && len(idss[0]) > 0 {
		return "", idss[0], nil
	}
	return "", nil, errors.New("prompt must be a string, an array with one string, or an array of token ids")
}

// promptFits refuses (413) a prompt over the API's limits: the text of
// api.MaxPromptBytes (for chat, the rendered messages) or
// api.MaxPromptTokens token ids.
func promptFits(w http.ResponseWriter, req textgen.Request) bool {
	msg := ""
	switch {
	case len(req.Prompt) > api.MaxPromptBytes:
		msg = fmt.Sprintf("prompt of %d bytes exceeds the %d-byte limit", len(req.Prompt), api.MaxPromptBytes)
	case len(req.Tokens) > api.MaxPromptTokens:
		msg = fmt.Sprintf("prompt of %d token ids exceeds the %d-token limit", len(req.Tokens), api.MaxPromptTokens)
	default:
		return true
	}
	writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "prompt_too_large", msg)
	return false
}

// chatRequest is POST /v1/chat/completions.
type chatRequest struct {
	common
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// messageText reads a message's content: a string or an array of parts of
// which the text ones are joined.
func messageText(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("message content must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content parts of type %q are not supported (text only)", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}
