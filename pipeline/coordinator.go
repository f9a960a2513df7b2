package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// CoordinatorConfig configures a coordinator.
type CoordinatorConfig struct {
	ID string
	// Model is a Hugging Face model directory or a GGUF file.
	Model      string
	Cluster    string
	Etcd       *clientv3.Client
	MinWorkers int
	Threads    int
	Wire       phalanxpb.DType
	// StageTimeout bounds one step on one stage; a worker silent for longer
	// counts as failed. Default 30 s.
	StageTimeout time.Duration
	// ReplanTimeout bounds how long a request waits for a working pipeline.
	ReplanTimeout time.Duration
	// KVReservePerLayer is the memory the planner reserves, per layer a
	// worker holds, for KV caches. Default: one full-context session.
	KVReservePerLayer uint64
	// FixedBytes is each worker's overhead the planner assumes. Default 256 MiB.
	FixedBytes uint64
	// MaxSessions bounds the generations running at once; 0 derives it
	// from the workers' KV cache budgets (see AutoMaxSessions).
	MaxSessions int
	// MaxQueue bounds the requests waiting for a session; past it they are
	// refused at once. Default 2 × MaxSessions (64 while derived).
	MaxQueue int
	// QueueTimeout bounds a request's wait for a session. Default 30 s.
	QueueTimeout time.Duration
	// PrefillChunk bounds the prompt tokens of one session in one step;
	// default 512.
	PrefillChunk int
	// MicroBatches caps the micro-batches in flight; 0 means one per stage
	// on a machine of its own.
	MicroBatches int
	// DialOptions for stage connections (TLS credentials, stats handlers);
	// plaintext unless they set transport credentials.
	DialOptions []grpc.DialOption
	Logger      *slog.Logger
}

// Coordinator leads the cluster (when elected): it plans the layers over the
// workers, publishes the plan, routes steps to ready stages, and serves the
// Inference API.
type Coordinator struct {
	cfg     CoordinatorConfig
	log     *slog.Logger
	ends    *engine.Model
	tok     *tokenizer.Tokenizer
	gen     *textgen.Generator
	sched   *Scheduler
	admit   *Admission
	modelID string
	size    shard.ModelSize

	metrics *CoordinatorMetrics // nil without NewCoordinatorMetrics
	probed  chan struct{}       // a worker passed its first probe

	mu      sync.Mutex
	leading bool
	plan    shard.Plan
	planErr error

	// planSuspect: the stored plan may not be the leader's (a publish
	// failed, a restore failed); lead reconciles until it is.
	planSuspect bool

	workers []registry.WorkerRecord
	conns   map[string]*grpc.ClientConn // by address
	clients map[string]*StageClient     // by worker id + address
	// reachable marks workers (id@address) that answered Info over the
	// configured transport (with mTLS: that presented a certificate the CA
	// signed); only they are planned.
	reachable map[string]bool
	probing   map[string]bool
	// pending marks workers whose first probe has not finished: planning
	// waits for them (a few seconds at most), so a new leader does not
	// re-plan around workers it simply has not reached yet.
	pending  map[string]bool
	started  time.Time
	tokStats struct {
		at     time.Time
		tokens uint64
		rate   float64
	}
}

