package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/pipeline/weights"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// LabelWeights marks a worker without model files that serves the tensors
// of its cache to peers ("cache").
const LabelWeights = "weights"

// layerProvider gives a worker the layers a plan assigns it.
type layerProvider interface {
	kind() string
	modelID() string
	config() *engine.Config
	calibrate(threads int) (float64, error)
	setMembership(m *registry.Membership)
	// load returns the model of range r (the plan names model).
	load(ctx context.Context, model string, r engine.LayerRange, threads int) (*engine.Model, error)
	// loaded is told the range now installed.
	loaded(r engine.LayerRange)
	// prefetch readies range r of a staged plan for a later load, if the
	// provider has anything to fetch (nil at once when it reads files).
	prefetch(ctx context.Context, model string, r engine.LayerRange) error
	close()
}

// fileLayers reads layers from the worker's own model files.
type fileLayers struct{ mf *engine.ModelFiles }

func openFileLayers(path string) (*fileLayers, error) {
	mf, err := engine.Open(path)
	if err != nil {
		return nil, err
	}
	return &fileLayers{mf: mf}, nil
}

func (f *fileLayers) kind() string                           { return "files " + f.mf.Path }
func (f *fileLayers) modelID() string                        { return f.mf.ID }
func (f *fileLayers) config() *engine.Config                 { return f.mf.Config }
func (f *fileLayers) calibrate(threads int) (float64, error) { return Calibrate(f.mf, threads) }
func (f *fileLayers) setMembership(*registry.Membership)     {}
func (f *fileLayers) loaded(engine.LayerRange)               {}
func (f *fileLayers) prefetch(context.Context, string, engine.LayerRange) error {
	return nil
}
func (f *fileLayers) close() {}

func (f *fileLayers) load(_ context.Context, _ string, r engine.LayerRange, threads int) (*engine.Model, error) {
	return f.mf.Load(engine.Options{Layers: r, Threads: threads})
}

// fetchLayers fetches layers into the worker's cache from the coordinator
// and from peers that hold them, then loads them from the cache.
type fetchLayers struct {
	cfg     WorkerConfig
	log     *slog.Logger
	id      string
	mcfg    *engine.Config
	first   *weights.Manifest // layer 0, for calibration
	fetcher *weights.Fetcher

	man *weights.Manifest // of the range last loaded

	mu        sync.Mutex
	pruneStop context.CancelFunc // the pending prune, if any; a load cancels it
	mem       *registry.Membership
	fetching  engine.LayerRange
	// received is what earlier fetches of the range fetching got over
	// the wire: a load after a staged fetch receives nothing, and the
	// record keeps reporting what the range cost.
	received uint64
	lastP    weights.Progress            // of the current fetch, last published
	conns    map[string]*grpc.ClientConn // by address
	lastPub  time.Time
}

