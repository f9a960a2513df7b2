package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/phalanx-llm/phalanx/pipeline/stage"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
)

// stepPart is one session's share of a step: ids at positions pos..., and
// where the logits of the last of them go (nil: not wanted).
type stepPart struct {
	it     *stepItem
	ids    []int
	pos    int
	logits []float32
}

// forward runs one step through every stage and the head.
func (s *Scheduler) forward(ctx context.Context, parts []stepPart, replay bool) error {
	r := s.Route()
	if r == nil || len(r.Stages) == 0 {
		return status.Error(codes.Unavailable, "pipeline: no plan yet")
	}
	H, V := s.ends.Config.HiddenSize, s.ends.Config.VocabSize
	rows := 0
	var ids []int
	spans := make([]*phalanxpb.SessionSpan, len(parts))
	lastRow := make([]int, len(parts))
	heads := 0
	for i, p := range parts {
		ids = append(ids, p.ids...)
		spans[i] = &phalanxpb.SessionSpan{SessionId: p.it.sess.ID, Position: int32(p.pos), Tokens: int32(len(p.ids))}
		rows += len(p.ids)
		lastRow[i] = rows - 1
		if p.logits != nil {
			heads++
		}
	}
	x := make([]float32, rows*H)
	if err := s.ends.Embed(ids, x); err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	stepID := s.stepID.Add(1)
	stageMs := make([]float64, len(r.Stages))
	computeMs := make([]float64, len(r.Stages))
	stepStart := time.Now()
	var wireBytes uint64
	// A step's spans hang under the first session's request; the others
	// are linked, so each request's trace shows every stage it crossed.
	var links []trace.Link
	for _, p := range parts[1:] {
		if sc := trace.SpanContextFromContext(p.it.ctx); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	parent := parts[0].it.ctx
	if s.metrics != nil {
		s.metrics.BatchSessions.Observe(float64(len(parts)))
	}
	// The activations travel straight: encoded once for the first stage,
	// each stage's reply (checked, not decoded) is the next stage's input,
	// and only the last reply is decoded.
	hidden := new(phalanxpb.Tensor)
	if err := wire.EncodeF32Into(hidden, rows, H, x, s.cfg.Wire); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	for i, st := range r.Stages {
		req := &phalanxpb.StageRequest{Epoch: r.Epoch, LayerStart: int32(st.Layers.Start), LayerEnd: int32(st.Layers.End),
			StepId: stepID, Spans: spans, Hidden: hidden, ReplyDtype: s.cfg.Wire, KvDtype: s.cfg.KVCache}
		wireBytes += uint64(len(req.Hidden.Data))
		sctx, span := tracer.Start(parent, "phalanx.stage_step", trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
			trace.WithAttributes(attribute.String("phalanx.worker", st.WorkerID), attribute.Int("phalanx.stage", i),
				attribute.Int64("phalanx.step", int64(stepID)), attribute.Int("phalanx.rows", rows),
				attribute.Int("phalanx.sessions", len(parts)), attribute.Bool("phalanx.replay", replay)))
		if span.SpanContext().IsValid() {
			req.TraceContext = map[string]string{}
			otel.GetTextMapPropagator().Inject(sctx, propagation.MapCarrier(req.TraceContext))
		}
		start := time.Now()
		resp, err := st.Client.Step(ctx, req)
		if err != nil {
			span.SetStatus(otelcodes.Error, err.Error())
			span.End()
			return err
		}
		span.End()
		stageMs[i] = float64(time.Since(start).Microseconds()) / 1000
		if s.metrics != nil {
			s.metrics.StageStep.WithLabelValues(strconv.Itoa(i), st.WorkerID).Observe(stageMs[i] / 1000)
			s.metrics.WireBytes.WithLabelValues(st.WorkerID).Add(float64(len(req.Hidden.Data)))
		}
		computeMs[i] = resp.GetComputeMs()
		if s.metrics != nil {
			s.metrics.StageCompute.WithLabelValues(strconv.Itoa(i), st.WorkerID).Observe(computeMs[i] / 1000)
		}
		hidden = resp.GetHidden()
		if err := wire.Check(hidden, rows, H, s.cfg.Wire); err != nil {
			st.Client.Reset(fmt.Errorf("bad answer: %v", err))
			return fmt.Errorf("%w: %s answered a bad tensor: %v", stage.ErrDown, st.Client.Address, err)
		}
	}
	var err error
	if x, _, err = wire.DecodeF32(hidden, H, rows, x); err != nil {
		return status.Errorf(codes.Internal, "pipeline: decode the last stage's answer: %v", err)
	}
	// The head runs on the last row of every session that wants logits.
	headStart := time.Now()
	if heads > 0 {
		last := make([]float32, heads*H)
		k := 0
		for i, p := range parts {
			if p.logits != nil {
				copy(last[k*H:(k+1)*H], x[lastRow[i]*H:(lastRow[i]+1)*H])
				k++
			}
		}
		logits := make([]float32, heads*V)
		if err := s.ends.Logits(last, logits); err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		k = 0
		for _, p := range parts {
			if p.logits != nil {
				copy(p.logits, logits[k*V:(k+1)*V])
				k++
			}
		}
	}
	if s.cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		s.cfg.Logger.Debug("step", "step", stepID, "sessions", len(parts), "rows", rows, "stage_rtt_ms", stageMs,
			"stage_compute_ms", computeMs, "head_ms", float64(time.Since(headStart).Microseconds())/1000,
			"total_ms", float64(time.Since(stepStart).Microseconds())/1000)
	}
	s.statsMu.Lock()
	s.stats.Steps++
	s.stats.Tokens += uint64(rows)
	s.stats.WireBytes += wireBytes
	s.stats.StageMillis = stageMs
	s.stats.LastStep = time.Now()
	s.statsMu.Unlock()
	return nil
}
