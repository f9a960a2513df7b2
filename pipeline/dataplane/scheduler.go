package dataplane

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phalanx-llm/phalanx/pipeline/stage"
	"github.com/prometheus/client_golang/prometheus"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// Route is the pipeline a step travels: the plan epoch and its stages in
// order.
type Route struct {
	Epoch  uint64
	Stages []RouteStage
	// MaxStepRows is the fewest rows a stage of the route takes in one
	// step (0: no limit known); steps and replays are cut to fit it.
	MaxStepRows int
	// Parallel is how many of the stages can compute at the same time:
	// one per machine, or more where the workers sharing a machine have
	// CPUs enough for each (0: not known, taken as one per stage).
	Parallel int
}

// microBatches is how many micro-batches keep the route busy: one per stage
// that can compute while the others do (Parallel).
func (r *Route) microBatches() int {
	if r == nil {
		return 1
	}
	n := max(1, len(r.Stages))
	if r.Parallel > 0 {
		n = min(n, r.Parallel)
	}
	return n
}

// RouteStage is one stage of a route.
type RouteStage struct {
	WorkerID string
	Layers   engine.LayerRange
	Client   *stage.Client
}

// Config tunes batching.
type Config struct {
	// InFlight caps the micro-batches in flight; default 16. Below the cap,
	// as many are in flight as the route has stages that can compute at
	// once (Route.Parallel), so that every machine works at once while
	// each batch is as large as it can be: stages sharing a machine share
	// its cores and memory bandwidth, and unless their threads leave CPUs
	// for each other, two micro-batches there would read every weight
	// twice for no parallelism.
	InFlight int
	// BatchWindow is how long a micro-batch waits for sessions whose last
	// step just ended and whose next step is on its way (sampling takes
	// ~0.1 ms), so sessions stay in one batch instead of splitting into a
	// big one and a straggler; default 2 ms. It is only spent while such
	// sessions exist.
	BatchWindow time.Duration
	// MaxBatchRows bounds the tokens of one micro-batch; default 4096.
	MaxBatchRows int
	// MaxBatchSessions bounds the sessions of one micro-batch; default 64.
	MaxBatchSessions int
	// PrefillChunk bounds the tokens one session puts in one step; default
	// 512. A longer prompt (or a replayed history) goes in chunks, each a
	// step of its own, so other sessions' decode steps run in between.
	PrefillChunk int
	// Wire is the dtype of activations between stages; default f32.
	Wire phalanxpb.DType
	// KVCache is how the stages keep the sessions' keys and values
	// (StageRequest.kv_dtype): F32 (the default) or F16.
	KVCache phalanxpb.DType
	// ReplanTimeout bounds how long a step waits for a working pipeline
	// (a re-plan after a failure, or the first plan) before it fails with
	// UNAVAILABLE; default 60 s.
	ReplanTimeout time.Duration
	// CapacityGone, if set, says the cluster cannot be re-planned (not
	// enough memory or workers): waiting steps then fail at once.
	CapacityGone func() error
	Logger       *slog.Logger
	// Registerer, if set, gets the data plane's Prometheus metrics.
	Registerer prometheus.Registerer
}

// Scheduler runs sessions' steps through the stages with continuous
// batching: whichever sessions are waiting when a micro-batch leaves go
// together, so each stage reads its weights once for all of them; sessions
// join and leave between steps.
type Scheduler struct {
	ends  *engine.Model // embedding and head
	cfg   Config
	queue chan *stepItem

	routeMu      sync.RWMutex
	route        *Route
	routeChanged chan struct{} // closed and replaced by every SetRoute

	relMu   sync.Mutex
	relIDs  []string      // sessions to release on every stage
	relKick chan struct{} // wakes the releaser

	stepID atomic.Uint64
	active atomic.Int64
	// thinking counts sessions whose last step ended well and that have
	// neither sent their next step nor closed: the dispatcher waits a
	// little for them (BatchWindow).
	thinking atomic.Int64
	waiting  atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
	stats    StepStats
	statsMu  sync.Mutex
	metrics  *metrics // nil without Config.Registerer
}

