package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/pipeline/stage"
	"github.com/phalanx-llm/phalanx/pipeline/weights"
	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// WorkerConfig configures a worker's agent.
type WorkerConfig struct {
	ID      string
	Address string // advertised host:port of the Stage service
	Version string
	// Model is the worker's copy of the model: a Hugging Face directory or
	// a GGUF file. Only the planned layers' bytes are read. Empty: the
	// worker fetches its planned layers into Cache (see package weights).
	Model string
	// Cache keeps the layers a worker without Model fetches; the worker's
	// gRPC server should serve it to peers (weights.NewServer(cache, nil)).
	Cache *weights.Cache
	// PruneAfter is how long after loading a range the worker deletes the
	// cached tensors outside it (default 30 s; longer while peers read).
	PruneAfter time.Duration
	// TransferRate throttles the bytes fetched per second (0: no limit).
	TransferRate float64
	// WeightsDial gives the dial options for a Weights service on a node
	// of the role (tlsutil roles: "coordinator" or "worker"); plaintext
	// when nil.
	WeightsDial func(role string) []grpc.DialOption
	Cluster     string
	Threads     int
	// MemoryFree is what the worker offers for layers and KV caches; 0
	// means the machine's available memory.
	MemoryFree uint64
	// Reserve is memory kept outside layers and KV caches (runtime,
	// buffers, activations); default 256 MiB.
	Reserve uint64
	// KVWarm is KV cache memory mapped and faulted in when layers load
	// (at most the KV budget) and kept while the worker runs, so that the
	// first sessions do not fault memory in mid-step (engine.Model.WarmKV).
	// 0: none.
	KVWarm uint64
	// Speed in layer-steps per second; 0 means measure it at start.
	Speed float64
	// Host names the machine the worker runs on (default: its
	// /etc/machine-id, else its host name). The coordinator keeps one
	// micro-batch in flight per stage that can compute while the others
	// do: every stage on a machine of its own, and on a shared machine as
	// many as the workers' threads fit its CPUs.
	Host     string
	LeaseTTL time.Duration
	Etcd     *clientv3.Client
	Stage    *stage.Server
	Logger   *slog.Logger
}