// NewCoordinator loads the embedding, head and tokenizer of the model.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FixedBytes == 0 {
		cfg.FixedBytes = 256 << 20
	}
	mf, err := engine.Open(cfg.Model)
	if err != nil {
		return nil, err
	}
	mcfg := mf.Config
	if cfg.KVReservePerLayer == 0 {
		cfg.KVReservePerLayer = uint64(mcfg.MaxPositionEmbeddings) * uint64(mcfg.KVDim()) * 2 * 4
	}
	modelID, layerBytes := mf.ID, mf.MaxLayerBytes()
	ends, err := mf.Load(engine.Options{Embedding: true, Head: true, Threads: cfg.Threads})
	if err != nil {
		return nil, err
	}
	tok, err := mf.Tokenizer()
	if err != nil {
		cfg.Logger.Warn("the model's tokenizer cannot be read: only token-id requests will work", "err", err)
		tok = nil
	} else if tok == nil {
		cfg.Logger.Warn("the model ships no tokenizer: only token-id requests will work")
	}
	c := &Coordinator{
		cfg: cfg, log: cfg.Logger, ends: ends, tok: tok, modelID: modelID,
		gen:       textgen.ForConfig(mcfg, tok),
		size:      shard.ModelSize{NumLayers: mcfg.NumLayers, LayerBytes: layerBytes, KVBytesPerLayer: cfg.KVReservePerLayer, FixedBytes: cfg.FixedBytes},
		conns:     map[string]*grpc.ClientConn{},
		clients:   map[string]*StageClient{},
		reachable: map[string]bool{},
		probing:   map[string]bool{},
		pending:   map[string]bool{},
		probed:    make(chan struct{}, 1),
		started:   time.Now(),
	}
	c.sched = NewScheduler(ends, SchedulerConfig{Wire: cfg.Wire, ReplanTimeout: cfg.ReplanTimeout, Logger: cfg.Logger,
		CapacityGone: c.capacityGone, PrefillChunk: cfg.PrefillChunk, InFlight: cfg.MicroBatches})
	limit, queue := cfg.MaxSessions, cfg.MaxQueue
	if limit <= 0 {
		limit = defaultMaxSessions
	}
	if queue <= 0 {
		queue = 2 * limit
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = 30 * time.Second
		c.cfg.QueueTimeout = cfg.QueueTimeout
	}
	c.admit = NewAdmission(limit, queue, cfg.QueueTimeout)
	return c, nil
}

// ModelID is the identity of the served model.
func (c *Coordinator) ModelID() string { return c.modelID }

// Close stops the scheduler and closes connections.
func (c *Coordinator) Close() {
	c.sched.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		cl.Close()
	}
	for _, conn := range c.conns {
		conn.Close()
	}
	c.ends.Close()
}

// Leading reports whether this coordinator leads the cluster.
func (c *Coordinator) Leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

// Ready reports whether requests can be routed now.
func (c *Coordinator) Ready() bool { return c.Readiness() == nil }

// Readiness says why requests cannot be routed now, nil when they can: this
// coordinator leads, routes to the plan it published, and every stage of
// that plan reports it holds its layers for the plan's epoch. A stage that
// left the plan (it followed a plan the leader did not write, say) makes
// the coordinator unready until the plan is restored and loaded again.
func (c *Coordinator) Readiness() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.leading {
		return errors.New("standing by: another coordinator leads")
	}
	plan, route := c.plan, c.sched.Route()
	switch {
	case route == nil && c.planErr != nil:
		return fmt.Errorf("no route: %w", c.planErr)
	case route == nil:
		return errors.New("no route yet: waiting for workers to load the plan")
	case route.Epoch != plan.Epoch:
		return fmt.Errorf("routing plan epoch %d, the plan is epoch %d: waiting for its stages", route.Epoch, plan.Epoch)
	}
	byID := map[string]registry.WorkerRecord{}
	for _, w := range c.workers {
		byID[w.ID] = w
	}
	for _, st := range plan.Stages {
		w, ok := byID[st.WorkerID]
		switch {
		case !ok:
			return fmt.Errorf("stage %s [%d,%d) is not registered", st.WorkerID, st.Start, st.End)
		case w.ReadyEpoch != plan.Epoch || w.Layers != [2]int{st.Start, st.End}:
			return fmt.Errorf("stage %s holds layers [%d,%d) for epoch %d, the plan wants [%d,%d) for epoch %d",
				st.WorkerID, w.Layers[0], w.Layers[1], w.ReadyEpoch, st.Start, st.End, plan.Epoch)
		}
	}
	return nil
}

