package controlplane

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
)

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
		if ctx.Err() != nil { // the caller hung up or timed out: not the cluster's failure
			log.Info("generation stopped: the caller went away", "err", err)
		} else {
			log.Warn("generation failed", "err", err)
		}
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

// Tokenizer is the model's tokenizer, nil if it ships none.
func (c *Coordinator) Tokenizer() *tokenizer.Tokenizer { return c.tok }
