package api

import (
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine/prompt"
	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// Request limits of the public API.
const (
	// DefaultMaxTokens applies when a request leaves max_tokens at 0.
	DefaultMaxTokens = 256
	// MaxPromptBytes bounds a text prompt (the context window bounds tokens).
	MaxPromptBytes = 1 << 20
	// MaxPromptTokens bounds a prompt given as token ids before anything is
	// allocated for it; the context window (2048 for Phi-2) cuts further.
	MaxPromptTokens = 1 << 16
	// MaxStops and MaxStopBytes bound the stop sequences.
	MaxStops     = 16
	MaxStopBytes = 256
	maxLogitBias = 1024
	// MaxRequestBytes bounds a message to the public Inference service: a
	// 1 MiB prompt or MaxPromptTokens ids with room to spare. (Stage
	// traffic between nodes takes up to MaxMessageBytes.)
	MaxRequestBytes = 8 << 20
)

// ToTextgen validates a GenerateRequest and converts it.
func ToTextgen(req *phalanxpb.GenerateRequest) (textgen.Request, error) {
	var r textgen.Request
	switch in := req.GetInput().(type) {
	case *phalanxpb.GenerateRequest_Prompt:
		if len(in.Prompt) > MaxPromptBytes {
			return r, status.Errorf(codes.InvalidArgument, "prompt of %d bytes exceeds the %d-byte limit", len(in.Prompt), MaxPromptBytes)
		}
		if !utf8.ValidString(in.Prompt) {
			return r, status.Error(codes.InvalidArgument, "prompt is not valid UTF-8")
		}
		r.Prompt = in.Prompt
	case *phalanxpb.GenerateRequest_Tokens:
		ids := in.Tokens.GetIds()
		if len(ids) == 0 {
			return r, status.Error(codes.InvalidArgument, "empty token list")
		}
		if len(ids) > MaxPromptTokens {
			return r, status.Errorf(codes.InvalidArgument, "prompt of %d token ids exceeds the %d-token limit", len(ids), MaxPromptTokens)
		}
		r.Tokens = make([]int, len(ids))
		for i, id := range ids {
			r.Tokens[i] = int(id)
		}
	default:
		return r, status.Error(codes.InvalidArgument, "give a prompt or token ids")
	}
	if req.GetTemplate() != "" {
		t, err := prompt.Parse(req.GetTemplate())
		if err != nil {
			return r, status.Errorf(codes.InvalidArgument, "%v", err)
		}
		r.Template = t
	} else {
		r.Template = prompt.Raw
	}
	switch n := req.GetMaxTokens(); {
	case n < 0:
		return r, status.Errorf(codes.InvalidArgument, "max_tokens %d is negative", n)
	case n == 0:
		r.MaxTokens = DefaultMaxTokens
	default:
		r.MaxTokens = int(n) // the context window cuts it further
	}
	if len(req.GetStop()) > MaxStops {
		return r, status.Errorf(codes.InvalidArgument, "%d stop sequences, at most %d", len(req.GetStop()), MaxStops)
	}
	for _, s := range req.GetStop() {
		if len(s) > MaxStopBytes {
			return r, status.Errorf(codes.InvalidArgument, "a stop sequence of %d bytes exceeds %d", len(s), MaxStopBytes)
		}
	}
	r.Stop = req.GetStop()
	r.IgnoreEOS = req.GetIgnoreEos()
	r.NoDefaultStops = req.GetNoDefaultStops()
	sp := req.GetSampling()
	if len(sp.GetLogitBias()) > maxLogitBias {
		return r, status.Errorf(codes.InvalidArgument, "%d logit biases, at most %d", len(sp.GetLogitBias()), maxLogitBias)
	}
	p := sample.Params{
		Temperature: sp.GetTemperature(), TopK: int(sp.GetTopK()), TopP: sp.GetTopP(), MinP: sp.GetMinP(),
		RepetitionPenalty: sp.GetRepetitionPenalty(), RepeatLastN: int(sp.GetRepeatLastN()),
		PresencePenalty: sp.GetPresencePenalty(), FrequencyPenalty: sp.GetFrequencyPenalty(),
	}
	if len(sp.GetLogitBias()) > 0 {
		p.LogitBias = make(map[int]float32, len(sp.GetLogitBias()))
		for id, b := range sp.GetLogitBias() {
			p.LogitBias[int(id)] = b
		}
	}
	if sp != nil && sp.Seed != nil {
		p.Seed = sp.GetSeed()
	} else {
		p.Seed = sample.RandomSeed()
	}
	if err := p.Validate(); err != nil {
		return r, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	r.Sampling = p
	return r, nil
}
