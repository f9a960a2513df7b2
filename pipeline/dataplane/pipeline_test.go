package dataplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/pipeline/stage"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var fixtures = []string{"phi-tiny-f32", "phi-tiny-bf16-sharded"}

func fixture(name string) string { return filepath.Join("..", "..", "testdata", name) }

// cluster is stage servers on loopback sockets and a scheduler over them.
type cluster struct {
	sched   *Scheduler
	servers []*stage.Server
	stops   []func()
	conns   []*grpc.ClientConn
	ends    *engine.Model
}

func (c *cluster) close() {
	c.sched.Close()
	for _, cc := range c.conns {
		cc.Close()
	}
	for _, stop := range c.stops {
		stop()
	}
	for _, s := range c.servers {
		s.Close()
	}
	c.ends.Close()
}

func startCluster(t *testing.T, dir string, bounds []int, wireDT phalanxpb.DType, budget int64) *cluster {
	t.Helper()
	return startClusterWith(t, dir, bounds, stage.Config{CacheBudget: budget}, Config{Wire: wireDT, ReplanTimeout: 2 * time.Second}, 10*time.Second)
}

// startClusterWith starts stages configured like stageCfg (each with its
// own worker id) and a scheduler configured by schedCfg; stageTimeout is the
// stage clients' silence limit.
func startClusterWith(t *testing.T, dir string, bounds []int, stageCfg stage.Config, schedCfg Config, stageTimeout time.Duration) *cluster {
	t.Helper()
	ends, err := engine.Load(dir, engine.Options{Embedding: true, Head: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{ends: ends}
	route := &Route{Epoch: 7, MaxStepRows: stageCfg.MaxStepRows}
	for i := 0; i+1 < len(bounds); i++ {
		r := engine.LayerRange{Start: bounds[i], End: bounds[i+1]}
		m, err := engine.Load(dir, engine.Options{Layers: r, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		sc := stageCfg
		sc.WorkerID = fmt.Sprint("w", i)
		srv := stage.NewServer(sc)
		srv.Install(m, 7)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer()
		phalanxpb.RegisterStageServer(gs, srv)
		go gs.Serve(lis)
		c.servers = append(c.servers, srv)
		c.stops = append(c.stops, gs.Stop)
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		c.conns = append(c.conns, conn)
		route.Stages = append(route.Stages, RouteStage{WorkerID: fmt.Sprint("w", i), Layers: r,
			Client: stage.NewClient(lis.Addr().String(), conn, stageTimeout)})
	}
	c.sched = NewScheduler(ends, schedCfg)
	c.sched.SetRoute(route)
	return c
}

// waitSessions waits (at most 5 s) until every server holds want sessions:
// releases travel asynchronously.
func waitSessions(t *testing.T, servers []*stage.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var held []int
		ok := true
		for _, s := range servers {
			n, _ := s.Stats()
			held = append(held, n)
			ok = ok && n == want
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stages hold %v sessions after 5 s, want %d each", held, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func localLogits(t *testing.T, dir string, ids []int) []float32 {
	m, err := engine.Load(dir, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, _ := textgen.NewLocalBackend(m)
	l := make([]float32, m.Config.VocabSize)
	if err := b.Forward(context.Background(), ids, l); err != nil {
		t.Fatal(err)
	}
	return l
}

// With the f32 wire a pipeline is bit-identical to one process, whatever
// the split.
func TestPipelineBitIdentical(t *testing.T) {
	ids := []int{0, 5, 123, 77, 5, 99, 3}
	for _, fx := range fixtures {
		dir := fixture(fx)
		want := localLogits(t, dir, ids)
		cfg, _ := engine.LoadConfig(dir)
		L := cfg.NumLayers
		for _, bounds := range [][]int{{0, L}, {0, 1, L}, {0, 1, 2, L}, {0, L - 1, L}} {
			c := startCluster(t, dir, bounds, phalanxpb.DType_DTYPE_F32, 0)
			sess := c.sched.NewSession()
			got := make([]float32, cfg.VocabSize)
			if err := sess.Forward(context.Background(), ids, got); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s %v: logit %d = %v, want %v (bit-identical)", fx, bounds, i, got[i], want[i])
				}
			}
			sess.Close()
			waitSessions(t, c.servers, 0)
			c.close()
		}
	}
}

// failOver does what the coordinator does after c's second stage died: a
// while later (it notices and re-plans), route epoch 8 over c's first stage
// and spare's only one, which holds the lost stage's layers.
func failOver(c, spare *cluster, after time.Duration) {
	time.Sleep(after)
	old := c.sched.Route()
	c.servers[0].SetEpoch(8)
	spare.servers[0].SetEpoch(8)
	c.sched.SetRoute(&Route{Epoch: 8, MaxStepRows: old.MaxStepRows, Stages: []RouteStage{old.Stages[0], spare.sched.Route().Stages[0]}})
}

func greedyLocal(t *testing.T, dir string, prompt []int, n int) []int {
	m, err := engine.Load(dir, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out, err := engine.Greedy(m, prompt, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Concurrent sessions batched together each get their own greedy tokens.
func TestConcurrentSessions(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	c := startCluster(t, dir, []int{0, 2, 3, 4}, phalanxpb.DType_DTYPE_F32, 0)
	defer c.close()
	cfg := c.ends.Config
	g := textgen.ForConfig(cfg, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			prompt := []int{i, 2 * i, 3*i + 1, 17}
			want := greedyLocal(t, dir, prompt, 12)
			sess := c.sched.NewSession()
			defer sess.Close()
			res, err := g.Run(context.Background(), sess, textgen.Request{Tokens: prompt, MaxTokens: 12, IgnoreEOS: true, Sampling: sample.Params{}}, func(textgen.Chunk) error { return nil })
			if err != nil {
				errs <- err
				return
			}
			for j := range want {
				if res.Tokens[j] != want[j] {
					errs <- fmt.Errorf("session %d: %v, want %v", i, res.Tokens, want)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := c.sched.Stats(); st.Steps >= 16*12 {
		t.Errorf("%d steps for 16 sessions × 12 tokens: no batching happened", st.Steps)
	}
}

// f16 on the wire halves the bytes, q8 takes 27 % of them; both move the
// logits only a little (the figures are published in docs/cluster.md).
func TestLossyWire(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	ids := []int{1, 2, 3, 4, 5}
	want := localLogits(t, dir, ids)
	for _, tc := range []struct {
		dt    phalanxpb.DType
		limit float64
	}{{phalanxpb.DType_DTYPE_F16, 0.05}, {phalanxpb.DType_DTYPE_Q8, 0.25}} {
		c := startCluster(t, dir, []int{0, 2, 4}, tc.dt, 0)
		sess := c.sched.NewSession()
		got := make([]float32, len(want))
		if err := sess.Forward(context.Background(), ids, got); err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range want {
			worst = max(worst, float64(abs(got[i]-want[i])))
		}
		if worst > tc.limit || engine.Argmax(got) != engine.Argmax(want) {
			t.Errorf("%v wire: max logit deviation %.3g, argmax %d vs %d", tc.dt, worst, engine.Argmax(got), engine.Argmax(want))
		}
		t.Logf("%v wire: max logit deviation %.3g; %d wire bytes for %d tokens through 2 stages", tc.dt, worst, c.sched.Stats().WireBytes, len(ids))
		sess.Close()
		c.close()
	}
}

func abs(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

// Steps the stage must refuse come back as errors that change nothing.
func TestStageRejects(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	c := startCluster(t, dir, []int{0, 4}, phalanxpb.DType_DTYPE_F32, 100_000)
	defer c.close()
	cl := c.sched.Route().Stages[0].Client
	H := c.ends.Config.HiddenSize
	hidden := func(rows int) *phalanxpb.Tensor {
		tn, _ := wire.EncodeF32(rows, H, make([]float32, rows*H), phalanxpb.DType_DTYPE_F32)
		return tn
	}
	span := func(id string, pos, n int32) []*phalanxpb.SessionSpan {
		return []*phalanxpb.SessionSpan{{SessionId: id, Position: pos, Tokens: n}}
	}
	ok := func(r *phalanxpb.StageRequest) *phalanxpb.StageRequest {
		if r.Epoch == 0 {
			r.Epoch = 7
		}
		if r.LayerEnd == 0 {
			r.LayerEnd = 4
		}
		return r
	}
	for _, tc := range []struct {
		name string
		req  *phalanxpb.StageRequest
		code codes.Code
	}{
		{"wrong epoch", &phalanxpb.StageRequest{Epoch: 6, LayerEnd: 4, Spans: span("a", 0, 1), Hidden: hidden(1)}, codes.FailedPrecondition},
		{"wrong layers", ok(&phalanxpb.StageRequest{LayerStart: 1, Spans: span("a", 0, 1), Hidden: hidden(1)}), codes.FailedPrecondition},
		{"no spans", ok(&phalanxpb.StageRequest{Hidden: hidden(1)}), codes.InvalidArgument},
		{"rows mismatch", ok(&phalanxpb.StageRequest{Spans: span("a", 0, 2), Hidden: hidden(1)}), codes.InvalidArgument},
		{"negative tokens", ok(&phalanxpb.StageRequest{Spans: span("a", 0, -1), Hidden: hidden(1)}), codes.InvalidArgument},
		{"gap in positions", ok(&phalanxpb.StageRequest{Spans: span("a", 3, 1), Hidden: hidden(1)}), codes.FailedPrecondition},
		{"past the window", ok(&phalanxpb.StageRequest{Spans: span("a", 0, 300), Hidden: hidden(300)}), codes.OutOfRange},
		{"missing tensor", ok(&phalanxpb.StageRequest{Spans: span("a", 0, 1)}), codes.InvalidArgument},
		{"lying shape", ok(&phalanxpb.StageRequest{Spans: span("a", 0, 1), Hidden: &phalanxpb.Tensor{Dtype: phalanxpb.DType_DTYPE_F32, Shape: []int64{1, int64(H)}, Data: make([]byte, 7)}}), codes.InvalidArgument},
		{"huge shape", ok(&phalanxpb.StageRequest{Spans: span("a", 0, 1), Hidden: &phalanxpb.Tensor{Dtype: phalanxpb.DType_DTYPE_F32, Shape: []int64{1 << 40, int64(H)}}}), codes.InvalidArgument},
		{"bad dtype", ok(&phalanxpb.StageRequest{Spans: span("a", 0, 1), Hidden: &phalanxpb.Tensor{Dtype: 9, Shape: []int64{1, int64(H)}}}), codes.InvalidArgument},
		{"duplicate session", ok(&phalanxpb.StageRequest{Spans: append(span("a", 0, 1), span("a", 0, 1)...), Hidden: hidden(2)}), codes.InvalidArgument},
		{"empty session id", ok(&phalanxpb.StageRequest{Spans: span("", 0, 1), Hidden: hidden(1)}), codes.InvalidArgument},
		{"over budget", ok(&phalanxpb.StageRequest{Spans: span("big", 0, 250), Hidden: hidden(250)}), codes.ResourceExhausted},
	} {
		_, err := cl.Step(context.Background(), tc.req)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
	if n, b := c.servers[0].Stats(); n != 0 || b != 0 {
		t.Errorf("rejected steps left %d sessions, %d bytes", n, b)
	}
	// The stream survived all of that.
	if _, err := cl.Step(context.Background(), ok(&phalanxpb.StageRequest{StepId: 99, Spans: span("a", 0, 2), Hidden: hidden(2)})); err != nil {
		t.Fatal(err)
	}
	// Replay from 0 truncates instead of failing.
	if _, err := cl.Step(context.Background(), ok(&phalanxpb.StageRequest{StepId: 100, Spans: span("a", 0, 1), Hidden: hidden(1)})); err != nil {
		t.Fatal(err)
	}
}

// A stage that goes away with nothing to replace it fails the step with
// UNAVAILABLE once the re-plan wait is over.
func TestStageDownNoCapacity(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	c := startCluster(t, dir, []int{0, 2, 4}, phalanxpb.DType_DTYPE_F32, 0)
	defer c.close()
	c.stops[1]()
	sess := c.sched.NewSession()
	defer sess.Close()
	start := time.Now()
	err := sess.Forward(context.Background(), []int{1, 2}, make([]float32, c.ends.Config.VocabSize))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("dead stage: %v", err)
	}
	if d := time.Since(start); d < 2*time.Second || d > 10*time.Second {
		t.Errorf("gave up after %v, want the 2 s re-plan wait", d)
	}
}

// A stage lost mid-answer is replaced; the session's history is replayed
// into the new stage and the greedy answer is unchanged.
func TestReplayAfterStageLoss(t *testing.T) {
	for _, fx := range fixtures {
		dir := fixture(fx)
		cfg, _ := engine.LoadConfig(dir)
		L := cfg.NumLayers
		prompt := []int{3, 1, 4, 1, 5, 9, 2, 6}
		want := greedyLocal(t, dir, prompt, 16)
		c := startCluster(t, dir, []int{0, 1, L}, phalanxpb.DType_DTYPE_F32, 0)
		spare := startCluster(t, dir, []int{1, L}, phalanxpb.DType_DTYPE_F32, 0)
		g := textgen.ForConfig(cfg, nil)
		sess := c.sched.NewSession()
		n := 0
		res, err := g.Run(context.Background(), sess, textgen.Request{Tokens: prompt, MaxTokens: 16, IgnoreEOS: true}, func(textgen.Chunk) error {
			n++
			if n == 5 {
				c.stops[1]() // the second stage dies
				go failOver(c, spare, 200*time.Millisecond)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if res.Tokens[i] != want[i] {
				t.Fatalf("%s: after replay %v, want %v", fx, res.Tokens, want)
			}
		}
		sess.Close()
		spare.close()
		c.close()
	}
}

// TestWireQuality measures what a lossy wire costs on a real-size model
// (PHALANX_WIRE_QUALITY_MODEL, e.g. a synthesized Phi-2): the model split
// in two stages, a 64-token prompt, greedy decoding of 32 tokens with each
// wire, logits compared with the f32 wire's at every decoded position. It
// reports; it does not judge (the published figures come from it).
func TestWireQuality(t *testing.T) {
	dir := os.Getenv("PHALANX_WIRE_QUALITY_MODEL")
	if dir == "" {
		t.Skip("set PHALANX_WIRE_QUALITY_MODEL to a model to measure")
	}
	cfg, err := engine.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	L, V := cfg.NumLayers, cfg.VocabSize
	r := rand.New(rand.NewPCG(9, 9))
	prompt := make([]int, 64)
	for i := range prompt {
		prompt[i] = r.IntN(V)
	}
	const n = 32
	run := func(dt phalanxpb.DType) ([]int, [][]float32) {
		c := startClusterWith(t, dir, []int{0, L / 2, L}, stage.Config{}, Config{Wire: dt}, time.Minute)
		defer c.close()
		sess := c.sched.NewSession()
		defer sess.Close()
		var toks []int
		var all [][]float32
		ids := prompt
		for range n {
			l := make([]float32, V)
			if err := sess.Forward(context.Background(), ids, l); err != nil {
				t.Fatal(err)
			}
			all = append(all, l)
			next := engine.Argmax(l)
			toks = append(toks, next)
			ids = []int{next}
		}
		return toks, all
	}
	refToks, ref := run(phalanxpb.DType_DTYPE_F32)
	for _, dt := range []phalanxpb.DType{phalanxpb.DType_DTYPE_F16, phalanxpb.DType_DTYPE_Q8} {
		toks, got := run(dt)
		same, worst, sum := 0, 0.0, 0.0
		for i := range toks {
			if toks[i] == refToks[i] {
				same++
			}
		}
		// Logits are comparable while the histories agree.
		k := 0
		for k < len(toks) && toks[k] == refToks[k] {
			for j := range got[k] {
				d := float64(abs(got[k][j] - ref[k][j]))
				worst = max(worst, d)
				sum += d
			}
			k++
		}
		t.Logf("%v wire vs f32: greedy tokens equal %d/%d, first %d positions: max |Δlogit| %.4g, mean %.3g",
			dt, same, n, k, worst, sum/float64(max(k, 1)*V))
	}
}

// With a lossy wire, a replay after a stage loss still gives exactly the
// answer of a fault-free run over the same wire: each row is encoded on its
// own, whatever step it travels in.
func TestReplayExactOverLossyWire(t *testing.T) {
	dir := fixture("phi-tiny-f32")
	cfg, _ := engine.LoadConfig(dir)
	L := cfg.NumLayers
	prompt := []int{3, 1, 4, 1, 5, 9, 2, 6}
	g := textgen.ForConfig(cfg, nil)
	req := textgen.Request{Tokens: prompt, MaxTokens: 16, IgnoreEOS: true}
	for _, dt := range []phalanxpb.DType{phalanxpb.DType_DTYPE_F16, phalanxpb.DType_DTYPE_Q8} {
		clean := startCluster(t, dir, []int{0, 1, L}, dt, 0)
		sess := clean.sched.NewSession()
		want, err := g.Run(context.Background(), sess, req, func(textgen.Chunk) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		sess.Close()
		clean.close()

		c := startCluster(t, dir, []int{0, 1, L}, dt, 0)
		spare := startCluster(t, dir, []int{1, L}, dt, 0)
		sess = c.sched.NewSession()
		n := 0
		got, err := g.Run(context.Background(), sess, req, func(textgen.Chunk) error {
			if n++; n == 6 {
				c.stops[1]()
				go failOver(c, spare, 100*time.Millisecond)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Tokens, want.Tokens) {
			t.Errorf("%v wire: after replay %v, fault-free %v", dt, got.Tokens, want.Tokens)
		}
		sess.Close()
		spare.close()
		c.close()
	}
}