// Run campaigns for leadership and leads while elected, until ctx ends.
func (c *Coordinator) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		c.log.Info("campaigning for leadership", "id", c.cfg.ID, "cluster", c.cfg.Cluster)
		lead, err := registry.Campaign(ctx, c.cfg.Etcd, c.cfg.Cluster, c.cfg.ID, registry.WithSessionTTL(5*time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("campaign failed; retrying", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		c.log.Info("leading the cluster", "id", c.cfg.ID)
		c.lead(ctx, lead)
		c.mu.Lock()
		c.leading = false
		c.mu.Unlock()
		c.sched.SetRoute(nil)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lead.Resign(rctx)
		cancel()
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (c *Coordinator) lead(ctx context.Context, lead *registry.Leadership) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	plan, err := registry.LoadPlan(ctx, c.cfg.Etcd, c.cfg.Cluster)
	if err != nil && !errors.Is(err, registry.ErrNoPlan) {
		c.log.Warn("cannot read the stored plan", "err", err)
	}
	c.mu.Lock()
	c.leading = true
	c.plan = plan
	c.mu.Unlock()
	if plan.Epoch > 0 {
		c.log.Info("recovered the plan from etcd", "epoch", plan.Epoch, "stages", len(plan.Stages))
	}
	workers, err := registry.WatchWorkers(ctx, c.cfg.Etcd, c.cfg.Cluster)
	if err != nil {
		c.log.Error("cannot watch workers", "err", err)
		return
	}
	stored, err := registry.WatchStoredPlan(ctx, c.cfg.Etcd, c.cfg.Cluster)
	if err != nil {
		c.log.Error("cannot watch the plan", "err", err)
		return
	}
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lead.Done():
			c.log.Warn("lost leadership")
			return
		case sp := <-stored:
			c.mu.Lock()
			own := c.plan
			c.mu.Unlock()
			if sp.Present && sp.Err == nil && sp.Plan.Epoch == own.Epoch && sp.Plan.SameAssignment(own) {
				continue // the leader's own plan
			}
			c.reconcile(ctx, lead)
			c.replan(ctx, lead)
			c.updateRoute()
		case <-retry.C:
			c.mu.Lock()
			suspect := c.planSuspect
			c.mu.Unlock()
			if suspect {
				c.reconcile(ctx, lead)
				c.replan(ctx, lead)
				c.updateRoute()
			}
		case ws := <-workers:
			c.mu.Lock()
			c.workers = ws
			c.mu.Unlock()
			c.probeNew(ctx, ws)
			c.replan(ctx, lead)
			c.updateRoute()
		case <-c.probed:
			c.replan(ctx, lead)
			c.updateRoute()
		}
	}
}

// replan computes the plan for the current workers and publishes it when
// the assignment changes.
func (c *Coordinator) replan(ctx context.Context, lead *registry.Leadership) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		c.mu.Unlock()
		return // first probes still running; they trigger a re-plan when done
	}
	cur := c.plan
	var infos []shard.WorkerInfo
	for _, w := range c.workers {
		if w.Labels["model"] != c.modelID || !c.reachable[w.ID+"@"+w.Address] {
			continue // another model, or not (yet) verified over the wire
		}
		infos = append(infos, w.WorkerInfo)
	}
	c.mu.Unlock()
	// --min-workers holds back the first plan until enough workers joined;
	// once serving, losing workers re-plans onto whoever remains.
	opts := shard.PlanOptions{MinWorkers: max(c.cfg.MinWorkers, 1), Model: c.modelID, Now: time.Now()}
	if cur.Epoch > 0 {
		opts.PreferStable = &cur
		opts.MinWorkers = 1
	}
	next, err := shard.MakePlan(c.size, infos, opts)
	if err != nil {
		c.mu.Lock()
		changed := c.planErr == nil || c.planErr.Error() != err.Error()
		c.planErr = err
		c.mu.Unlock()
		switch {
		case !changed:
		case cur.Epoch == 0 && errors.Is(err, shard.ErrNotEnoughWorkers):
			// Start-up, waiting for --min-workers: expected, not an error.
			c.log.Info("waiting for workers before the first plan", "workers", len(infos), "min_workers", opts.MinWorkers)
		default:
			c.log.Error("cannot plan the model over the workers", "workers", len(infos), "err", err)
		}
		return
	}
	c.mu.Lock()
	c.planErr = nil
	c.mu.Unlock()
	if cur.Epoch > 0 && next.SameAssignment(cur) && sameAddresses(next, cur) {
		return
	}
	next.Epoch = cur.Epoch + 1
	if mix := kernelMix(next, infos); mix != "" {
		next.Explanation += "\n" + mix
		c.log.Warn("workers run different kernel sets", "sets", mix)
	}
	if err := lead.PublishPlan(ctx, next, cur.Epoch); err != nil {
		// Publishing is fenced by the leadership, so no other leader wrote
		// what is stored: it is not adopted but reconciled (lead retries).
		c.log.Error("cannot publish the plan", "epoch", next.Epoch, "err", err)
		c.mu.Lock()
		c.planSuspect = true
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.plan = next
	c.mu.Unlock()
	c.log.Info("published a new plan", "epoch", next.Epoch, "stages", len(next.Stages), "explanation", next.Explanation)
}