// openFetchLayers finds the coordinator's Weights service (published in
// etcd by the leader) and learns the model from it.
func openFetchLayers(ctx context.Context, cfg WorkerConfig) (*fetchLayers, error) {
	if cfg.Cache == nil {
		return nil, errors.New("a worker without --model needs a cache directory (--cache)")
	}
	f := &fetchLayers{cfg: cfg, log: cfg.Logger, conns: map[string]*grpc.ClientConn{}}
	f.fetcher = &weights.Fetcher{Cache: cfg.Cache, Limiter: weights.NewLimiter(cfg.TransferRate), Logger: cfg.Logger,
		OnProgress: f.progress}
	waiting := false
	for {
		src, client, err := f.coordinator(ctx)
		if err == nil {
			mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			f.first, err = weights.GetManifest(mctx, client, src.Model, engine.LayerRange{Start: 0, End: 1})
			cancel()
		}
		if err == nil {
			f.id, f.mcfg = f.first.ModelID, f.first.Config
			f.log.Info("model learned from the coordinator", "model", f.id, "source", src.Address, "layers", f.mcfg.NumLayers)
			return f, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !waiting {
			f.log.Info("waiting for the coordinator's weights source", "err", err)
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (f *fetchLayers) kind() string           { return "fetched into " + f.cfg.Cache.Dir() }
func (f *fetchLayers) modelID() string        { return f.id }
func (f *fetchLayers) config() *engine.Config { return f.mcfg }

// calibrate times a layer of layer 0's dtypes and shapes filled with
// zeros: the worker holds no weights yet, and the kernels' speed does not
// depend on the values.
func (f *fetchLayers) calibrate(threads int) (float64, error) {
	m, err := engine.LoadFrom(f.mcfg, weights.ZeroSource(f.first), engine.Options{Layers: engine.LayerRange{Start: 0, End: 1}, Threads: threads})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	return calibrateOn(m)
}

func (f *fetchLayers) setMembership(m *registry.Membership) {
	f.mu.Lock()
	f.mem = m
	f.mu.Unlock()
}

func (f *fetchLayers) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	if f.pruneStop != nil {
		f.pruneStop()
	}
}

// dial returns a Weights client for a node of role at addr.
func (f *fetchLayers) dial(addr, role string) (phalanxpb.WeightsClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := role + "@" + addr
	if c := f.conns[key]; c != nil {
		return phalanxpb.NewWeightsClient(c), nil
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(2 * weights.ChunkBytes))}
	if f.cfg.WeightsDial != nil {
		opts = append(opts, f.cfg.WeightsDial(role)...) // later options (TLS) override
	}
	c, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	f.conns[key] = c
	return phalanxpb.NewWeightsClient(c), nil
}

// coordinator reads where the leader serves weights.
func (f *fetchLayers) coordinator(ctx context.Context) (registry.WeightsSource, phalanxpb.WeightsClient, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	src, err := registry.GetWeightsSource(rctx, f.cfg.Etcd, f.cfg.Cluster)
	if err != nil {
		return src, nil, err
	}
	c, err := f.dial(src.Address, "coordinator")
	return src, c, err
}

// load fetches what the cache lacks of range r — from peers holding the
// layers first, then the coordinator — checks it, and loads it.
func (f *fetchLayers) load(ctx context.Context, model string, r engine.LayerRange, threads int) (*engine.Model, error) {
	man, err := f.fetch(ctx, model, r)
	if err != nil {
		return nil, err
	}
	m, err := engine.LoadFrom(man.Config, f.cfg.Cache.Source(man), engine.Options{Layers: r, Threads: threads})
	if err != nil {
		return nil, err
	}
	f.man = man
	return m, nil
}

// prefetch fetches range r of a staged plan into the cache, without
// loading it: the layers held keep serving meanwhile.
func (f *fetchLayers) prefetch(ctx context.Context, model string, r engine.LayerRange) error {
	_, err := f.fetch(ctx, model, r)
	return err
}

// fetch makes the cache hold range r of model, checked, and returns its
// manifest. Calls must not overlap (the worker's loop runs them one at a
// time).
func (f *fetchLayers) fetch(ctx context.Context, model string, r engine.LayerRange) (*weights.Manifest, error) {
	src, coord, err := f.coordinator(ctx)
	if err != nil {
		return nil, err
	}
	if src.Model != model {
		return nil, fmt.Errorf("%w: the coordinator serves %q, the plan names %q", weights.ErrModel, src.Model, model)
	}
	mctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // the coordinator hashes layers on first request
	man, err := weights.GetManifest(mctx, coord, model, r)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("manifest of %v: %w", r, err)
	}
	peers, err := f.peers(ctx, model)
	if err != nil {
		f.log.Warn("cannot list peers: fetching from the coordinator only", "err", err)
	}
	f.fetcher.Sources = func(t weights.Tensor) []weights.Source {
		// Peers holding the layer first; then the other caching peers
		// (one that just gave the layer up in this re-plan still caches
		// it until it prunes; the others answer NOT_FOUND at once); then
		// the coordinator.
		var holding, others []weights.Source
		for _, p := range peers {
			if t.Layer >= p.layers[0] && t.Layer < p.layers[1] {
				holding = append(holding, p.src)
			} else {
				others = append(others, p.src)
			}
		}
		return append(append(holding, others...), weights.Source{Name: "coordinator", Client: coord})
	}
	f.mu.Lock()
	if f.fetching == r {
		f.received += f.lastP.Received
	} else {
		f.received = 0
	}
	f.lastPub, f.fetching, f.lastP = time.Time{}, r, weights.Progress{}
	if f.pruneStop != nil {
		f.pruneStop() // it would delete what this load reuses
		f.pruneStop = nil
	}
	f.mu.Unlock()
	start := time.Now()
	if err := f.fetcher.Ensure(ctx, man); err != nil {
		return nil, err
	}
	p := f.fetcher.Progress()
	f.publish(r, p, true)
	f.log.Info("weights in cache", "layers", r.String(), "bytes", p.Total, "received", p.Received,
		"took", time.Since(start).Round(time.Millisecond).String())
	return man, nil
}

// loaded prunes the cache to the range installed, so the worker's disk
// holds its range's bytes only — after PruneAfter, and once no peer has
// read from it for a while: a re-plan moves the layers this worker gave
// up to peers, which fetch them from here.
func (f *fetchLayers) loaded(r engine.LayerRange) {
	if f.man == nil || f.man.Layers != r {
		return
	}
	man := f.man
	f.mu.Lock()
	if f.pruneStop != nil {
		f.pruneStop()
	}
	ctx, stop := context.WithCancel(context.Background())
	f.pruneStop = stop
	f.mu.Unlock()
	after := f.cfg.PruneAfter
	if after <= 0 {
		after = 30 * time.Second
	}
	go func() {
		t := time.NewTimer(after)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if f.cfg.Cache.Idle() >= min(after, 10*time.Second) {
				break
			}
			t.Reset(time.Second)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if n, err := f.cfg.Cache.Prune(man); err != nil {
			f.log.Warn("cannot prune the weights cache", "err", err)
		} else if n > 0 {
			f.log.Info("pruned the weights cache to the layers held", "layers", r.String(), "freed_bytes", n)
		}
	}()
}

type peer struct {
	layers [2]int
	src    weights.Source
}

// peers are the other workers that serve the model's tensors from their
// caches, with the layers they hold.
func (f *fetchLayers) peers(ctx context.Context, model string) ([]peer, error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	recs, err := registry.ListWorkers(lctx, f.cfg.Etcd, f.cfg.Cluster)
	if err != nil {
		return nil, err
	}
	var out []peer
	for _, w := range recs {
		if w.ID == f.cfg.ID || w.Labels[LabelWeights] != "cache" || w.Labels["model"] != model {
			continue
		}
		c, err := f.dial(w.Address, "worker")
		if err != nil {
			continue
		}
		out = append(out, peer{layers: w.Layers, src: weights.Source{Name: w.ID, Client: c}})
	}
	return out, nil
}

// progress publishes the transfer's progress in the worker's record, at
// most twice a second.
func (f *fetchLayers) progress(p weights.Progress) {
	f.mu.Lock()
	r := f.fetching
	f.mu.Unlock()
	f.publish(r, p, false)
}

func (f *fetchLayers) publish(r engine.LayerRange, p weights.Progress, final bool) {
	f.mu.Lock()
	mem := f.mem
	f.lastP = p
	received := f.received + p.Received
	due := final || time.Since(f.lastPub) >= 500*time.Millisecond
	if due {
		f.lastPub = time.Now()
	}
	f.mu.Unlock()
	if mem == nil || !due {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	mem.Update(ctx, func(rec *registry.WorkerRecord) {
		rec.Transfer = &registry.Transfer{Layers: [2]int{r.Start, r.End}, Done: p.Done, Total: p.Total, Received: received}
	})
}