// RunWorker registers the worker, follows the plan and loads the layers it
// is given into cfg.Stage, until ctx ends: from its own model files, or
// fetched from the coordinator and its peers into its cache.
func RunWorker(ctx context.Context, cfg WorkerConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
		cfg.Logger = log
	}
	var layers layerProvider
	var err error
	if cfg.Model != "" {
		layers, err = openFileLayers(cfg.Model)
	} else {
		layers, err = openFetchLayers(ctx, cfg)
	}
	if err != nil {
		return err
	}
	defer layers.close()
	modelID, mcfg := layers.modelID(), layers.config()
	total, avail := systemMemory()
	if cfg.MemoryFree == 0 {
		cfg.MemoryFree = avail
	}
	speedFrom := SpeedGiven
	if cfg.Speed <= 0 {
		if cfg.Speed, err = layers.calibrate(cfg.Threads); err != nil {
			return fmt.Errorf("calibration: %w", err)
		}
		speedFrom = SpeedCalibrated
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 5 * time.Second
	}
	if cfg.Reserve == 0 {
		cfg.Reserve = DefaultWorkerReserve
	}
	if cfg.Host == "" {
		cfg.Host = hostName()
	}
	threads := cfg.Threads
	if threads <= 0 {
		threads = engine.DefaultThreads()
	}
	labels := map[string]string{"model": modelID, LabelKernels: kernels.Name(),
		LabelMaxStepRows: strconv.Itoa(cfg.Stage.MaxStepRows()), LabelHost: cfg.Host,
		LabelThreads: strconv.Itoa(threads), LabelCPUs: strconv.Itoa(runtime.NumCPU()), LabelSpeed: speedFrom,
		LabelKVCache: "f32,f16"}
	if cfg.Model == "" {
		labels[LabelWeights] = "cache"
	}
	info := shard.WorkerInfo{ID: cfg.ID, Address: cfg.Address, Version: cfg.Version, MemoryTotal: total,
		MemoryFree: cfg.MemoryFree, Speed: cfg.Speed, Labels: labels}
	log.Info("worker registering", "address", cfg.Address, "model", modelID, "kernels", kernels.Name(),
		"memory_free", cfg.MemoryFree, "speed_layer_steps_per_s", fmt.Sprintf("%.1f", cfg.Speed), "weights", layers.kind())
	mem, err := registry.Register(ctx, cfg.Etcd, cfg.Cluster, info, cfg.LeaseTTL)
	if err != nil {
		return err
	}
	defer mem.Close()
	layers.setMembership(mem)
	plans, err := registry.WatchPlan(ctx, cfg.Etcd, cfg.Cluster)
	if err != nil {
		return err
	}
	// A worker without model files follows the staged plan too: it
	// fetches its range of it while the layers it holds keep serving.
	var staged <-chan registry.Staged
	if cfg.Model == "" {
		if staged, err = registry.WatchStaged(ctx, cfg.Etcd, cfg.Cluster); err != nil {
			return err
		}
	}
	var (
		plan     shard.Plan
		retry    <-chan time.Time // a load failed: try the same plan again
		pre      prefetching
		upcoming registry.Staged
	)
	defer pre.stop()
	// followStaged fetches this worker's range of the staged plan, unless
	// it holds that range already or it is being (or was) fetched.
	followStaged := func() {
		st, _, ok := upcoming.Plan.StageOf(cfg.ID)
		want := engine.LayerRange{Start: st.Start, End: st.End}
		held, _, holding := cfg.Stage.Held()
		switch {
		case !upcoming.Present || !ok || upcoming.Plan.Model != modelID || upcoming.Plan.NumLayers != mcfg.NumLayers || (holding && held == want):
			pre.stop()
		case pre.running(want):
		default:
			pre.stop()
			log.Info("fetching the layers of a staged plan", "epoch", upcoming.Plan.Epoch, "layers", want)
			pre.start(ctx, log, func(ctx context.Context) error { return layers.prefetch(ctx, modelID, want) }, want)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case plan = <-plans:
			retry = nil
		case <-retry:
			retry = nil
		case upcoming = <-staged:
			followStaged()
			continue
		}
		if err := followPlan(ctx, cfg, layers, mem, &pre, plan, modelID, mcfg.NumLayers); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			retry = time.After(5 * time.Second)
		}
		// A load stopped the staged fetch (never two at once): take it up
		// again if the staged plan still wants it.
		followStaged()
	}
}

// followPlan makes the worker hold its layers of plan, and says so in its
// record; an error means the load failed and should be retried.
func followPlan(ctx context.Context, cfg WorkerConfig, layers layerProvider, mem *registry.Membership, pre *prefetching,
	plan shard.Plan, modelID string, numLayers int) error {
	log := cfg.Logger
	if plan.Model != modelID {
		log.Warn("ignoring a plan for another model", "plan_model", plan.Model, "model", modelID, "epoch", plan.Epoch)
		return nil
	}
	if plan.NumLayers != numLayers {
		log.Warn("ignoring a plan with another layer count", "plan_layers", plan.NumLayers, "epoch", plan.Epoch)
		return nil
	}
	if err := plan.Validate(); err != nil {
		// Not a plan a leader publishes (they are validated): keep the
		// layers held until the leader restores its plan.
		log.Warn("ignoring an invalid plan", "epoch", plan.Epoch, "err", err)
		return nil
	}
	st, _, ok := plan.StageOf(cfg.ID)
	held, _, holding := cfg.Stage.Held()
	want := engine.LayerRange{Start: st.Start, End: st.End}
	switch {
	case !ok:
		if holding {
			log.Info("not in the plan: releasing layers", "epoch", plan.Epoch, "layers", held)
			cfg.Stage.Unload()
		}
		want = engine.LayerRange{}
	case holding && held == want:
		cfg.Stage.SetEpoch(plan.Epoch)
		log.Info("plan keeps this worker's layers", "epoch", plan.Epoch, "layers", want)
	default:
		// The layers held keep serving the current route while the new
		// ones are fetched and loaded. Loads fetch too: never two
		// fetches at once.
		pre.stop()
		start := time.Now()
		m, err := layers.load(ctx, plan.Model, want, cfg.Threads)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("cannot load the planned layers: retrying", "epoch", plan.Epoch, "layers", want, "err", err)
			}
			return err
		}
		cfg.Stage.Install(m, plan.Epoch)
		// KV caches get what the layers leave of the memory offered,
		// less a fixed reserve for the runtime and buffers.
		budget := max(int64(cfg.MemoryFree)-m.WeightBytes()-int64(cfg.Reserve), 64<<20)
		cfg.Stage.SetCacheBudget(budget)
		if cfg.KVWarm > 0 {
			t := time.Now()
			warm := m.WarmKV(min(int64(cfg.KVWarm), budget))
			log.Info("KV cache memory warmed", "bytes", warm, "took", time.Since(t).Round(time.Millisecond).String())
		}
		log.Info("layers loaded", "epoch", plan.Epoch, "layers", want, "bytes", m.WeightBytes(), "took", time.Since(start).Round(time.Millisecond).String())
		layers.loaded(want)
	}
	if err := mem.Update(ctx, func(r *registry.WorkerRecord) {
		r.ReadyEpoch = plan.Epoch
		r.Layers = [2]int{want.Start, want.End}
	}); err != nil {
		log.Warn("could not publish readiness yet", "epoch", plan.Epoch, "err", err)
	}
	return nil
}