// reconcile makes the stored plan the leader's. A plan it did not write —
// a foreign write, garbage, a deletion — is replaced by the leader's own
// under an epoch past both, so workers that followed the foreign one
// reload what the leader intends. Before the leader has a plan of its own,
// a usable stored plan is recovered (as at the start of the leadership)
// and anything else is cleared so the first plan can be published.
func (c *Coordinator) reconcile(ctx context.Context, lead *registry.Leadership) {
	err := c.reconcileOnce(ctx, lead)
	c.mu.Lock()
	c.planSuspect = err != nil
	c.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		c.log.Error("cannot restore the leader's plan; retrying", "err", err)
	}
}

func (c *Coordinator) reconcileOnce(ctx context.Context, lead *registry.Leadership) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stored, err := registry.ReadPlan(rctx, c.cfg.Etcd, c.cfg.Cluster)
	if err != nil {
		return err
	}
	c.mu.Lock()
	own := c.plan
	c.mu.Unlock()
	if stored.Present && stored.Err == nil && stored.Plan.Epoch == own.Epoch && stored.Plan.SameAssignment(own) {
		return nil
	}
	if own.Epoch == 0 {
		switch {
		case !stored.Present:
			return nil
		case stored.Err == nil && stored.Plan.Model == c.modelID:
			c.mu.Lock()
			c.plan = stored.Plan
			c.mu.Unlock()
			c.log.Info("recovered the plan from etcd", "epoch", stored.Plan.Epoch, "stages", len(stored.Plan.Stages))
			return nil
		}
		c.log.Warn("the stored plan is not usable: clearing it", "change", planChange(own, stored))
		return lead.ClearPlan(rctx, stored.ModRevision)
	}
	next := own
	next.Epoch = max(own.Epoch, stored.Plan.Epoch) + 1
	if err := lead.RestorePlan(rctx, next, stored.ModRevision); err != nil {
		return err
	}
	c.mu.Lock()
	c.plan = next
	c.mu.Unlock()
	c.log.Warn("the stored plan was not the leader's: restored the leader's plan under a new epoch",
		"change", planChange(own, stored), "epoch", next.Epoch)
	return nil
}

// planChange says how the stored plan differs from the leader's.
func planChange(own shard.Plan, stored registry.StoredPlan) string {
	switch {
	case !stored.Present:
		return "the plan was deleted"
	case stored.Err != nil:
		return "the stored value is not a usable plan: " + stored.Err.Error()
	case stored.Plan.Model != own.Model:
		return fmt.Sprintf("the stored plan is for model %q, the leader serves %q (epoch %d)", stored.Plan.Model, own.Model, stored.Plan.Epoch)
	}
	return fmt.Sprintf("epoch %d %s replaced epoch %d %s", stored.Plan.Epoch, stageList(stored.Plan), own.Epoch, stageList(own))
}

func stageList(p shard.Plan) string {
	parts := make([]string, len(p.Stages))
	for i, st := range p.Stages {
		parts[i] = fmt.Sprintf("%s[%d,%d)@%s", st.WorkerID, st.Start, st.End, st.Address)
	}
	return "(" + strings.Join(parts, " ") + ")"
}

// kernelMix says which kernel sets the plan's workers run, when they do not
// all run the same one: each set sums in its own order, so a replay on a
// worker of another set rebuilds a KV cache that differs in its last bits,
// and the continued answer may differ from the one the lost worker would
// have given. Empty when the sets agree (or workers do not say).
func kernelMix(p shard.Plan, infos []shard.WorkerInfo) string {
	inPlan := map[string]bool{}
	for _, st := range p.Stages {
		inPlan[st.WorkerID] = true
	}
	bySet := map[string][]string{}
	for _, w := range infos {
		if k := w.Labels["kernels"]; k != "" && inPlan[w.ID] {
			bySet[k] = append(bySet[k], w.ID)
		}
	}
	if len(bySet) < 2 {
		return ""
	}
	sets := make([]string, 0, len(bySet))
	for k, ids := range bySet {
		sort.Strings(ids)
		sets = append(sets, fmt.Sprintf("%s: %s", k, strings.Join(ids, ", ")))
	}
	sort.Strings(sets)
	return "note: workers run different kernel sets (" + strings.Join(sets, "; ") +
		"); a replay after a failure may continue an answer differently in rare close calls"
}

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

