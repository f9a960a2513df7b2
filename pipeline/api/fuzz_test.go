package api

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// FuzzGenerateRequest checks the public API's request validation: any
// request either converts to a valid generation or is refused with a
// status, never a panic.
func FuzzGenerateRequest(f *testing.F) {
	for _, req := range []*phalanxpb.GenerateRequest{
		{Input: &phalanxpb.GenerateRequest_Prompt{Prompt: "hello"}, MaxTokens: 4, Template: "chat"},
		{Input: &phalanxpb.GenerateRequest_Tokens{Tokens: &phalanxpb.TokenIds{Ids: []int32{1, -5, 1 << 30}}}, MaxTokens: -1},
		{Input: &phalanxpb.GenerateRequest_Prompt{Prompt: "\xff\xfe"}, Sampling: &phalanxpb.SamplingParams{Temperature: -1, TopP: 2}},
		{Stop: []string{"", "x"}, Sampling: &phalanxpb.SamplingParams{LogitBias: map[int32]float32{-1: 1}}},
	} {
		b, _ := proto.Marshal(req)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req phalanxpb.GenerateRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		r, err := ToTextgen(&req)
		if err != nil {
			return
		}
		if r.MaxTokens < 0 || (r.Tokens == nil && len(r.Prompt) > MaxPromptBytes) || len(r.Stop) > MaxStops || len(r.Tokens) > MaxPromptTokens {
			t.Fatalf("accepted an invalid request: %+v", r)
		}
		if err := r.Sampling.Validate(); err != nil {
			t.Fatalf("accepted invalid sampling: %v", err)
		}
	})
}