// StepStats are running figures of the scheduler.
type StepStats struct {
	Steps       uint64
	Tokens      uint64
	WireBytes   uint64 // activation bytes sent to stages (requests)
	StageMillis []float64
	LastStep    time.Time
}

type stepItem struct {
	ctx    context.Context // the request's: its trace, and it going away cancels the step
	sess   *Session
	hist   []int // the session's tokens before ids, for replay
	ids    []int
	pos    int
	logits []float32 // nil for a prefill chunk before the last
	done   chan error
}

// MaxQueuedSteps bounds the steps waiting for a micro-batch. A session has
// at most one step waiting, so admission's session limit keeps the queue
// below it.
const MaxQueuedSteps = 4096

// NewScheduler starts the scheduler over ends, which must hold the
// embedding and the head. It routes nothing until SetRoute.
func NewScheduler(ends *engine.Model, cfg Config) *Scheduler {
	if cfg.MaxBatchRows <= 0 {
		cfg.MaxBatchRows = 4096
	}
	if cfg.MaxBatchSessions <= 0 {
		cfg.MaxBatchSessions = 64
	}
	if cfg.PrefillChunk <= 0 {
		cfg.PrefillChunk = 512
	}
	cfg.PrefillChunk = min(cfg.PrefillChunk, cfg.MaxBatchRows)
	if cfg.Wire == phalanxpb.DType_DTYPE_UNSPECIFIED {
		cfg.Wire = phalanxpb.DType_DTYPE_F32
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 16
	}
	if cfg.BatchWindow <= 0 {
		cfg.BatchWindow = 2 * time.Millisecond
	}
	if cfg.ReplanTimeout <= 0 {
		cfg.ReplanTimeout = 60 * time.Second
	}
	s := &Scheduler{ends: ends, cfg: cfg, queue: make(chan *stepItem, MaxQueuedSteps), stop: make(chan struct{}),
		routeChanged: make(chan struct{}), relKick: make(chan struct{}, 1)}
	if cfg.Registerer != nil {
		s.metrics = newMetrics(cfg.Registerer, s)
	}
	s.wg.Add(2)
	go s.dispatch()
	go s.releaser()
	return s
}

// SetRoute switches the route for the steps that start from now on.
func (s *Scheduler) SetRoute(r *Route) {
	s.routeMu.Lock()
	s.route = r
	close(s.routeChanged)
	s.routeChanged = make(chan struct{})
	s.routeMu.Unlock()
}

func (s *Scheduler) routeAndSignal() (*Route, <-chan struct{}) {
	s.routeMu.RLock()
	defer s.routeMu.RUnlock()
	return s.route, s.routeChanged
}

// Route is the current route (nil before the first plan).
func (s *Scheduler) Route() *Route {
	s.routeMu.RLock()
	defer s.routeMu.RUnlock()
	return s.route
}

// MicroBatches is how many micro-batches the scheduler keeps in flight on
// the current route: one per stage that can compute while the others do
// (Route.Parallel), at most Config.InFlight.
func (s *Scheduler) MicroBatches() int {
	return min(s.Route().microBatches(), s.cfg.InFlight)
}

// Close stops the lanes; steps still queued fail.
func (s *Scheduler) Close() {
	close(s.stop)
	s.wg.Wait()
	for {
		select {
		case it := <-s.queue:
			it.done <- errors.New("pipeline: scheduler closed")
		default:
			return
		}
	}
}

// Stats returns a copy of the running figures.
func (s *Scheduler) Stats() StepStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	st := s.stats
	st.StageMillis = append([]float64(nil), s.stats.StageMillis...)
	return st
}

// ActiveSessions is the number of open sessions.
func (s *Scheduler) ActiveSessions() int { return int(s.active.Load()) }

// QueueDepth is the number of steps waiting for a micro-batch.
func (s *Scheduler) QueueDepth() int { return int(s.waiting.Load()) }