func (c *Coordinator) probe(ctx context.Context, key, id string, cl *StageClient) {
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
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		info, err := cl.Client().Info(pctx, &phalanxpb.InfoRequest{})
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
		case <-time.After(5 * time.Second):
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
	route := &Route{Epoch: plan.Epoch}
	hosts := map[string]bool{}
	for _, st := range plan.Stages {
		cl, err := c.clientLocked(st.WorkerID, st.Address)
		if err != nil {
			c.log.Error("cannot connect to a stage", "worker", st.WorkerID, "address", st.Address, "err", err)
			return
		}
		route.Stages = append(route.Stages, RouteStage{WorkerID: st.WorkerID, Layers: engine.LayerRange{Start: st.Start, End: st.End}, Client: cl})
		hosts[byID[st.WorkerID].Labels[LabelHost]] = true
		if n, err := strconv.Atoi(byID[st.WorkerID].Labels[LabelMaxStepRows]); err == nil && n > 0 &&
			(route.MaxStepRows == 0 || n < route.MaxStepRows) {
			route.MaxStepRows = n
		}
	}
	if !hosts[""] {
		route.Hosts = len(hosts)
	}
	c.sched.SetRoute(route)
	limit := c.cfg.MaxSessions
	if limit <= 0 {
		limit = AutoMaxSessions(plan, byID, c.size, c.ends.Config.KVDim())
		c.admit.SetLimit(limit)
	}
	c.log.Info("routing to the new plan", "epoch", plan.Epoch, "stages", len(route.Stages), "max_sessions", limit,
		"max_step_rows", route.MaxStepRows, "hosts", route.Hosts)
}

// LabelMaxStepRows is the worker label that publishes the rows its stage
// takes in one step.
const LabelMaxStepRows = "max_step_rows"

// LabelHost is the worker label that names its machine.
const LabelHost = "host"

// defaultMaxSessions is the session limit before a plan gives the workers'
// budgets.
const defaultMaxSessions = 64

// sessionTokensBudgeted is the length a session is assumed to reach when the
// session limit is derived from KV cache budgets: long enough for a chat
// turn, a quarter of Phi-2's window.
const sessionTokensBudgeted = 512

// AutoMaxSessions derives the session limit from the plan: for each stage,
// the KV cache budget its worker has left after its layers (what it offers,
// less the weights and the worker's reserve) divided by the cache of one
// sessionTokensBudgeted-token session over its layers (f32 keys and
// values); the smallest stage decides, within [4, MaxQueuedSteps/2].
// Sessions that grow longer are still served while the budget lasts; a
// worker out of budget refuses the step with RESOURCE_EXHAUSTED.
func AutoMaxSessions(plan shard.Plan, workers map[string]registry.WorkerRecord, size shard.ModelSize, kvDim int) int {
	limit := MaxQueuedSteps / 2
	for _, st := range plan.Stages {
		layers := uint64(st.End - st.Start)
		w, ok := workers[st.WorkerID]
		if !ok || layers == 0 {
			continue
		}
		used := layers*size.LayerBytes + workerReserve
		if w.MemoryFree <= used {
			limit = min(limit, 4)
			continue
		}
		perSession := layers * sessionTokensBudgeted * uint64(kvDim) * 2 * 4
		limit = min(limit, int((w.MemoryFree-used)/perSession))
	}
	return max(limit, 4)
}

// MaxMessageBytes bounds gRPC messages between coordinator and workers: a
// prefill step of a full context in f32 (2048 × 2560 × 4 = 21 MB) fits.
const MaxMessageBytes = 64 << 20

