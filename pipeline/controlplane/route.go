package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/pipeline/dataplane"
	"github.com/phalanx-llm/phalanx/pipeline/stage"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// probeNew starts probing every worker not yet verified: an Info call over
// the stage transport, retried every few seconds while the worker stays
// registered. A worker that cannot be reached — or, with mTLS, whose
// certificate the CA did not sign — is never given layers.
func (c *Coordinator) probeNew(ctx context.Context, ws []registry.WorkerRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	present := map[string]bool{}
	for _, w := range ws {
		key := w.ID + "@" + w.Address
		present[key] = true
		if c.reachable[key] || c.probing[key] {
			continue
		}
		cl, err := c.clientLocked(w.ID, w.Address)
		if err != nil {
			c.log.Warn("cannot dial a worker", "worker", w.ID, "address", w.Address, "err", err)
			continue
		}
		c.probing[key] = true
		c.pending[key] = true
		go c.probe(ctx, key, w.ID, cl)
	}
	for key := range c.reachable {
		if !present[key] {
			delete(c.reachable, key) // re-verified if it comes back
		}
	}
	for key := range c.pending {
		if !present[key] {
			delete(c.pending, key)
		}
	}
}

func (c *Coordinator) probe(ctx context.Context, key, id string, cl *stage.Client) {
	settled := func() {
		c.mu.Lock()
		wasPending := c.pending[key]
		delete(c.pending, key)
		c.mu.Unlock()
		if wasPending {
			select {
			case c.probed <- struct{}{}:
			default:
			}
		}
	}
	defer func() {
		c.mu.Lock()
		delete(c.probing, key)
		c.mu.Unlock()
		settled()
	}()
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, min(3*time.Second, c.cfg.ProbeInterval))
		info, err := cl.RPC().Info(pctx, &phalanxpb.InfoRequest{})
		cancel()
		if err == nil && info.GetWorkerId() == id {
			c.mu.Lock()
			c.reachable[key] = true
			c.mu.Unlock()
			select {
			case c.probed <- struct{}{}:
			default:
			}
			return
		}
		settled() // a failed first probe no longer holds planning back
		if err == nil {
			err = fmt.Errorf("it says it is %q", info.GetWorkerId())
		}
		if attempt == 0 || attempt%12 == 0 {
			c.log.Warn("worker not usable: not planned until it answers", "worker", id, "address", cl.Address, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.cfg.ProbeInterval):
		}
		c.mu.Lock()
		still := false
		for _, w := range c.workers {
			still = still || w.ID+"@"+w.Address == key
		}
		c.mu.Unlock()
		if !still {
			return
		}
	}
}

func sameAddresses(a, b shard.Plan) bool {
	for i := range a.Stages {
		if a.Stages[i].Address != b.Stages[i].Address {
			return false
		}
	}
	return true
}

