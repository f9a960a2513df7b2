package dataplane

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/pipeline/stage"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
)

// rawStep builds a step of n zero rows for session id at pos, for a stage
// that holds every layer of the fixture at epoch 7.
func rawStep(t *testing.T, c *cluster, stepID uint64, id string, pos, n int) *phalanxpb.StageRequest {
	t.Helper()
	H := c.ends.Config.HiddenSize
	tn, err := wire.EncodeF32(n, H, make([]float32, n*H), phalanxpb.DType_DTYPE_F32)
	if err != nil {
		t.Fatal(err)
	}
	return &phalanxpb.StageRequest{Epoch: 7, LayerEnd: int32(c.ends.Config.NumLayers), StepId: stepID,
		Spans: []*phalanxpb.SessionSpan{{SessionId: id, Position: int32(pos), Tokens: int32(n)}}, Hidden: tn}
}

// Releases and idle evictions that land while a session's step computes
// must neither crash the worker nor leave the session behind (the worker
// used to dereference the released session after the forward pass).
func TestReleaseWhileStepComputes(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	cfg, _ := engine.LoadConfig(dir)
	c := startClusterWith(t, dir, []int{0, cfg.NumLayers}, stage.Config{IdleTimeout: time.Millisecond},
		Config{ReplanTimeout: time.Second}, 10*time.Second)
	defer c.close()
	_, inUse := engine.KVPoolBytes()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.servers[0].Run(ctx) // evicts idle sessions every few milliseconds
	stage := c.sched.Route().Stages[0].Client
	var wg sync.WaitGroup
	var stepID sync.Mutex
	next := uint64(0)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range 20 {
				id := fmt.Sprintf("s%d-%d", g, i)
				delay := time.Duration(r.IntN(300)) * time.Microsecond
				go func() {
					time.Sleep(delay)
					stage.RPC().Release(context.Background(), &phalanxpb.ReleaseRequest{SessionIds: []string{id}})
				}()
				stepID.Lock()
				next++
				sid := next
				stepID.Unlock()
				if _, err := stage.Step(context.Background(), rawStep(t, c, sid, id, 0, 1+r.IntN(24))); err != nil {
					t.Error(err)
					return
				}
				stage.RPC().Release(context.Background(), &phalanxpb.ReleaseRequest{SessionIds: []string{id}})
			}
		}()
	}
	wg.Wait()
	time.Sleep(50 * time.Millisecond) // the last racing releases
	waitSessions(t, c.servers, 0)
	// Every cache's blocks went back to the pool, including those of
	// sessions released while their step computed (returned by that step).
	if _, now := engine.KVPoolBytes(); now > inUse {
		t.Errorf("KV blocks in use: %d bytes before, %d after every session was released", inUse, now)
	}
}

// Clients that go away at any moment — queued, mid-prefill, mid-decode —
// leave no KV cache behind on any stage, and the cluster keeps serving.
func TestClientsGoneFreeEveryCache(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	c := startClusterWith(t, dir, []int{0, 2, 4}, stage.Config{}, Config{ReplanTimeout: time.Second, PrefillChunk: 4}, 10*time.Second)
	defer c.close()
	g := textgen.ForConfig(c.ends.Config, nil)
	var wg sync.WaitGroup
	for i := range 96 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%24)*time.Millisecond)
			defer cancel()
			sess := c.sched.NewSession()
			defer sess.Close()
			prompt := make([]int, 3+i%13)
			for j := range prompt {
				prompt[j] = (i*7 + j) % c.ends.Config.VocabSize
			}
			_, err := g.Run(ctx, sess, textgen.Request{Tokens: prompt, MaxTokens: 200, IgnoreEOS: true}, func(textgen.Chunk) error { return nil })
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("client %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	waitSessions(t, c.servers, 0)
	// Still serving, with the right answer.
	prompt := []int{3, 1, 4, 1, 5}
	want := greedyLocal(t, dir, prompt, 8)
	sess := c.sched.NewSession()
	res, err := g.Run(context.Background(), sess, textgen.Request{Tokens: prompt, MaxTokens: 8, IgnoreEOS: true}, func(textgen.Chunk) error { return nil })
	sess.Close()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Tokens) != fmt.Sprint(want) {
		t.Fatalf("after the crowd left: %v, want %v", res.Tokens, want)
	}
	waitSessions(t, c.servers, 0)
}

