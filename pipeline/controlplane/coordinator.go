package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/engine/tokenizer"
	"github.com/phalanx-llm/phalanx/pipeline/dataplane"
	"github.com/phalanx-llm/phalanx/pipeline/stage"
	"github.com/phalanx-llm/phalanx/pipeline/weights"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry"
	"github.com/prometheus/client_golang/prometheus"
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
	// KVCache is how the workers keep the sessions' keys and values: F32
	// (the default) or F16 (half the memory, so about twice the derived
	// session limit).
	KVCache phalanxpb.DType
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
	// LeaderTTL is the etcd session of the leadership: a dead leader is
	// replaced after it. Default 5 s.
	LeaderTTL time.Duration
	// ProbeInterval is how often a registered worker that could not be
	// reached (or whose certificate was refused) is tried again. Default 5 s.
	ProbeInterval time.Duration
	// WeightsAddress is the host:port where workers without model files
	// reach this coordinator's Weights service (see Catalog); published in
	// etcd while it leads. Empty: the coordinator serves no weights.
	WeightsAddress string
	// DialOptions for stage connections (TLS credentials, stats handlers);
	// plaintext unless they set transport credentials.
	DialOptions []grpc.DialOption
	Logger      *slog.Logger
	// Registerer, if set, gets the coordinator's and the data plane's
	// Prometheus metrics.
	Registerer prometheus.Registerer
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
	sched   *dataplane.Scheduler
	admit   *dataplane.Admission
	modelID string
	size    shard.ModelSize
	catalog *weights.Catalog // the model's layers for workers without files

	metrics *metrics      // nil without Config.Registerer
	probed  chan struct{} // a worker passed its first probe

	mu      sync.Mutex
	leading bool
	plan    shard.Plan
	planErr error
	// staged is the plan waiting for workers without model files to fetch
	// their layers (the fetching ones in stagedWait); see mustFetch.
	staged     shard.Plan
	stagedWait []string

	// planSuspect: the stored plan may not be the leader's (a publish
	// failed, a restore failed); lead reconciles until it is.
	planSuspect bool

	workers []registry.WorkerRecord
	conns   map[string]*grpc.ClientConn // by address
	clients map[string]*stage.Client    // by worker id + address
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
	if cfg.LeaderTTL <= 0 {
		cfg.LeaderTTL = 5 * time.Second
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 5 * time.Second
	}
	if cfg.FixedBytes == 0 {
		cfg.FixedBytes = 256 << 20
	}
	switch cfg.KVCache {
	case phalanxpb.DType_DTYPE_UNSPECIFIED:
		cfg.KVCache = phalanxpb.DType_DTYPE_F32
	case phalanxpb.DType_DTYPE_F32, phalanxpb.DType_DTYPE_F16:
	default:
		return nil, fmt.Errorf("coordinator: KV cache dtype %v: want F32 or F16", cfg.KVCache)
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
	catalog, err := weights.NewCatalog(mf)
	if err != nil {
		ends.Close()
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
		cfg: cfg, log: cfg.Logger, ends: ends, tok: tok, modelID: modelID, catalog: catalog,
		gen:       textgen.ForConfig(mcfg, tok),
		size:      shard.ModelSize{NumLayers: mcfg.NumLayers, LayerBytes: layerBytes, KVBytesPerLayer: cfg.KVReservePerLayer, FixedBytes: cfg.FixedBytes},
		conns:     map[string]*grpc.ClientConn{},
		clients:   map[string]*stage.Client{},
		reachable: map[string]bool{},
		probing:   map[string]bool{},
		pending:   map[string]bool{},
		probed:    make(chan struct{}, 1),
		started:   time.Now(),
	}
	c.sched = dataplane.NewScheduler(ends, dataplane.Config{Wire: cfg.Wire, KVCache: cfg.KVCache, ReplanTimeout: cfg.ReplanTimeout, Logger: cfg.Logger,
		CapacityGone: c.capacityGone, PrefillChunk: cfg.PrefillChunk, InFlight: cfg.MicroBatches, Registerer: cfg.Registerer})
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
	c.admit = dataplane.NewAdmission(limit, queue, cfg.QueueTimeout)
	if cfg.Registerer != nil {
		c.metrics = newMetrics(cfg.Registerer, c)
	}
	return c, nil
}

// Catalog serves the model's layers to workers without model files (the
// daemon registers weights.NewServer(c.Catalog(), c.Catalog())).
func (c *Coordinator) Catalog() *weights.Catalog { return c.catalog }

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
	c.catalog.Close()
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
		lead, err := registry.Campaign(ctx, c.cfg.Etcd, c.cfg.Cluster, c.cfg.ID, registry.WithSessionTTL(c.cfg.LeaderTTL))
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
	staged, err := registry.ReadStaged(ctx, c.cfg.Etcd, c.cfg.Cluster)
	if err != nil {
		c.log.Warn("cannot read the staged plan", "err", err)
	}
	c.mu.Lock()
	c.leading = true
	c.plan = plan
	// A plan staged by a previous leader stays staged if this one plans
	// the same; otherwise it is replaced or cleared.
	c.staged, c.stagedWait = staged.Plan, nil
	c.mu.Unlock()
	if c.cfg.WeightsAddress != "" {
		src := registry.WeightsSource{Address: c.cfg.WeightsAddress, Model: c.modelID}
		if err := registry.PublishWeightsSource(ctx, c.cfg.Etcd, c.cfg.Cluster, src); err != nil {
			c.log.Warn("cannot publish the weights source: workers without model files wait", "err", err)
		} else {
			c.log.Info("serving weights to workers without model files", "address", src.Address)
		}
	}
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
