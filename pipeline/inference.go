package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

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

// InferenceServer serves the public Inference API over a coordinator.
type InferenceServer struct {
	phalanxpb.UnimplementedInferenceServer
	c *Coordinator
}

var _ phalanxpb.InferenceServer = (*InferenceServer)(nil)

// NewInferenceServer serves c.
func NewInferenceServer(c *Coordinator) *InferenceServer { return &InferenceServer{c: c} }

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

// StatusOf maps a generation error to a gRPC status.
func StatusOf(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, textgen.ErrPromptTooLong), errors.Is(err, textgen.ErrBadRequest), errors.Is(err, sample.ErrInvalidParams),
		errors.Is(err, sample.ErrTokenOutOfRange):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrStageDown):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// CheckServing returns an error for requests this coordinator cannot run.
func (c *Coordinator) CheckServing() error {
	if !c.Leading() {
		return status.Error(codes.Unavailable, "this coordinator is standing by; send requests to the leader")
	}
	if c.sched.Route() == nil {
		if err := c.PlanError(); err != nil {
			return status.Errorf(codes.Unavailable, "the cluster cannot serve the model: %v", err)
		}
	}
	return nil
}

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

// Generate runs one request on the cluster.
func (c *Coordinator) Generate(ctx context.Context, requestID string, req textgen.Request, emit func(textgen.Chunk) error) (*textgen.Result, error) {
	ctx, span := tracer.Start(ctx, "phalanx.generate", trace.WithAttributes(attribute.String("phalanx.request_id", requestID)))
	defer span.End()
	release, err := c.admit.Acquire(ctx)
	if err != nil {
		span.SetStatus(otelcodes.Error, err.Error())
		if m := c.metrics; m != nil {
			m.Requests.WithLabelValues("refused").Inc()
		}
		return nil, err
	}
	defer release()
	sess := c.sched.NewSession()
	defer sess.Close()
	span.SetAttributes(attribute.String("phalanx.session", sess.ID))
	log := c.log.With("request_id", requestID, "session", sess.ID, "trace_id", span.SpanContext().TraceID().String())
	start, last := time.Now(), time.Time{}
	m := c.metrics
	res, err := c.gen.Run(ctx, sess, req, func(ch textgen.Chunk) error {
		if m != nil && len(ch.Tokens) > 0 {
			now := time.Now()
			if last.IsZero() {
				m.TimeToFirst.Observe(now.Sub(start).Seconds())
			} else {
				m.InterToken.Observe(now.Sub(last).Seconds())
			}
			last = now
			m.GeneratedTokens.Add(float64(len(ch.Tokens)))
		}
		return emit(ch)
	})
	if err != nil {
		span.SetStatus(otelcodes.Error, err.Error())
		if m != nil {
			outcome := "error"
			if ctx.Err() != nil {
				outcome = "canceled"
			}
			m.Requests.WithLabelValues(outcome).Inc()
		}
		log.Warn("generation failed", "err", err)
		return nil, err
	}
	if m != nil {
		m.Requests.WithLabelValues("ok").Inc()
		m.PromptTokens.Add(float64(len(res.PromptTokens)))
	}
	span.SetAttributes(attribute.Int("phalanx.prompt_tokens", len(res.PromptTokens)), attribute.Int("phalanx.completion_tokens", len(res.Tokens)),
		attribute.String("phalanx.finish_reason", string(res.FinishReason)))
	log.Info("generation done", "prompt_tokens", len(res.PromptTokens), "tokens", len(res.Tokens), "finish", res.FinishReason,
		"ttft_ms", res.TimeToFirst.Milliseconds(), "decode_tok_s", res.DecodeTokensPerSecond())
	return res, nil
}

// Tokenize encodes text with the model's tokenizer.
func (s *InferenceServer) Tokenize(_ context.Context, req *phalanxpb.TokenizeRequest) (*phalanxpb.TokenizeResponse, error) {
	if s.c.tok == nil {
		return nil, status.Error(codes.FailedPrecondition, "the model directory has no tokenizer")
	}
	if len(req.GetText()) > MaxPromptBytes {
		return nil, status.Errorf(codes.InvalidArgument, "text of %d bytes exceeds the %d-byte limit", len(req.GetText()), MaxPromptBytes)
	}
	ids := s.c.tok.Encode(req.GetText())
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