// A prompt longer than the prefill chunk goes in several steps and gives
// exactly the logits of one pass.
func TestChunkedPrefillBitIdentical(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	ids := []int{0, 5, 123, 77, 5, 99, 3, 8, 13, 21, 34}
	want := localLogits(t, dir, ids)
	for _, chunk := range []int{1, 3, 4} {
		c := startClusterWith(t, dir, []int{0, 2, 4}, stage.Config{}, Config{PrefillChunk: chunk}, 10*time.Second)
		sess := c.sched.NewSession()
		got := make([]float32, len(want))
		if err := sess.Forward(context.Background(), ids, got); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("chunk %d: logit %d = %v, want %v", chunk, i, got[i], want[i])
			}
		}
		if st := c.sched.Stats(); st.Steps != uint64((len(ids)+chunk-1)/chunk) {
			t.Errorf("chunk %d: %d steps for %d tokens", chunk, st.Steps, len(ids))
		}
		sess.Close()
		c.close()
	}
}

// After a stage is lost, replay rebuilds many sessions' histories in steps
// no bigger than the stages take: it used to send whole histories in one
// step, which a stage refused as invalid, failing the requests.
func TestReplayRespectsStepRows(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	cfg, _ := engine.LoadConfig(dir)
	L := cfg.NumLayers
	stageCfg := stage.Config{MaxStepRows: 16}
	schedCfg := Config{ReplanTimeout: 10 * time.Second, PrefillChunk: 8}
	c := startClusterWith(t, dir, []int{0, 1, L}, stageCfg, schedCfg, 10*time.Second)
	defer c.close()
	spare := startClusterWith(t, dir, []int{1, L}, stageCfg, schedCfg, 10*time.Second)
	defer spare.close()
	g := textgen.ForConfig(cfg, nil)
	const sessions = 12
	var (
		wg      sync.WaitGroup
		killed  sync.Once
		started = make(chan struct{}, sessions)
	)
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prompt := []int{i + 1, 2*i + 3, 5, 7, 11, 13, 17, 19, 23, 29}
			want := greedyLocal(t, dir, prompt, 24)
			sess := c.sched.NewSession()
			defer sess.Close()
			n := 0
			res, err := g.Run(context.Background(), sess, textgen.Request{Tokens: prompt, MaxTokens: 24, IgnoreEOS: true}, func(textgen.Chunk) error {
				if n++; n == 12 {
					started <- struct{}{}
				}
				return nil
			})
			if err != nil {
				t.Errorf("session %d: %v", i, err)
				return
			}
			if fmt.Sprint(res.Tokens) != fmt.Sprint(want) {
				t.Errorf("session %d after replay: %v, want %v", i, res.Tokens, want)
			}
		}()
	}
	go func() {
		for range sessions / 2 {
			<-started
		}
		killed.Do(func() {
			c.stops[1]() // the second stage dies with every session ~20 positions long
			failOver(c, spare, 100*time.Millisecond)
		})
	}()
	wg.Wait()
}

// A step that takes longer than the stage timeout is not a dead stage:
// the worker's heartbeats keep the stream alive and the step is computed
// once.
func TestSlowStepIsNotDeadStage(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	c := startClusterWith(t, dir, []int{0, 4}, stage.Config{StepDelay: 900 * time.Millisecond, Heartbeat: 50 * time.Millisecond},
		Config{ReplanTimeout: 300 * time.Millisecond}, 300*time.Millisecond)
	defer c.close()
	sess := c.sched.NewSession()
	defer sess.Close()
	if err := sess.Forward(context.Background(), []int{1, 2, 3}, make([]float32, c.ends.Config.VocabSize)); err != nil {
		t.Fatalf("a slow but alive stage failed the step: %v", err)
	}
	if st := c.sched.Stats(); st.Steps != 1 {
		t.Errorf("%d steps, want 1 (no replay)", st.Steps)
	}
}