// dispatch forms micro-batches: it keeps one in flight per stage (so every
// stage works at once) and puts every step waiting at that moment into the
// next one (continuous batching: sessions join and leave between steps).
// Steps whose caller has gone away are dropped here, never computed.
func (s *Scheduler) dispatch() {
	defer s.wg.Done()
	var running sync.WaitGroup
	defer running.Wait()
	done := make(chan struct{}, s.cfg.InFlight)
	inFlight := 0
	var held *stepItem // taken from the queue but did not fit the last batch
	defer func() {
		if held != nil {
			held.done <- errors.New("pipeline: scheduler closed")
		}
	}()
	abandoned := func(it *stepItem) bool {
		if err := it.ctx.Err(); err != nil {
			s.waiting.Add(-1)
			it.done <- err
			return true
		}
		return false
	}
	for {
		limit := s.MicroBatches()
		for inFlight >= limit {
			select {
			case <-s.stop:
				return
			case <-done:
				inFlight--
			}
		}
		first := held
		held = nil
		if first == nil {
			select {
			case <-s.stop:
				return
			case <-done:
				inFlight--
				continue
			case first = <-s.queue:
			}
		}
		if abandoned(first) {
			continue
		}
		// The row limit comes from the route as it is now, not as it was
		// when the wait began: the first plan (or a new one) may have come
		// in meanwhile, and a batch over a stage's limit is refused.
		maxRows := s.cfg.MaxBatchRows
		if r := s.Route(); r != nil && r.MaxStepRows > 0 {
			maxRows = min(maxRows, r.MaxStepRows)
		}
		batch := []*stepItem{first}
		rows := len(first.ids)
		// take adds a queued step to the batch; false when the batch is
		// full (the step is held for the next one).
		take := func(it *stepItem) bool {
			if abandoned(it) {
				return true
			}
			if rows+len(it.ids) > maxRows {
				held = it
				return false
			}
			batch = append(batch, it)
			rows += len(it.ids)
			return true
		}
		// drain takes every step already queued.
		drain := func() {
			for held == nil && len(batch) < s.cfg.MaxBatchSessions {
				select {
				case it := <-s.queue:
					take(it)
				default:
					return
				}
			}
		}
		drain()
		if held == nil && len(batch) < s.cfg.MaxBatchSessions && s.thinking.Load() > 0 {
			// Sessions of a step that just ended are sampling their next
			// token: wait for them rather than send them a step later.
			t := time.NewTimer(s.cfg.BatchWindow)
		window:
			for held == nil && len(batch) < s.cfg.MaxBatchSessions && s.thinking.Load() > 0 {
				select {
				case it := <-s.queue:
					take(it)
				case <-t.C:
					break window
				}
			}
			t.Stop()
			drain() // a session counts itself out just before it queues
		}
		inFlight++
		running.Add(1)
		go func() {
			defer running.Done()
			s.runBatch(batch)
			done <- struct{}{}
		}()
	}
}

func (s *Scheduler) runBatch(batch []*stepItem) {
	s.waiting.Add(-int64(len(batch)))
	// The batch's steps are cancelled, on the workers too, once every
	// session in it has gone away.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left atomic.Int64
	left.Store(int64(len(batch)))
	for _, it := range batch {
		stop := context.AfterFunc(it.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	parts := make([]stepPart, len(batch))
	for i, it := range batch {
		parts[i] = stepPart{it: it, ids: it.ids, pos: it.pos, logits: it.logits}
	}
	err := s.forward(ctx, parts, false)
	if retryable(err) {
		err = s.replay(ctx, batch, err)
	}
	var st *status.Status
	if err != nil && len(batch) > 1 {
		if st, _ = status.FromError(err); st.Code() == codes.ResourceExhausted {
			// One session does not fit: run them one by one so only the
			// ones that do not fit fail.
			for i, it := range batch {
				it.done <- s.forward(it.ctx, parts[i:i+1], false)
			}
			return
		}
	}
	for _, it := range batch {
		if err == nil && it.sess.thinking.CompareAndSwap(false, true) {
			s.thinking.Add(1)
		}
		it.done <- err
	}
}
