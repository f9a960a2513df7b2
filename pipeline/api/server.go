package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// Backend is what the public API serves: the leading coordinator.
type Backend interface {
	// CheckServing says why requests cannot run now, if they cannot.
	CheckServing() error
	// Generate runs one request, calling emit as text becomes visible.
	Generate(ctx context.Context, requestID string, req textgen.Request, emit func(textgen.Chunk) error) (*textgen.Result, error)
	// Tokenizer is the model's tokenizer, nil if it ships none.
	Tokenizer() *tokenizer.Tokenizer
	// Status describes the cluster.
	Status(ctx context.Context) *phalanxpb.ClusterStatusResponse
}

// InferenceServer serves the public Inference API over a backend.
type InferenceServer struct {
	phalanxpb.UnimplementedInferenceServer
	c Backend
}

var _ phalanxpb.InferenceServer = (*InferenceServer)(nil)

// NewInferenceServer serves c.
func NewInferenceServer(c Backend) *InferenceServer { return &InferenceServer{c: c} }

// Generate streams one generation.
func (s *InferenceServer) Generate(req *phalanxpb.GenerateRequest, stream phalanxpb.Inference_GenerateServer) error {
	ctx := stream.Context()
	if err := s.c.CheckServing(); err != nil {
		return err
	}
	treq, err := ToTextgen(req)
	if err != nil {
		return err
	}
	id := req.GetRequestId()
	if id == "" || len(id) > 128 {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	res, err := s.c.Generate(ctx, id, treq, func(ch textgen.Chunk) error {
		toks := make([]int32, len(ch.Tokens))
		for i, t := range ch.Tokens {
			toks[i] = int32(t)
		}
		return stream.Send(&phalanxpb.GenerateResponse{Tokens: toks, Text: ch.Text, RequestId: id})
	})
	if err != nil {
		return StatusOf(ctx, err)
	}
	return stream.Send(&phalanxpb.GenerateResponse{
		Done: true, FinishReason: string(res.FinishReason), RequestId: id,
		Usage: &phalanxpb.Usage{PromptTokens: int32(len(res.PromptTokens)), CompletionTokens: int32(len(res.Tokens))},
		Timings: &phalanxpb.Timings{TimeToFirstTokenMs: float64(res.TimeToFirst.Microseconds()) / 1000,
			PrefillTokensPerSecond: res.PrefillTokensPerSecond(), DecodeTokensPerSecond: res.DecodeTokensPerSecond()},
	})
}

// Tokenize encodes text with the model's tokenizer.
func (s *InferenceServer) Tokenize(_ context.Context, req *phalanxpb.TokenizeRequest) (*phalanxpb.TokenizeResponse, error) {
	if s.c.Tokenizer() == nil {
		return nil, status.Error(codes.FailedPrecondition, "the model directory has no tokenizer")
	}
	if len(req.GetText()) > MaxPromptBytes {
		return nil, status.Errorf(codes.InvalidArgument, "text of %d bytes exceeds the %d-byte limit", len(req.GetText()), MaxPromptBytes)
	}
	ids := s.c.Tokenizer().Encode(req.GetText())
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return &phalanxpb.TokenizeResponse{Ids: out}, nil
}

// ClusterStatus describes the cluster.
func (s *InferenceServer) ClusterStatus(ctx context.Context, _ *phalanxpb.ClusterStatusRequest) (*phalanxpb.ClusterStatusResponse, error) {
	return s.c.Status(ctx), nil
}
