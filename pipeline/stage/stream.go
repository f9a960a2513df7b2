package stage

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// queuedStep is a step received on a stream and not yet answered.
type queuedStep struct {
	req    *phalanxpb.StageRequest
	ctx    context.Context // done when the step is cancelled or the stream ends
	cancel context.CancelFunc
}

// maxQueuedSteps bounds the steps a stream reads ahead of the one
// computing, so cancels behind them are seen; the coordinator keeps far
// fewer in flight. Past it, gRPC flow control holds the sender back.
const maxQueuedSteps = 256

// Process implements the step stream. A reader goroutine takes steps off
// the stream as they come, so a cancel reaches a step that is queued or
// running; steps are computed one after another and answered in order.
// When the stream ends (the coordinator gave up on it), the running step
// stops between layers and the queued ones are dropped.
func (s *Server) Process(stream phalanxpb.Stage_ProcessServer) error {
	ctx := stream.Context()
	queue := make(chan *queuedStep, maxQueuedSteps)
	var mu sync.Mutex
	byID := map[uint64]*queuedStep{}
	recvErr := make(chan error, 1)
	go func() {
		defer close(queue)
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if req.GetCancel() {
				mu.Lock()
				if q := byID[req.GetStepId()]; q != nil {
					q.cancel()
				}
				mu.Unlock()
				continue
			}
			qctx, cancel := context.WithCancel(ctx)
			q := &queuedStep{req: req, ctx: qctx, cancel: cancel}
			mu.Lock()
			byID[req.GetStepId()] = q
			mu.Unlock()
			select {
			case queue <- q:
			case <-ctx.Done():
				cancel()
				return
			}
		}
	}()
	var sendMu sync.Mutex // the step's answer and the heartbeats share Send
	send := func(resp *phalanxpb.StageResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(resp)
	}
	if d := s.cfg.ReplyDelay; d > 0 {
		delayed := newDelayedSender(ctx, d, stream.Send)
		defer delayed.close() // also on the early return below: no Send after Process returns
		send = delayed.send
	}
	var buf []float32
	var sendErr error
	for q := range queue {
		if sendErr == nil {
			buf, sendErr = s.answer(q, send, buf)
		}
		q.cancel()
		mu.Lock()
		delete(byID, q.req.GetStepId())
		mu.Unlock()
	}
	if sendErr != nil {
		return sendErr
	}
	if err := <-recvErr; !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// delayedSender sends each message a fixed delay after it was handed over,
// in order, from a goroutine of its own, so the caller never waits for the
// delay: what a network of that round-trip time does to a worker's replies.
type delayedSender struct {
	delay time.Duration
	out   func(*phalanxpb.StageResponse) error

	mu     sync.Mutex // orders due times with the queue; guards closed
	queue  chan delayedMessage
	closed bool

	errMu   sync.Mutex    // not mu: the goroutine takes it while a send waits for room
	err     error         // the first failed Send; later messages are dropped
	stopped chan struct{} // closed when the goroutine has returned
}

type delayedMessage struct {
	resp *phalanxpb.StageResponse
	due  time.Time
}

// maxDelayedMessages bounds the messages waiting out their delay; past it
// send blocks, as a full network window would.
const maxDelayedMessages = 4 * maxQueuedSteps

func newDelayedSender(ctx context.Context, delay time.Duration, out func(*phalanxpb.StageResponse) error) *delayedSender {
	d := &delayedSender{delay: delay, out: out, queue: make(chan delayedMessage, maxDelayedMessages), stopped: make(chan struct{})}
	go d.run(ctx)
	return d
}

func (d *delayedSender) run(ctx context.Context) {
	defer close(d.stopped)
	for m := range d.queue {
		if d.failed() != nil {
			continue // drain, so senders never block on a dead stream
		}
		var err error
		if wait := time.Until(m.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				err = ctx.Err()
			}
		}
		if err == nil {
			err = d.out(m.resp)
		}
		if err != nil {
			d.errMu.Lock()
			d.err = err
			d.errMu.Unlock()
		}
	}
}

func (d *delayedSender) failed() error {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.err
}

// send queues resp to leave after the delay; it fails only once an earlier
// message could not be sent.
func (d *delayedSender) send(resp *phalanxpb.StageResponse) error {
	if err := d.failed(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return io.ErrClosedPipe
	}
	// Due times grow in queue order: they are taken under the lock that
	// orders the queue.
	d.queue <- delayedMessage{resp: resp, due: time.Now().Add(d.delay)}
	return nil
}

// close sends what is queued, each at its time (unless the stream ends
// first), and returns once the goroutine has stopped.
func (d *delayedSender) close() {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.queue)
	}
	d.mu.Unlock()
	<-d.stopped
}

// answer computes one step, sending heartbeats while it runs, and sends its
// answer.
func (s *Server) answer(q *queuedStep, send func(*phalanxpb.StageResponse) error, buf []float32) ([]float32, error) {
	req := q.req
	resp := &phalanxpb.StageResponse{StepId: req.GetStepId()}
	stopBeat := make(chan struct{})
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		t := time.NewTicker(s.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-stopBeat:
				return
			case <-q.ctx.Done():
				return
			case <-t.C:
				if send(&phalanxpb.StageResponse{StepId: req.GetStepId(), Progress: true}) != nil {
					return
				}
			}
		}
	}()
	if s.cfg.StepDelay > 0 {
		t := time.NewTimer(s.cfg.StepDelay)
		select {
		case <-t.C:
		case <-q.ctx.Done():
			t.Stop()
		}
	}
	ctx := otel.GetTextMapPropagator().Extract(q.ctx, propagation.MapCarrier(req.GetTraceContext()))
	_, span := tracer.Start(ctx, "phalanx.worker_step", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("phalanx.worker", s.cfg.WorkerID), attribute.Int64("phalanx.step", int64(req.GetStepId())),
			attribute.Int("phalanx.sessions", len(req.GetSpans())), attribute.Int("phalanx.layer_start", int(req.GetLayerStart())),
			attribute.Int("phalanx.layer_end", int(req.GetLayerEnd()))))
	buf, err := s.step(q.ctx, req, resp, buf)
	close(stopBeat)
	<-beatDone
	code := codes.OK
	if err != nil {
		st := status.Convert(err)
		code = st.Code()
		resp.ErrorCode = int32(st.Code())
		resp.ErrorMessage = st.Message()
		resp.Hidden = nil
		span.SetStatus(otelcodes.Error, st.Message())
	}
	span.SetAttributes(attribute.Float64("phalanx.compute_ms", resp.GetComputeMs()))
	span.End()
	if m := s.metrics; m != nil {
		m.Steps.WithLabelValues(code.String()).Inc()
		if err == nil {
			m.StepTime.Observe(resp.GetComputeMs() / 1000)
			if sh := resp.GetHidden().GetShape(); len(sh) > 0 {
				m.Rows.Add(float64(sh[0]))
			}
		}
	}
	return buf, send(resp)
}
