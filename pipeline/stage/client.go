package stage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// MaxMessageBytes bounds gRPC messages between coordinator and workers: a
// prefill step of a full context in f32 (2048 × 2560 × 4 = 21 MB) fits.
const MaxMessageBytes = 64 << 20

// ErrDown reports a stage whose stream broke or fell silent; its steps
// in flight are lost and must be replayed elsewhere.
var ErrDown = errors.New("stage: unavailable")

// Client is the coordinator's end of one worker's step stream. Steps
// from many goroutines share the stream; answers are matched in order. A
// broken stream fails every step in flight with ErrDown and is
// reopened by the next step.
//
// A stage is judged by progress, not by how long a step takes: while steps
// are in flight, the worker sends a heartbeat about once a second, and
// only a stream silent for the whole timeout counts as dead. A step whose
// caller goes away is cancelled on the worker.
type Client struct {
	Address string
	conn    *grpc.ClientConn
	client  phalanxpb.StageClient
	timeout time.Duration

	mu      sync.Mutex // guards stream, pending and sends
	stream  phalanxpb.Stage_ProcessClient
	cancel  context.CancelFunc
	pending []chan stepResult
	gen     int // stream generation, so a dead receiver does not touch a new stream
	// heard is when the stream last showed life while steps were in
	// flight: a message received, or the first step sent after a pause.
	heard time.Time
}

type stepResult struct {
	resp *phalanxpb.StageResponse
	err  error
}

// NewClient wraps a connection. A stream with steps in flight that
// stays silent (no answer, no heartbeat) for timeout counts as failed; 0
// means 30 s.
func NewClient(addr string, conn *grpc.ClientConn, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &Client{Address: addr, conn: conn, client: phalanxpb.NewStageClient(conn), timeout: timeout}
}

// RPC is the generated Stage client (for Release and Info).
func (c *Client) RPC() phalanxpb.StageClient { return c.client }

// Step sends one step and waits for its answer. A step-level error the
// worker reports is returned as a gRPC status error; a broken or silent
// stream as ErrDown. When ctx ends first, the step is cancelled on the
// worker and ctx's error returned.
func (c *Client) Step(ctx context.Context, req *phalanxpb.StageRequest) (*phalanxpb.StageResponse, error) {
	ch := make(chan stepResult, 1)
	c.mu.Lock()
	if c.stream == nil {
		if err := c.openLocked(); err != nil {
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: %s: %v", ErrDown, c.Address, err)
		}
	}
	gen := c.gen
	if len(c.pending) == 0 {
		c.heard = time.Now() // silence while idle does not count
	}
	c.pending = append(c.pending, ch)
	if err := c.stream.Send(req); err != nil {
		c.breakLocked(gen, fmt.Errorf("send: %w", err))
		c.mu.Unlock()
		r := <-ch
		return nil, r.err
	}
	c.mu.Unlock()

	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				return nil, r.err
			}
			if code := codes.Code(r.resp.GetErrorCode()); code != codes.OK {
				return nil, status.Error(code, r.resp.GetErrorMessage())
			}
			if r.resp.GetStepId() != req.GetStepId() {
				err := fmt.Errorf("%w: %s answered step %d to step %d", ErrDown, c.Address, r.resp.GetStepId(), req.GetStepId())
				c.Reset(err)
				return nil, err
			}
			return r.resp, nil
		case <-timer.C:
			c.mu.Lock()
			silent := time.Since(c.heard)
			if gen == c.gen && c.stream != nil && silent >= c.timeout {
				c.breakLocked(gen, fmt.Errorf("%w: %s sent nothing for %v with step %d in flight", ErrDown, c.Address,
					silent.Round(time.Millisecond), req.GetStepId()))
			}
			c.mu.Unlock()
			timer.Reset(max(c.timeout-silent, time.Millisecond))
		case <-ctx.Done():
			// The answer still comes, CANCELLED or not, and is dropped (ch
			// is buffered), which keeps the stream's answers in order.
			c.mu.Lock()
			if gen == c.gen && c.stream != nil {
				if err := c.stream.Send(&phalanxpb.StageRequest{StepId: req.GetStepId(), Cancel: true}); err != nil {
					c.breakLocked(gen, fmt.Errorf("send cancel: %w", err))
				}
			}
			c.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// Reset breaks the current stream, failing steps in flight with err.
func (c *Client) Reset(err error) {
	c.mu.Lock()
	c.breakLocked(c.gen, err)
	c.mu.Unlock()
}

func (c *Client) openLocked() error {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.client.Process(ctx)
	if err != nil {
		cancel()
		return err
	}
	c.stream, c.cancel = stream, cancel
	c.gen++
	go c.receive(stream, c.gen)
	return nil
}

func (c *Client) receive(stream phalanxpb.Stage_ProcessClient, gen int) {
	for {
		resp, err := stream.Recv()
		c.mu.Lock()
		if gen != c.gen || c.stream == nil {
			c.mu.Unlock()
			return
		}
		if err != nil {
			c.breakLocked(gen, err)
			c.mu.Unlock()
			return
		}
		c.heard = time.Now()
		if resp.GetProgress() {
			c.mu.Unlock()
			continue
		}
		if len(c.pending) == 0 {
			c.breakLocked(gen, fmt.Errorf("unexpected answer to step %d", resp.GetStepId()))
			c.mu.Unlock()
			return
		}
		ch := c.pending[0]
		c.pending = c.pending[1:]
		c.mu.Unlock()
		ch <- stepResult{resp: resp}
	}
}

// breakLocked ends the stream of generation gen and fails its pending steps.
func (c *Client) breakLocked(gen int, cause error) {
	if gen != c.gen || c.stream == nil {
		return
	}
	c.cancel()
	c.stream, c.cancel = nil, nil
	err := cause
	if !errors.Is(err, ErrDown) {
		err = fmt.Errorf("%w: %s: %v", ErrDown, c.Address, cause)
	}
	for _, ch := range c.pending {
		ch <- stepResult{err: err}
	}
	c.pending = nil
}

// Close ends the stream (not the connection, which the caller owns).
func (c *Client) Close() {
	c.Reset(errors.New("client closed"))
}