// A silent stage (no answer, no heartbeat) is still declared down after
// the timeout.
func TestSilentStageIsDown(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	// A heartbeat slower than the step delay: nothing arrives in time.
	c := startClusterWith(t, dir, []int{0, 4}, stage.Config{StepDelay: 2 * time.Second, Heartbeat: time.Hour},
		Config{}, 300*time.Millisecond)
	defer c.close()
	cl := c.sched.Route().Stages[0].Client
	_, err := cl.Step(context.Background(), rawStep(t, c, 1, "a", 0, 1))
	if !errors.Is(err, stage.ErrDown) {
		t.Fatalf("silent stage: %v, want stage.ErrDown", err)
	}
}

// A step whose caller goes away is cancelled on the worker: skipped if
// queued, stopped if running; it creates no session, and the stream goes on.
func TestCancelledStepStopsOnWorker(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	c := startClusterWith(t, dir, []int{0, 4}, stage.Config{StepDelay: 500 * time.Millisecond}, Config{}, 10*time.Second)
	defer c.close()
	cl := c.sched.Route().Stages[0].Client
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() {
		_, err := cl.Step(ctx, rawStep(t, c, 1, "gone", 0, 4))
		errs <- err
	}()
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, err := cl.Step(ctx, rawStep(t, c, 2, "gone-too", 0, 4)) // queued behind the first
		errs <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled step: %v", err)
		}
	}
	start := time.Now()
	if _, err := cl.Step(context.Background(), rawStep(t, c, 3, "kept", 0, 2)); err != nil {
		t.Fatalf("the stream did not survive a cancel: %v", err)
	}
	// Both cancelled steps were skipped: only the last one's delay was paid.
	if d := time.Since(start); d > 1400*time.Millisecond {
		t.Errorf("the step after two cancelled ones took %v: the cancelled ones were computed", d)
	}
	if n, _ := c.servers[0].Stats(); n != 1 {
		t.Errorf("worker holds %d sessions, want 1 (cancelled steps must not create theirs)", n)
	}
}

// Admission: up to the limit at once, a bounded FIFO queue with a timeout,
// refusals with RESOURCE_EXHAUSTED and a retry delay.
func TestAdmission(t *testing.T) {
	a := NewAdmission(2, 1, 200*time.Millisecond)
	r1, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := a.Acquire(context.Background()) // queued
		if err == nil {
			r()
		}
		got <- err
	}()
	for a.Stats().Queued != 1 {
		time.Sleep(time.Millisecond)
	}
	_, err = a.Acquire(context.Background()) // queue full: refused at once
	if status.Code(err) != codes.ResourceExhausted || RetryDelay(err) != RetryAfter {
		t.Fatalf("over the queue: %v (retry %v)", err, RetryDelay(err))
	}
	r1()
	r1() // a second call is harmless
	if err := <-got; err != nil {
		t.Fatalf("queued request: %v", err)
	}
	// Times out in the queue.
	r3, _ := a.Acquire(context.Background())
	start := time.Now()
	_, err = a.Acquire(context.Background())
	if status.Code(err) != codes.ResourceExhausted || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("queue timeout: %v after %v", err, time.Since(start))
	}
	// A caller that goes away leaves the queue.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := a.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	r2()
	r3()
	if st := a.Stats(); st.Active != 0 || st.Queued != 0 || st.Refused != 2 {
		t.Fatalf("after everything: %+v", st)
	}
	// Many at once: never more than the limit running.
	a = NewAdmission(3, 100, time.Second)
	var mu sync.Mutex
	running, peak := 0, 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := a.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			running++
			peak = max(peak, running)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
			r()
		}()
	}
	wg.Wait()
	if peak > 3 {
		t.Fatalf("%d ran at once, limit 3", peak)
	}
}

