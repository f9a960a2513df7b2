package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/phalanx-llm/phalanx/shard"
)

// Foreign writes to the plan key — garbage, a deletion, a plan for another
// model, a valid plan that drops a worker — are undone by the leader: it
// restores its own plan under a higher epoch within seconds, workers load
// it again, greedy answers do not change, and /readyz is 503 whenever the
// workers do not hold the leader's plan.
func TestForeignPlanWriteIsReconciled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	dir := fixture(t, "phi-tiny-f32")
	httpAddr := freeAddr(t)
	c := startCluster(t, dir, clusterOpts{workers: 2, coordArgs: []string{"--http", httpAddr}, workerArgs: []string{"--speed", "100"}})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.etcd}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	key := "/phalanx/" + c.name + "/plan"
	stored := func() (shard.Plan, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return shard.Plan{}, err
		}
		if len(resp.Kvs) == 0 {
			return shard.Plan{}, fmt.Errorf("no plan stored")
		}
		var p shard.Plan
		if err := json.Unmarshal(resp.Kvs[0].Value, &p); err != nil {
			return shard.Plan{}, err
		}
		return p, p.Validate()
	}
	leaders, err := stored()
	if err != nil {
		t.Fatal(err)
	}
	if len(leaders.Stages) != 2 {
		t.Fatalf("the plan has %d stages, want 2", len(leaders.Stages))
	}
	c.waitEpoch(leaders.Epoch-1, 30*time.Second)
	req := tokenRequest([]int{7, 3, 11, 2, 5, 9}, 16)
	want, _, _, err := c.generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}

	// /readyz polled every 10 ms for the whole test.
	var (
		mu       sync.Mutex
		notReady []string // "scenario: status body"
		scenario string
	)
	pollCtx, stopPoll := context.WithCancel(context.Background())
	var pollDone sync.WaitGroup
	pollDone.Go(func() {
		hc := &http.Client{Timeout: 2 * time.Second}
		for pollCtx.Err() == nil {
			resp, err := hc.Get("http://" + httpAddr + "/readyz")
			if err == nil {
				var b [256]byte
				n, _ := resp.Body.Read(b[:])
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					mu.Lock()
					notReady = append(notReady, fmt.Sprintf("%s: %d %s", scenario, resp.StatusCode, strings.TrimSpace(string(b[:n]))))
					mu.Unlock()
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	defer func() { stopPoll(); pollDone.Wait() }()

	foreign := leaders
	foreign.Epoch += 5
	foreign.Stages = []shard.Stage{{WorkerID: leaders.Stages[1].WorkerID, Address: leaders.Stages[1].Address, Start: 0, End: leaders.NumLayers}}
	dropsAWorker, _ := json.Marshal(foreign)
	other := leaders
	other.Epoch += 9
	other.Model = "another-model@0"
	otherModel, _ := json.Marshal(other)
	for _, sc := range []struct {
		name  string
		write func(ctx context.Context) error
	}{
		{"garbage", func(ctx context.Context) error { _, err := cli.Put(ctx, key, "{this is not a plan"); return err }},
		{"no stages", func(ctx context.Context) error {
			_, err := cli.Put(ctx, key, fmt.Sprintf(`{"epoch":%d,"model":%q,"num_layers":%d}`, leaders.Epoch+20, leaders.Model, leaders.NumLayers))
			return err
		}},
		{"deleted", func(ctx context.Context) error { _, err := cli.Delete(ctx, key); return err }},
		{"another model", func(ctx context.Context) error { _, err := cli.Put(ctx, key, string(otherModel)); return err }},
		{"drops a worker", func(ctx context.Context) error { _, err := cli.Put(ctx, key, string(dropsAWorker)); return err }},
	} {
		before, err := stored()
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		scenario = sc.name
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		err = sc.write(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var restored shard.Plan
		pollUntil(t, 10*time.Second, sc.name+": the leader's plan restored", func() error {
			p, err := stored()
			if err != nil {
				return err
			}
			if p.Epoch <= before.Epoch || p.Model != leaders.Model || !slices.Equal(p.Stages, leaders.Stages) {
				return fmt.Errorf("stored epoch %d model %q stages %v", p.Epoch, p.Model, p.Stages)
			}
			restored = p
			return nil
		})
		storedAt := time.Since(start)
		st := c.waitEpoch(restored.Epoch-1, 10*time.Second)
		routedAt := time.Since(start)
		pollUntil(t, 10*time.Second, sc.name+": readyz", func() error {
			resp, err := http.Get("http://" + httpAddr + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("readyz %d", resp.StatusCode)
			}
			return nil
		})
		readyAt := time.Since(start)
		got, _, _, err := c.generate(context.Background(), req)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: after the restore: %v %v, want %v", sc.name, err, got, want)
		}
		mu.Lock()
		var seen []string
		for _, s := range notReady {
			if strings.HasPrefix(s, sc.name+":") {
				seen = append(seen, s)
			}
		}
		mu.Unlock()
		t.Logf("%s: plan restored as epoch %d (was %d) after %v, routed after %v, readyz 200 after %v; readyz not ready %d times (%d ms polls)%s",
			sc.name, st.GetEpoch(), before.Epoch, storedAt.Round(time.Millisecond), routedAt.Round(time.Millisecond),
			readyAt.Round(time.Millisecond), len(seen), 10, firstOf(seen))
	}
	log, _ := os.ReadFile(c.coord.log)
	for _, s := range []string{"the plan was deleted", "is not a usable plan", "another-model@0", "replaced epoch"} {
		if !strings.Contains(string(log), s) {
			t.Errorf("the leader's log does not say %q", s)
		}
	}
	// A worker reads only the latest plan when several came while it was
	// busy (WatchPlan), so it may never see the plan with no stages, which
	// the leader replaces within milliseconds; if it saw it, ignoring it is
	// the only thing it may have done with it.
	invalid := fmt.Sprintf(`"epoch":%d,`, leaders.Epoch+20)
	for _, st := range leaders.Stages {
		wlog, _ := os.ReadFile(c.workers[st.WorkerID].log)
		saw := false
		for _, line := range strings.Split(string(wlog), "\n") {
			if !strings.Contains(line, invalid) {
				continue
			}
			saw = true
			if !strings.Contains(line, "ignoring an invalid plan") {
				t.Errorf("%s acted on the plan with no stages: %s", st.WorkerID, line)
			}
		}
		t.Logf("%s saw the plan with no stages: %v", st.WorkerID, saw)
	}
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return "; first: " + s[0]
}

// pollUntil is eventuallyOK polling every 5 ms, for measuring.
func pollUntil(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	pollEvery(t, 5*time.Millisecond, d, what, f)
}

// Workers that share a machine publish their kernel threads and its CPUs,
// and the coordinator keeps as many micro-batches in flight as their
// threads fit the CPUs: two 1-thread workers on a machine of two CPUs or
// more compute at once (two micro-batches), two workers on every CPU take
// turns (one). Either way concurrent greedy answers are the ones given one
// at a time.
func TestMicroBatchesFollowThreads(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	dir := fixture(t, "phi-tiny-f32")
	cpus := runtime.NumCPU()
	for _, tc := range []struct {
		threads int
		want    int
	}{{1, min(2, cpus)}, {cpus, 1}} {
		t.Run(fmt.Sprint("threads=", tc.threads), func(t *testing.T) {
			c := startCluster(t, dir, clusterOpts{workers: 0, coordArgs: []string{"--min-workers", "2"}})
			for i := range 2 {
				c.addWorker(fmt.Sprint("w", i+1), "--speed", "100", "--threads", fmt.Sprint(tc.threads), "--host-id", "one-machine")
			}
			c.waitReady(2 * time.Minute)
			routed := logLines(t, c.coord, "routing to the new plan")
			if len(routed) == 0 {
				t.Fatal("the coordinator logged no route")
			}
			if got := routed[len(routed)-1]["parallel_stages"]; got != float64(tc.want) {
				t.Fatalf("parallel_stages = %v for 2 workers of %d threads on %d CPUs, want %d", got, tc.threads, cpus, tc.want)
			}
			if got := c.status().GetMicroBatches(); got != int32(tc.want) {
				t.Fatalf("ClusterStatus says %d micro-batches in flight, want %d", got, tc.want)
			}
			const sessions, tokens = 8, 12
			alone := make([][]int, sessions)
			for i := range sessions {
				toks, _, _, err := c.generate(context.Background(), tokenRequest([]int{i + 3, 11, 5}, tokens))
				if err != nil {
					t.Fatal(err)
				}
				alone[i] = toks
			}
			var wg sync.WaitGroup
			for i := range sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					toks, _, _, err := c.generate(context.Background(), tokenRequest([]int{i + 3, 11, 5}, tokens))
					if err != nil {
						t.Error(err)
						return
					}
					if !slices.Equal(toks, alone[i]) {
						t.Errorf("session %d: %v together, %v alone", i, toks, alone[i])
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestCalibratedSpeedsShareAMachine: two workers on one machine that time
// their own layer at start (started together, so each measures the other's
// load as well) plan with one speed, the fastest either measured
// (TestSameMachineSpeeds covers other machines, threads and given speeds).
func TestCalibratedSpeedsShareAMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	c := startCluster(t, fixture(t, "phi-tiny-f32"), clusterOpts{workers: 0, coordArgs: []string{"--min-workers", "2"}})
	c.addWorker("w1", "--host-id", "one-machine")
	c.addWorker("w2", "--host-id", "one-machine")
	c.waitReady(2 * time.Minute)
	published := logLines(t, c.coord, "published a new plan")
	if len(published) == 0 {
		t.Fatal("the coordinator published no plan")
	}
	explanation, _ := published[len(published)-1]["explanation"].(string)
	speeds := map[string]string{}
	for _, m := range regexp.MustCompile(`stage \d+: (w\d) layers \[\d+,\d+\) = \d+; speed (\S+) layer-steps/s`).FindAllStringSubmatch(explanation, -1) {
		speeds[m[1]] = m[2]
	}
	registered := map[string]any{}
	for _, w := range []string{"w1", "w2"} {
		lines := logLines(t, c.workers[w], "worker registering")
		if len(lines) == 0 {
			t.Fatalf("%s logged no registration", w)
		}
		registered[w] = lines[0]["speed_layer_steps_per_s"]
	}
	t.Logf("calibrated %v; planned with %v", registered, speeds)
	if speeds["w1"] == "" || speeds["w2"] == "" {
		t.Fatalf("the plan does not give both w1 and w2 a stage:\n%s", explanation)
	}
	if speeds["w1"] != speeds["w2"] {
		t.Errorf("two workers on one machine with the same threads were planned at speeds %s and %s:\n%s", speeds["w1"], speeds["w2"], explanation)
	}
}
