package dataplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// Session is one sequence on the cluster; it implements textgen.Backend.
// Its methods must not be called concurrently.
type Session struct {
	ID      string
	span    trace.SpanContext // of the request, so releases join its trace
	s       *Scheduler
	pos     int
	history []int
	closed  bool
	// thinking: see Scheduler.thinking.
	thinking atomic.Bool
	// inflight is a step its caller stopped waiting for (ctx ended) that
	// the scheduler has not finished; Close releases the caches after it,
	// or the step would re-create what the release freed.
	inflight *stepItem
}

// NewSession opens a session.
func (s *Scheduler) NewSession() *Session {
	var b [12]byte
	rand.Read(b[:])
	s.active.Add(1)
	return &Session{ID: hex.EncodeToString(b[:]), s: s}
}

// Len is the number of positions the session holds.
func (ss *Session) Len() int { return ss.pos }

// Forward runs ids through the pipeline after what the session holds and
// writes the logits of the last of them. A long ids goes in chunks of
// PrefillChunk tokens, one step each, so other sessions' steps interleave.
func (ss *Session) Forward(ctx context.Context, ids []int, logits []float32) error {
	if ss.closed {
		return errors.New("pipeline: session closed")
	}
	if len(ids) == 0 {
		return errors.New("pipeline: no tokens")
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		ss.span = sc
	}
	chunk := ss.s.cfg.PrefillChunk
	if r := ss.s.Route(); r != nil && r.MaxStepRows > 0 {
		chunk = min(chunk, r.MaxStepRows)
	}
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		var out []float32
		if n == len(ids) {
			out = logits
		}
		if err := ss.step(ctx, ids[:n], out); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

func (ss *Session) step(ctx context.Context, ids []int, logits []float32) error {
	if ss.inflight != nil {
		// The last step was abandoned by its caller; wait until it is done
		// so its answer cannot land after this one.
		<-ss.inflight.done
		ss.inflight = nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	it := &stepItem{ctx: ctx, sess: ss, hist: ss.history, ids: ids, pos: ss.pos, logits: logits, done: make(chan error, 1)}
	ss.s.waiting.Add(1)
	ss.doneThinking()
	select {
	case ss.s.queue <- it:
	case <-ctx.Done():
		ss.s.waiting.Add(-1)
		return ctx.Err()
	}
	select {
	case err := <-it.done:
		if err != nil {
			return err
		}
		ss.pos += len(ids)
		ss.history = append(ss.history, ids...)
		return nil
	case <-ctx.Done():
		// The step may still complete; a later step of this session starts
		// at ss.pos, which truncates whatever it left behind.
		ss.inflight = it
		return ctx.Err()
	}
}

// Close releases the session's KV caches on every stage: at once, or, if a
// step its caller abandoned is still running, as soon as it ends.
func (ss *Session) Close() {
	if ss.closed {
		return
	}
	ss.closed = true
	ss.s.active.Add(-1)
	ss.doneThinking()
	if it := ss.inflight; it != nil {
		ss.inflight = nil
		go func() {
			<-it.done
			ss.s.release(ss.ID)
		}()
		return
	}
	ss.s.release(ss.ID)
}

func (ss *Session) doneThinking() {
	if ss.thinking.CompareAndSwap(true, false) {
		ss.s.thinking.Add(-1)
	}
}

// release queues a session for the releaser, which frees it on every stage.
func (s *Scheduler) release(id string) {
	s.relMu.Lock()
	s.relIDs = append(s.relIDs, id)
	s.relMu.Unlock()
	select {
	case s.relKick <- struct{}{}:
	default:
	}
}

// releaser frees released sessions' caches on every stage of the route, in
// one Release call per stage for all the sessions that ended meanwhile, so
// a crowd of clients leaving at once costs a few calls, not thousands.
// Sessions a stage does not get (it is down, or the call fails) are freed
// there by its idle timeout.
func (s *Scheduler) releaser() {
	defer s.wg.Done()
	for stopping := false; !stopping; {
		select {
		case <-s.stop:
			stopping = true // one last round for sessions closed before
		case <-s.relKick:
		}
		s.relMu.Lock()
		ids := s.relIDs
		s.relIDs = nil
		s.relMu.Unlock()
		r := s.Route()
		if r == nil || len(ids) == 0 {
			continue
		}
		var wg sync.WaitGroup
		for _, st := range r.Stages {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if _, err := st.Client.RPC().Release(ctx, &phalanxpb.ReleaseRequest{SessionIds: ids}); err != nil {
					s.cfg.Logger.Warn("could not release sessions; the stage frees them after its idle timeout",
						"worker", st.WorkerID, "sessions", len(ids), "err", err)
				}
			}()
		}
		wg.Wait()
	}
}
