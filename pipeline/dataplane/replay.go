package dataplane

import (
	"context"
	"errors"
	"time"

	"github.com/phalanx-llm/phalanx/pipeline/stage"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// retryable tells failures a new route can cure: a stage that is gone or
// not ready, a plan that changed under the step, no plan yet.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, stage.ErrDown) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.FailedPrecondition:
		return true
	}
	return false
}

// replay reruns a failed micro-batch with every session's whole history
// from position 0 (the stages truncate what they hold, a new stage starts
// empty), waiting for the route to change between attempts, for at most
// ReplanTimeout. Because prefill and decode compute the same bits, the
// rebuilt caches and the logits are exactly those of a run without the
// failure. Histories go in chunks and steps no bigger than normal traffic's,
// so a replay is never refused for its size.
func (s *Scheduler) replay(ctx context.Context, batch []*stepItem, cause error) error {
	deadline := time.Now().Add(s.cfg.ReplanTimeout)
	backoff := 20 * time.Millisecond
	s.cfg.Logger.Warn("step failed; replaying its sessions", "sessions", len(batch), "cause", cause)
	for attempt := 1; ; attempt++ {
		_, changed := s.routeAndSignal()
		wait := time.Until(deadline)
		if wait <= 0 {
			return status.Errorf(codes.Unavailable, "pipeline: no working pipeline within %v: %v", s.cfg.ReplanTimeout, cause)
		}
		t := time.NewTimer(min(backoff, wait))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.stop:
			t.Stop()
			return status.Error(codes.Unavailable, "pipeline: scheduler closed")
		}
		t.Stop()
		if s.cfg.CapacityGone != nil {
			if gone := s.cfg.CapacityGone(); gone != nil {
				return status.Errorf(codes.Unavailable, "pipeline: capacity lost: %v (after: %v)", gone, cause)
			}
		}
		err := s.replayOnce(ctx, batch)
		if !retryable(err) {
			if err == nil {
				s.cfg.Logger.Info("replay succeeded", "sessions", len(batch), "attempts", attempt)
			}
			return err
		}
		cause = err
		backoff = min(2*backoff, time.Second)
	}
}

// replayOnce sends every session's history and new tokens from position 0:
// in round k, the k-th chunk of every session whose history is that long,
// packed into steps within the row limit. The last chunk of a session
// writes its logits.
func (s *Scheduler) replayOnce(ctx context.Context, batch []*stepItem) error {
	r := s.Route()
	chunk, maxRows := s.cfg.PrefillChunk, s.cfg.MaxBatchRows
	if r != nil && r.MaxStepRows > 0 {
		chunk, maxRows = min(chunk, r.MaxStepRows), min(maxRows, r.MaxStepRows)
	}
	all := make([][]int, len(batch))
	for i, it := range batch {
		all[i] = append(append(make([]int, 0, it.pos+len(it.ids)), it.hist[:it.pos]...), it.ids...)
	}
	for round := 0; ; round++ {
		var parts []stepPart
		for i, it := range batch {
			lo := round * chunk
			if lo >= len(all[i]) || it.ctx.Err() != nil {
				continue
			}
			hi := min(lo+chunk, len(all[i]))
			p := stepPart{it: it, ids: all[i][lo:hi], pos: lo}
			if hi == len(all[i]) {
				p.logits = it.logits
			}
			parts = append(parts, p)
		}
		if len(parts) == 0 {
			return ctx.Err()
		}
		for len(parts) > 0 {
			n, rows := 0, 0
			for n < len(parts) && n < s.cfg.MaxBatchSessions && rows+len(parts[n].ids) <= maxRows {
				rows += len(parts[n].ids)
				n++
			}
			if err := s.forward(ctx, parts[:n], true); err != nil {
				return err
			}
			parts = parts[n:]
		}
	}
}