// hostName names the machine, so the coordinator can tell stages that share
// one (they share its cores and memory bandwidth).
func hostName() string {
	if b, err := os.ReadFile("/etc/machine-id"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b))
	}
	h, _ := os.Hostname()
	return h
}

// DefaultWorkerReserve is the memory a worker keeps outside layers and KV
// caches unless told otherwise (--reserve).
const DefaultWorkerReserve = 256 << 20

// Calibrate measures decode speed in layer-steps per second on the first
// layer of the model: the planner's measure of a worker.
func Calibrate(mf *engine.ModelFiles, threads int) (float64, error) {
	m, err := mf.Load(engine.Options{Layers: engine.LayerRange{Start: 0, End: 1}, Threads: threads})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	return calibrateOn(m)
}

// calibrateOn times decode steps through m's layers.
func calibrateOn(m *engine.Model) (float64, error) {
	H := m.Config.HiddenSize
	x := make([]float32, H)
	r := rand.New(rand.NewPCG(1, 2))
	cache := m.NewCache()
	defer func() { cache.Release() }()
	steps := 0
	start := time.Now()
	for steps < 3 || time.Since(start) < 100*time.Millisecond {
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		if cache.Len() >= m.Config.MaxPositionEmbeddings-1 || cache.Len() >= 64 {
			cache.Release()
			cache = m.NewCache()
		}
		if err := m.Forward(x, []engine.Span{{Cache: cache, Tokens: 1}}); err != nil {
			return 0, err
		}
		steps++
	}
	return float64(steps) / time.Since(start).Seconds() / float64(m.Layers.Len()), nil
}

// prefetching is the fetch of a staged plan's range running in the
// background, retried until it succeeds or is stopped.
type prefetching struct {
	r      engine.LayerRange
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *prefetching) running(r engine.LayerRange) bool { return p.done != nil && p.r == r }

func (p *prefetching) start(ctx context.Context, log *slog.Logger, fetch func(context.Context) error, r engine.LayerRange) {
	ctx, p.cancel = context.WithCancel(ctx)
	p.done, p.r = make(chan struct{}), r
	done := p.done
	go func() {
		defer close(done)
		for {
			err := fetch(ctx)
			if err == nil || ctx.Err() != nil {
				return
			}
			log.Warn("cannot fetch the staged layers: retrying", "layers", r, "err", err)
			sleepCtx(ctx, 5*time.Second)
		}
	}()
}

// stop cancels the fetch and waits for it to end (its bytes stay in the
// cache: a later fetch resumes them).
func (p *prefetching) stop() {
	if p.done == nil {
		return
	}
	p.cancel()
	<-p.done
	*p = prefetching{}
}
