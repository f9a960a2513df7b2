package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/ggufconv"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
)

var fixtures = []string{"phi-tiny-f32", "phi-tiny-bf16-sharded"}

func fixture(t testing.TB, name string) string {
	dir, err := filepath.Abs(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

type goldenCase struct {
	Name     string `json:"name"`
	InputIDs []int  `json:"input_ids"`
	Greedy   struct {
		Tokens []int `json:"tokens"`
	} `json:"greedy"`
}

func goldenCases(t testing.TB, dir string) []goldenCase {
	b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct{ Cases []goldenCase }
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g.Cases
}

func localModel(t testing.TB, dir string) *engine.Model {
	m, err := engine.Load(dir, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// stageLogits pushes ids through the cluster's real worker processes, stage
// by stage as the plan routes them, with the embedding and head computed
// here: the logits the coordinator would sample from.
func stageLogits(t *testing.T, c *cluster, ends *engine.Model, ids []int) []float32 {
	t.Helper()
	return stageLogitsKV(t, c, ends, ids, phalanxpb.DType_DTYPE_UNSPECIFIED)
}

// stageLogitsKV is stageLogits with the stages keeping the session's keys
// and values as kv.
func stageLogitsKV(t *testing.T, c *cluster, ends *engine.Model, ids []int, kv phalanxpb.DType) []float32 {
	t.Helper()
	st := c.status()
	H, V := ends.Config.HiddenSize, ends.Config.VocabSize
	x := make([]float32, len(ids)*H)
	if err := ends.Embed(ids, x); err != nil {
		t.Fatal(err)
	}
	session := fmt.Sprintf("probe-%d", time.Now().UnixNano())
	for _, s := range st.GetStages() {
		conn, err := grpc.NewClient(s.GetAddress(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		stream, err := phalanxpb.NewStageClient(conn).Process(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		hidden, _ := wire.EncodeF32(len(ids), H, x, phalanxpb.DType_DTYPE_F32)
		err = stream.Send(&phalanxpb.StageRequest{Epoch: st.GetEpoch(), LayerStart: s.GetLayerStart(), LayerEnd: s.GetLayerEnd(), StepId: 1,
			Spans: []*phalanxpb.SessionSpan{{SessionId: session, Position: 0, Tokens: int32(len(ids))}}, Hidden: hidden, KvDtype: kv})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || resp.GetErrorCode() != 0 {
			t.Fatalf("stage %s: %v %s", s.GetWorkerId(), err, resp.GetErrorMessage())
		}
		if x, _, err = wire.DecodeF32(resp.GetHidden(), H, len(ids), x); err != nil {
			t.Fatal(err)
		}
		stream.CloseSend()
		phalanxpb.NewStageClient(conn).Release(context.Background(), &phalanxpb.ReleaseRequest{SessionIds: []string{session}})
		conn.Close()
	}
	logits := make([]float32, V)
	if err := ends.Logits(x[(len(ids)-1)*H:], logits); err != nil {
		t.Fatal(err)
	}
	return logits
}

// One to four worker processes give the single-process engine's greedy
// tokens, and, with the f32 wire, bit-identical logits.
func TestClusterMatchesEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	for _, fx := range fixtures {
		dir := fixture(t, fx)
		cases := goldenCases(t, dir)
		local := localModel(t, dir)
		ends, err := engine.Load(dir, engine.Options{Embedding: true, Head: true, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer ends.Close()
		for n := 1; n <= 4; n++ {
			t.Run(fmt.Sprintf("%s/%d-workers", fx, n), func(t *testing.T) {
				c := startCluster(t, dir, clusterOpts{workers: n, workerArgs: []string{"--speed", "100"}})
				st := c.status()
				// Equal workers: the bottleneck is ceil(L/n) layers, reached
				// with the fewest stages (fewer hops).
				L := local.Config.NumLayers
				per := (L + n - 1) / n
				if want := (L + per - 1) / per; len(st.GetStages()) != want {
					t.Errorf("%d stages for %d equal workers and %d layers, want %d", len(st.GetStages()), n, L, want)
				}
				for _, gc := range cases {
					toks, _, last, err := c.generate(context.Background(), tokenRequest(gc.InputIDs, len(gc.Greedy.Tokens)))
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(toks, gc.Greedy.Tokens) {
						t.Errorf("%s: cluster %v, reference %v", gc.Name, toks, gc.Greedy.Tokens)
					}
					if last.GetFinishReason() != "length" || int(last.GetUsage().GetCompletionTokens()) != len(toks) {
						t.Errorf("%s: final message %v", gc.Name, last)
					}
					want := make([]float32, local.Config.VocabSize)
					x := make([]float32, len(gc.InputIDs)*local.Config.HiddenSize)
					local.Embed(gc.InputIDs, x)
					local.Forward(x, []engine.Span{{Cache: local.NewCache(), Tokens: len(gc.InputIDs)}})
					local.Logits(x[(len(gc.InputIDs)-1)*local.Config.HiddenSize:], want)
					got := stageLogits(t, c, ends, gc.InputIDs)
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%s: logit %d over the wire %v, in process %v (must be bit-identical)", gc.Name, i, got[i], want[i])
						}
					}
				}
			})
		}
	}
}

// Sixteen concurrent requests on three workers all get their own answer.
func TestClusterConcurrentRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	dir := fixture(t, "phi-tiny-f32")
	local := localModel(t, dir)
	c := startCluster(t, dir, clusterOpts{workers: 3})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			prompt := []int{i + 1, (7 * i) % 1000, 3, 500 + i}
			toks, _, _, err := c.generate(context.Background(), tokenRequest(prompt, 24))
			if err != nil {
				errs <- fmt.Errorf("request %d: %v", i, err)
				return
			}
			want, _ := engine.Greedy(local, prompt, 24)
			if !slices.Equal(toks, want) {
				errs <- fmt.Errorf("request %d: %v, want %v", i, toks, want)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A worker that joins leads to a new plan; requests in flight complete
// with unchanged answers.
func TestClusterWorkerJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	dir := fixture(t, "phi-tiny-f32")
	local := localModel(t, dir)
	c := startCluster(t, dir, clusterOpts{workers: 2, workerArgs: []string{"--speed", "100"}})
	epoch := c.status().GetEpoch()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	done := 0
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				prompt := []int{g + 1, i % 900, 42}
				toks, _, _, err := c.generate(context.Background(), tokenRequest(prompt, 40))
				want, _ := engine.Greedy(local, prompt, 40)
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else if !slices.Equal(toks, want) {
					failures = append(failures, fmt.Sprintf("%v: %v, want %v", prompt, toks, want))
				}
				done++
				mu.Unlock()
			}
		}(g)
	}
	time.Sleep(500 * time.Millisecond)
	c.addWorker("w3", "--speed", "10000") // much faster: the plan must change
	st := c.waitEpoch(epoch, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed or changed across the re-plan: %v", len(failures), done, failures[:min(3, len(failures))])
	}
	found := false
	for _, s := range st.GetStages() {
		found = found || s.GetWorkerId() == "w3"
	}
	if !found {
		t.Errorf("the new plan does not use the joining worker: %v", st.GetStages())
	}
	t.Logf("%d requests completed across the re-plan from epoch %d to %d", done, epoch, st.GetEpoch())
}

// A model the workers cannot hold is refused with how much memory is missing.
func TestClusterModelDoesNotFit(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	dir := fixture(t, "phi-tiny-f32")
	c := startCluster(t, dir, clusterOpts{workers: 0})
	c.addWorker("w1", "--memory", "1000000", "--speed", "100")
	c.addWorker("w2", "--memory", "1000000", "--speed", "100")
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		_, _, _, err = c.generate(context.Background(), tokenRequest([]int{1, 2}, 2))
		if err != nil && strings.Contains(err.Error(), "memory") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "more memory is needed") {
		t.Fatalf("error %v, want UNAVAILABLE saying how much more memory is needed", err)
	}
	if e := c.status().GetPlanExplanation(); !strings.Contains(e, "memory") {
		t.Errorf("status does not explain: %q", e)
	}
	t.Log(err)
}

// A worker killed mid-answer is replaced by re-planning onto the others;
// the answer completes unchanged.
func TestClusterWorkerKilledMidAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	dir := fixture(t, "phi-tiny-f32")
	local := localModel(t, dir)
	c := startCluster(t, dir, clusterOpts{workers: 3, workerArgs: []string{"--speed", "100"}})
	prompt := []int{9, 8, 7, 6, 5}
	want, _ := engine.Greedy(local, prompt, 200)
	stream, err := c.client.Generate(context.Background(), tokenRequest(prompt, 200))
	if err != nil {
		t.Fatal(err)
	}
	var toks []int
	var killedAt time.Time
	var gap time.Duration
	last := time.Now()
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d tokens: %v", len(toks), err)
		}
		if d := time.Since(last); !killedAt.IsZero() && d > gap {
			gap = d
		}
		last = time.Now()
		for _, tk := range msg.GetTokens() {
			toks = append(toks, int(tk))
		}
		if len(toks) >= 10 && killedAt.IsZero() {
			c.workers["w2"].kill()
			killedAt = time.Now()
		}
		if msg.GetDone() {
			break
		}
	}
	if !slices.Equal(toks, want) {
		t.Fatalf("after a kill -9: %v\nwant %v", toks, want)
	}
	t.Logf("worker killed after 10 tokens; longest pause %v (fault → next token)", gap.Round(time.Millisecond))
}