func (c *Coordinator) clientLocked(id, addr string) (*StageClient, error) {
	key := id + "@" + addr
	if cl := c.clients[key]; cl != nil {
		return cl, nil
	}
	conn := c.conns[addr]
	if conn == nil {
		opts := append([]grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
		}, c.cfg.DialOptions...) // later options (TLS credentials) override
		var err error
		if conn, err = grpc.NewClient(addr, opts...); err != nil {
			return nil, err
		}
		c.conns[addr] = conn
	}
	cl := NewStageClient(addr, conn, c.cfg.StageTimeout)
	c.clients[key] = cl
	return cl, nil
}

// Status describes the cluster for ClusterStatus and the console.
func (c *Coordinator) Status(ctx context.Context) *phalanxpb.ClusterStatusResponse {
	c.mu.Lock()
	plan, workers, planErr := c.plan, append([]registry.WorkerRecord(nil), c.workers...), c.planErr
	c.mu.Unlock()
	leader, _ := registry.Leader(ctx, c.cfg.Etcd, c.cfg.Cluster)
	st := c.sched.Stats()
	resp := &phalanxpb.ClusterStatusResponse{
		Epoch: plan.Epoch, Leader: leader, Model: c.modelID, NumLayers: int32(c.ends.Config.NumLayers),
		PlanExplanation: plan.Explanation, ActiveSessions: int32(c.sched.ActiveSessions()),
		QueueDepth: int32(c.sched.QueueDepth()), TokensPerSecond: c.tokenRate(st), Goroutines: int32(runtime.NumGoroutine()),
	}
	as := c.admit.Stats()
	resp.MaxSessions, resp.QueuedRequests, resp.MaxQueuedRequests, resp.RefusedRequests = int32(as.Limit), int32(as.Queued), int32(as.MaxQueue), as.Refused
	if planErr != nil {
		resp.PlanExplanation = "cannot plan: " + planErr.Error() + "\n" + plan.Explanation
	}
	route := c.sched.Route()
	for i, s := range plan.Stages {
		ss := &phalanxpb.StageStatus{WorkerId: s.WorkerID, Address: s.Address, LayerStart: int32(s.Start), LayerEnd: int32(s.End),
			Ready: route != nil && route.Epoch == plan.Epoch}
		if ss.Ready && i < len(st.StageMillis) {
			ss.LastStepLatencyMs = st.StageMillis[i]
		}
		resp.Stages = append(resp.Stages, ss)
	}
	sort.Slice(workers, func(i, j int) bool { return workers[i].ID < workers[j].ID })
	for _, w := range workers {
		ws := &phalanxpb.WorkerStatus{Id: w.ID, Address: w.Address, Version: w.Version, MemoryTotalBytes: w.MemoryTotal,
			MemoryFreeBytes: w.MemoryFree, Speed: w.Speed, ReadyEpoch: w.ReadyEpoch, Healthy: true,
			LayerStart: int32(w.Layers[0]), LayerEnd: int32(w.Layers[1])}
		c.mu.Lock()
		cl := c.clients[w.ID+"@"+w.Address]
		c.mu.Unlock()
		if cl != nil {
			ictx, cancel := context.WithTimeout(ctx, time.Second)
			info, err := cl.Client().Info(ictx, &phalanxpb.InfoRequest{})
			cancel()
			if err != nil {
				ws.Healthy = false
			} else {
				ws.KvCacheBytes, ws.Sessions, ws.Goroutines = info.GetKvCacheBytes(), info.GetSessions(), info.GetGoroutines()
			}
		}
		resp.Workers = append(resp.Workers, ws)
	}
	return resp
}

// tokenRate is tokens per second over the last few seconds.
func (c *Coordinator) tokenRate(st StepStats) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	ts := &c.tokStats
	if d := now.Sub(ts.at); d >= 2*time.Second || ts.at.IsZero() {
		if !ts.at.IsZero() {
			ts.rate = float64(st.Tokens-ts.tokens) / d.Seconds()
		}
		ts.at, ts.tokens = now, st.Tokens
	}
	return ts.rate
}

// capacityGone tells the scheduler to stop waiting for a re-plan: the
// workers left cannot hold the model.
func (c *Coordinator) capacityGone() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.planErr != nil && (errors.Is(c.planErr, shard.ErrInsufficientMemory) || errors.Is(c.planErr, shard.ErrNotEnoughWorkers)) {
		return c.planErr
	}
	return nil
}

// PlanError is why the cluster cannot be planned now, if it cannot.
func (c *Coordinator) PlanError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.planErr
}