// updateRoute switches the scheduler to the current plan once every stage
// reports ready for its epoch.
func (c *Coordinator) updateRoute() {
	c.mu.Lock()
	defer c.mu.Unlock()
	plan := c.plan
	if plan.Epoch == 0 {
		return
	}
	if r := c.sched.Route(); r != nil && r.Epoch == plan.Epoch {
		return
	}
	byID := map[string]registry.WorkerRecord{}
	for _, w := range c.workers {
		byID[w.ID] = w
	}
	for _, st := range plan.Stages {
		w, ok := byID[st.WorkerID]
		if !ok || w.ReadyEpoch != plan.Epoch || w.Layers != [2]int{st.Start, st.End} {
			return // not ready yet; the next worker update retries
		}
	}
	route := &dataplane.Route{Epoch: plan.Epoch, Parallel: parallelStages(plan.Stages, byID)}
	for _, st := range plan.Stages {
		cl, err := c.clientLocked(st.WorkerID, st.Address)
		if err != nil {
			c.log.Error("cannot connect to a stage", "worker", st.WorkerID, "address", st.Address, "err", err)
			return
		}
		route.Stages = append(route.Stages, dataplane.RouteStage{WorkerID: st.WorkerID, Layers: engine.LayerRange{Start: st.Start, End: st.End}, Client: cl})
		if c.cfg.KVCache == phalanxpb.DType_DTYPE_F16 && !slices.Contains(strings.Split(byID[st.WorkerID].Labels[LabelKVCache], ","), "f16") {
			// An older worker ignores kv_dtype: its layers keep float32,
			// and a session replayed onto another worker after a failure
			// would not be computed alike.
			c.log.Warn("worker keeps no F16 KV cache (an older version): its layers keep float32 keys and values, so a replayed answer may differ",
				"worker", st.WorkerID, "version", byID[st.WorkerID].Version)
		}
		if n, err := strconv.Atoi(byID[st.WorkerID].Labels[LabelMaxStepRows]); err == nil && n > 0 &&
			(route.MaxStepRows == 0 || n < route.MaxStepRows) {
			route.MaxStepRows = n
		}
	}
	c.sched.SetRoute(route)
	limit := c.cfg.MaxSessions
	if limit <= 0 {
		kvBytes := 4
		if c.cfg.KVCache == phalanxpb.DType_DTYPE_F16 {
			kvBytes = 2
		}
		limit = AutoMaxSessions(plan, byID, c.size, c.ends.Config.KVDim(), kvBytes)
		c.admit.SetLimit(limit)
	}
	c.log.Info("routing to the new plan", "epoch", plan.Epoch, "stages", len(route.Stages), "max_sessions", limit, "kv_cache", wire.Name(c.cfg.KVCache),
		"max_step_rows", route.MaxStepRows, "parallel_stages", route.Parallel)
}

// parallelStages is how many stages of a plan can compute at the same time,
// which is how many micro-batches keep it busy: every stage on a machine of
// its own, and of the stages that share a machine as many as their workers'
// kernel threads fit its CPUs — two 1-thread workers on a 2-CPU machine
// both, two workers that each use every CPU one (a second micro-batch would
// only make them take turns, and read every weight twice for it). A worker
// that does not publish its CPUs and threads counts as using all of them.
// 0 when a worker does not name its machine (unknown: one per stage).
func parallelStages(stages []shard.Stage, workers map[string]registry.WorkerRecord) int {
	type machine struct{ stages, cpus, threads int }
	machines := map[string]*machine{}
	for _, st := range stages {
		labels := workers[st.WorkerID].Labels
		name := labels[LabelHost]
		if name == "" {
			return 0
		}
		m := machines[name]
		if m == nil {
			m = &machine{}
			machines[name] = m
		}
		m.stages++
		cpus, _ := strconv.Atoi(labels[LabelCPUs])
		threads, _ := strconv.Atoi(labels[LabelThreads])
		if cpus <= 0 || threads <= 0 {
			cpus, threads = 1, 1<<20 // all of the machine, whatever it has
		}
		m.cpus = max(m.cpus, cpus)
		m.threads = max(m.threads, threads)
	}
	n := 0
	for _, m := range machines {
		n += min(m.stages, max(1, m.cpus/m.threads))
	}
	return n
}

func (c *Coordinator) clientLocked(id, addr string) (*stage.Client, error) {
	key := id + "@" + addr
	if cl := c.clients[key]; cl != nil {
		return cl, nil
	}
	conn := c.conns[addr]
	if conn == nil {
		opts := append([]grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(stage.MaxMessageBytes), grpc.MaxCallSendMsgSize(stage.MaxMessageBytes)),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
		}, c.cfg.DialOptions...) // later options (TLS credentials) override
		var err error
		if conn, err = grpc.NewClient(addr, opts...); err != nil {
			return nil, err
		}
		c.conns[addr] = conn
	}
	cl := stage.NewClient(addr, conn, c.cfg.StageTimeout)
	c.clients[key] = cl
	return cl, nil
}