// With --kv-cache f16 the workers keep keys and values in F16: the stages
// give the in-process F16 cache's logits bit for bit, a whole answer is the
// in-process F16 answer (which parts from the float32 one at token 95 on
// this prompt) and stays so through a worker killed mid-answer and the
// replay that follows.
func TestClusterF16KVCache(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	dir := fixture(t, "phi-tiny-f32")
	local := localModel(t, dir)
	half, err := engine.Load(dir, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1, KVCache: kernels.F16})
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	prompt := []int{100, 200, 300, 400}
	want, _ := engine.Greedy(half, prompt, 200)
	if f32, _ := engine.Greedy(local, prompt, 200); slices.Equal(f32, want) {
		t.Fatal("the float32 and F16 answers are the same: the test could not tell them apart")
	}
	c := startCluster(t, dir, clusterOpts{workers: 3, workerArgs: []string{"--speed", "100"}, coordArgs: []string{"--kv-cache", "f16"}})

	wantLogits := make([]float32, half.Config.VocabSize)
	x := make([]float32, len(prompt)*half.Config.HiddenSize)
	half.Embed(prompt, x)
	half.Forward(x, []engine.Span{{Cache: half.NewCache(), Tokens: len(prompt)}})
	half.Logits(x[(len(prompt)-1)*half.Config.HiddenSize:], wantLogits)
	got := stageLogitsKV(t, c, half, prompt, phalanxpb.DType_DTYPE_F16)
	for i := range wantLogits {
		if got[i] != wantLogits[i] {
			t.Fatalf("logit %d: stages with an F16 cache %v, in process %v", i, got[i], wantLogits[i])
		}
	}

	stream, err := c.client.Generate(context.Background(), tokenRequest(prompt, 200))
	if err != nil {
		t.Fatal(err)
	}
	var toks []int
	killed := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d tokens: %v", len(toks), err)
		}
		for _, tk := range msg.GetTokens() {
			toks = append(toks, int(tk))
		}
		if len(toks) >= 10 && !killed {
			c.workers["w2"].kill()
			killed = true
		}
		if msg.GetDone() {
			break
		}
	}
	if !slices.Equal(toks, want) {
		t.Fatalf("F16 cache, worker killed after 10 tokens: %v\nwant %v", toks, want)
	}
	// Every worker said it keeps F16 caches (the label the coordinator
	// checks; an older worker would draw a warning), and the coordinator
	// logged the setting with each route.
	if w := logLines(t, c.coord, "keeps no F16 KV cache"); len(w) > 0 {
		t.Errorf("coordinator warned about workers of this version: %q", w)
	}
	if len(logLines(t, c.coord, `"kv_cache":"f16"`)) == 0 {
		t.Error("no route logged with kv_cache f16")
	}
}