// Concurrent sessions decode in one micro-batch per machine: a session
// whose step just ended is waited for (BatchWindow) instead of being sent
// a step later, so the batch does not fragment into stragglers.
func TestBatchingKeepsSessionsTogether(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	for _, hosts := range []int{1, 2} {
		c := startClusterWith(t, dir, []int{0, 2, 4}, stage.Config{StepDelay: 2 * time.Millisecond}, Config{}, 10*time.Second)
		r := *c.sched.Route()
		r.Parallel = hosts
		c.sched.SetRoute(&r)
		const sessions, tokens = 8, 16
		runTogether(t, c.sched, sessions, func(i int) textgen.Request {
			return textgen.Request{Tokens: []int{i + 1, 2, 3}, MaxTokens: tokens, IgnoreEOS: true}
		})
		steps := c.sched.Stats().Steps
		// Decode needs tokens-1 steps per group of sessions batched
		// together; a few more for the prompts arriving apart.
		if limit := uint64(hosts*(tokens-1) + sessions/2); steps > limit {
			t.Errorf("%d machines: %d steps for %d sessions × %d tokens, want at most %d (sessions fragmented into more batches)",
				hosts, steps, sessions, tokens, limit)
		}
		t.Logf("%d machines: %d steps for %d sessions × %d tokens", hosts, steps, sessions, tokens)
		c.close()
	}
}

// The row limit of a batch is the route's at the time the batch is made,
// not when the dispatcher began waiting: a coordinator waits before its
// first plan (no limit known yet) and while a step is in flight, and the
// steps queued meanwhile must not be packed past the stages' limit.
func TestBatchRowLimitFollowsRoute(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	cfg, _ := engine.LoadConfig(dir)
	c := startClusterWith(t, dir, []int{0, cfg.NumLayers}, stage.Config{MaxStepRows: 16, StepDelay: 200 * time.Millisecond},
		Config{ReplanTimeout: 2 * time.Second, PrefillChunk: 8}, 10*time.Second)
	defer c.close()
	limited := c.sched.Route()
	unknown := *limited
	unknown.MaxStepRows = 0 // no worker has published its limit yet
	c.sched.SetRoute(&unknown)
	req := func(i int) textgen.Request {
		return textgen.Request{Tokens: []int{i + 1, 2*i + 3, 5, 7, 11, 13, 17, 19, 23, 29}, MaxTokens: 1, IgnoreEOS: true}
	}
	// One session's first step (8 rows) goes alone and takes 200 ms; seven
	// more queue their first steps (8 rows each) behind it; then the limit
	// is published.
	first := make(chan error, 1)
	go func() {
		sess := c.sched.NewSession()
		defer sess.Close()
		_, err := textgen.ForConfig(cfg, nil).Run(context.Background(), sess, req(100), nil)
		first <- err
	}()
	time.Sleep(50 * time.Millisecond)
	rest := make(chan struct{})
	go func() {
		defer close(rest)
		runTogether(t, c.sched, 7, req)
	}()
	time.Sleep(50 * time.Millisecond)
	c.sched.SetRoute(limited)
	<-rest
	if err := <-first; err != nil {
		t.Errorf("first session: %v", err)
	}
}

// runTogether runs n generations on s, each its own session, all released
// at once so that their steps arrive together, and waits for them; a failed
// one fails t.
func runTogether(t *testing.T, s *Scheduler, n int, req func(i int) textgen.Request) {
	t.Helper()
	g := textgen.ForConfig(s.ends.Config, nil)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := s.NewSession()
			defer sess.Close()
			<-start
			if _, err := g.Run(context.Background(), sess, req(i), nil); err != nil {
				t.Errorf("session %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
}
