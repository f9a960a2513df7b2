package stage

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// The delayed sender hands messages on in order, each no sooner than the
// delay after it was given, without making the caller wait; close sends
// what is left, and an ended stream drops it.
func TestDelayedSender(t *testing.T) {
	const delay = 30 * time.Millisecond
	var mu sync.Mutex
	var got []uint64
	var at []time.Time
	out := func(r *phalanxpb.StageResponse) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.GetStepId())
		at = append(at, time.Now())
		return nil
	}
	d := newDelayedSender(context.Background(), delay, out)
	start := time.Now()
	for i := range 5 {
		if err := d.send(&phalanxpb.StageResponse{StepId: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if waited := time.Since(start); waited > delay/2 {
		t.Errorf("send waited %v", waited)
	}
	d.close()
	if len(got) != 5 {
		t.Fatalf("sent %v, want 5 messages", got)
	}
	for i, id := range got {
		if id != uint64(i) {
			t.Fatalf("sent in order %v", got)
		}
		if at[i].Sub(start) < delay {
			t.Errorf("message %d left after %v, before the %v delay", i, at[i].Sub(start), delay)
		}
	}
	if err := d.send(&phalanxpb.StageResponse{}); err == nil {
		t.Error("send after close succeeded")
	}

	ctx, cancel := context.WithCancel(context.Background())
	got = nil
	d = newDelayedSender(ctx, time.Hour, out)
	d.send(&phalanxpb.StageResponse{StepId: 1})
	cancel()
	d.close() // returns at once: the stream is gone
	if len(got) != 0 {
		t.Errorf("sent %v on an ended stream", got)
	}
	if err := d.send(&phalanxpb.StageResponse{}); err == nil {
		t.Error("send on an ended stream succeeded")
	}
}
