package dataplane

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/pipeline/stage"
)

// stepTime is the mean time of n single-session decode steps after the
// prompt.
func stepTime(t *testing.T, c *cluster, n int) time.Duration {
	t.Helper()
	sess := c.sched.NewSession()
	defer sess.Close()
	logits := make([]float32, c.ends.Config.VocabSize)
	if err := sess.Forward(context.Background(), []int{1, 2, 3}, logits); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range n {
		if err := sess.Forward(context.Background(), []int{4 + i}, logits); err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start) / time.Duration(n)
}

// A worker's reply delay behaves like a network of that round-trip time:
// a 2-stage step takes compute + 2 × delay, and two micro-batches in
// flight wait out their delays together, not one after the other.
func TestReplyDelay(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	const delay, steps = 40 * time.Millisecond, 8
	c := startClusterWith(t, dir, []int{0, 2, 4}, stage.Config{}, Config{}, 10*time.Second)
	base := stepTime(t, c, steps)
	c.close()

	c = startClusterWith(t, dir, []int{0, 2, 4}, stage.Config{ReplyDelay: delay, Heartbeat: 5 * time.Millisecond},
		Config{MaxBatchSessions: 1}, 10*time.Second)
	defer c.close()
	one := stepTime(t, c, steps)
	// The delays are a lower bound; the upper one leaves room for a busy
	// machine but not for a third delay.
	if lo, hi := 2*delay, base+2*delay+delay/2; one < lo || one > hi {
		t.Errorf("one step with a %v reply delay on 2 stages: %v, want %v … %v (%v without delay)", delay, one, lo, hi, base)
	}

	// Two sessions, one per micro-batch (MaxBatchSessions 1), two in
	// flight (one per stage): their steps overlap.
	var wg sync.WaitGroup
	times := make([]time.Duration, 2)
	start := time.Now()
	for i := range times {
		wg.Add(1)
		go func() {
			defer wg.Done()
			times[i] = stepTime(t, c, steps)
		}()
	}
	wg.Wait()
	both := time.Since(start)
	serial := 2 * (steps + 1) * 2 * delay // prompt and decode steps of both sessions
	if both > serial*3/4 {
		t.Errorf("two sessions × %d steps in 2 micro-batches took %v; serialized delays alone take %v", steps, both, serial)
	}
	if got, want := c.sched.Stats().Steps, uint64(3*(steps+1)); got != want {
		t.Errorf("%d steps, want %d (one session per micro-batch)", got, want)
	}
	t.Logf("step without delay %v; with %v per hop: one session %v, two sessions %v and %v per step (%v in all, serialized would be ≥ %v)",
		base, delay, one, times[0], times[1], both, serial)
}