// The cluster runs against a separate etcd (Debian's etcd-server) too.
func TestClusterExternalEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	etcdBin, err := lookPath("etcd")
	if err != nil {
		t.Skip("etcd-server is not installed (apt-get install etcd-server); .ci/run installs it")
	}
	binaries(t)
	dir := t.TempDir()
	client, peer := freeAddr(t), freeAddr(t)
	startProc(t, dir, "etcd", etcdBin, "--name", "t", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "t=http://"+peer)
	fx := fixture(t, "phi-tiny-bf16-sharded")
	c := startCluster(t, fx, clusterOpts{workers: 2, externalEtcd: client})
	for _, gc := range goldenCases(t, fx) {
		toks, _, _, err := c.generate(context.Background(), tokenRequest(gc.InputIDs, len(gc.Greedy.Tokens)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(toks, gc.Greedy.Tokens) {
			t.Errorf("%s: %v, want %v", gc.Name, toks, gc.Greedy.Tokens)
		}
	}
}

// The cluster serves a GGUF file as it serves a directory: coordinator and
// workers open it through the same door, each worker maps only its layers,
// and two workers give the greedy tokens of one process on the same file.
func TestClusterServesGGUF(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	dir := fixture(t, "phi-tiny-f32")
	for _, typ := range []ggufconv.FileType{ggufconv.MostlyQ8_0, ggufconv.MostlyQ4_0} {
		t.Run(typ.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "phi-tiny-"+typ.String()+".gguf")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ggufconv.Write(context.Background(), dir, f, ggufconv.Options{Type: typ}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			local, err := engine.LoadGGUF(path, engine.Options{Layers: engine.AllLayers, Embedding: true, Head: true, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer local.Close()
			c := startCluster(t, path, clusterOpts{workers: 2, workerArgs: []string{"--speed", "100"}})
			if st := c.status(); len(st.GetStages()) != 2 || !strings.HasPrefix(st.GetModel(), "phi-tiny-") {
				t.Fatalf("plan over the GGUF: %v", st)
			}
			for _, gc := range goldenCases(t, dir) {
				want, err := engine.Greedy(local, gc.InputIDs, len(gc.Greedy.Tokens))
				if err != nil {
					t.Fatal(err)
				}
				toks, _, _, err := c.generate(context.Background(), tokenRequest(gc.InputIDs, len(want)))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(toks, want) {
					t.Errorf("%s: cluster on %s %v, one process %v", gc.Name, typ, toks, want)
				}
			}
		})
	}
}
