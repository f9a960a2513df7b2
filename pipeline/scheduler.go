package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
)

// Route is the pipeline a step travels: the plan epoch and its stages in
// order.
type Route struct {
	Epoch  uint64
	Stages []RouteStage
	// MaxStepRows is the fewest rows a stage of the route takes in one
	// step (0: no limit known); steps and replays are cut to fit it.
	MaxStepRows int
	// Hosts is the number of distinct machines the stages run on (0: not
	// known, taken as one per stage).
	Hosts int
}

// microBatches is how many micro-batches keep the route busy: one per stage
// on a machine of its own.
func (r *Route) microBatches() int {
	if r == nil {
		return 1
	}
	n := max(1, len(r.Stages))
	if r.Hosts > 0 {
		n = min(n, r.Hosts)
	}
	return n
}

// RouteStage is one stage of a route.
type RouteStage struct {
	WorkerID string
	Layers   engine.LayerRange
	Client   *StageClient
}

// SchedulerConfig tunes batching.
type SchedulerConfig struct {
	// InFlight caps the micro-batches in flight; default 16. Below the cap,
	// as many are in flight as the route has stages on distinct hosts, so
	// that every machine works at once while each batch is as large as it
	// can be: stages sharing a machine share its cores and memory
	// bandwidth, and two micro-batches there would read every weight twice
	// for no parallelism.
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
	// ReplanTimeout bounds how long a step waits for a working pipeline
	// (a re-plan after a failure, or the first plan) before it fails with
	// UNAVAILABLE; default 60 s.
	ReplanTimeout time.Duration
	// CapacityGone, if set, says the cluster cannot be re-planned (not
	// enough memory or workers): waiting steps then fail at once.
	CapacityGone func() error
	Logger       *slog.Logger
}

// Scheduler runs sessions' steps through the stages with continuous
// batching: whichever sessions are waiting when a micro-batch leaves go
// together, so each stage reads its weights once for all of them; sessions
// join and leave between steps.
type Scheduler struct {
	ends  *engine.Model // embedding and head
	cfg   SchedulerConfig
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
	metrics  *CoordinatorMetrics // nil without metrics
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
func NewScheduler(ends *engine.Model, cfg SchedulerConfig) *Scheduler {
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

// Session is one sequence on the cluster; it implements textgen.Backend.
// Its methods must not be called concurrently.
type Session struct {
	ID      string
	span    trace.SpanContext // of the request, so releases join its trace
	s       *Scheduler
	pos     int
	history []int
	closed  bool
	// thinking: see Scheduler.thinking.
	thinking atomic.Bool
	// inflight is a step its caller stopped waiting for (ctx ended) that
	// the scheduler has not finished; Close releases the caches after it,
	// or the step would re-create what the release freed.
	inflight *stepItem
}

// NewSession opens a session.
func (s *Scheduler) NewSession() *Session {
	var b [12]byte
	rand.Read(b[:])
	s.active.Add(1)
	return &Session{ID: hex.EncodeToString(b[:]), s: s}
}

// Len is the number of positions the session holds.
func (ss *Session) Len() int { return ss.pos }

// Forward runs ids through the pipeline after what the session holds and
// writes the logits of the last of them. A long ids goes in chunks of
// PrefillChunk tokens, one step each, so other sessions' steps interleave.
func (ss *Session) Forward(ctx context.Context, ids []int, logits []float32) error {
	if ss.closed {
		return errors.New("pipeline: session closed")
	}
	if len(ids) == 0 {
		return errors.New("pipeline: no tokens")
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		ss.span = sc
	}
	chunk := ss.s.cfg.PrefillChunk
	if r := ss.s.Route(); r != nil && r.MaxStepRows > 0 {
		chunk = min(chunk, r.MaxStepRows)
	}
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		var out []float32
		if n == len(ids) {
			out = logits
		}
		if err := ss.step(ctx, ids[:n], out); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

func (ss *Session) step(ctx context.Context, ids []int, logits []float32) error {
	if ss.inflight != nil {
		// The last step was abandoned by its caller; wait until it is done
		// so its answer cannot land after this one.
		<-ss.inflight.done
		ss.inflight = nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	it := &stepItem{ctx: ctx, sess: ss, hist: ss.history, ids: ids, pos: ss.pos, logits: logits, done: make(chan error, 1)}
	ss.s.waiting.Add(1)
	ss.doneThinking()
	select {
	case ss.s.queue <- it:
	case <-ctx.Done():
		ss.s.waiting.Add(-1)
		return ctx.Err()
	}
	select {
	case err := <-it.done:
		if err != nil {
			return err
		}
		ss.pos += len(ids)
		ss.history = append(ss.history, ids...)
		return nil
	case <-ctx.Done():
		// The step may still complete; a later step of this session starts
		// at ss.pos, which truncates whatever it left behind.
		ss.inflight = it
		return ctx.Err()
	}
}

// Close releases the session's KV caches on every stage: at once, or, if a
// step its caller abandoned is still running, as soon as it ends.
func (ss *Session) Close() {
	if ss.closed {
		return
	}
	ss.closed = true
	ss.s.active.Add(-1)
	ss.doneThinking()
	if it := ss.inflight; it != nil {
		ss.inflight = nil
		go func() {
			<-it.done
			ss.s.release(ss.ID)
		}()
		return
	}
	ss.s.release(ss.ID)
}

func (ss *Session) doneThinking() {
	if ss.thinking.CompareAndSwap(true, false) {
		ss.s.thinking.Add(-1)
	}
}

// release queues a session for the releaser, which frees it on every stage.
func (s *Scheduler) release(id string) {
	s.relMu.Lock()
	s.relIDs = append(s.relIDs, id)
	s.relMu.Unlock()
	select {
	case s.relKick <- struct{}{}:
	default:
	}
}

// releaser frees released sessions' caches on every stage of the route, in
// one Release call per stage for all the sessions that ended meanwhile, so
// a crowd of clients leaving at once costs a few calls, not thousands.
// Sessions a stage does not get (it is down, or the call fails) are freed
// there by its idle timeout.
func (s *Scheduler) releaser() {
	defer s.wg.Done()
	for stopping := false; !stopping; {
		select {
		case <-s.stop:
			stopping = true // one last round for sessions closed before
		case <-s.relKick:
		}
		s.relMu.Lock()
		ids := s.relIDs
		s.relIDs = nil
		s.relMu.Unlock()
		r := s.Route()
		if r == nil || len(ids) == 0 {
			continue
		}
		var wg sync.WaitGroup
		for _, st := range r.Stages {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if _, err := st.Client.Client().Release(ctx, &phalanxpb.ReleaseRequest{SessionIds: ids}); err != nil {
					s.cfg.Logger.Warn("could not release sessions; the stage frees them after its idle timeout",
						"worker", st.WorkerID, "sessions", len(ids), "err", err)
				}
			}()
		}
		wg.Wait()
	}
}

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
		r := s.Route()
		limit := r.microBatches()
		maxRows := s.cfg.MaxBatchRows
		if r != nil && r.MaxStepRows > 0 {
			maxRows = min(maxRows, r.MaxStepRows)
		}
		limit = min(limit, s.cfg.InFlight)
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

// retryable tells failures a new route can cure: a stage that is gone or
// not ready, a plan that changed under the step, no plan yet.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrStageDown) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.FailedPrecondition:
		return true
	}
	return false
}

// replay reruns a failed micro-batch with every session's whole history
// from position 0 (the stages truncate what they hold, a new stage starts
// empty), waiting for the route to change between attempts, for at most
// ReplanTimeout. Because prefill and decode compute the same bits, the
// rebuilt caches and the logits are exactly those of a run without the
// failure. Histories go in chunks and steps no bigger than normal traffic's,
// so a replay is never refused for its size.
func (s *Scheduler) replay(ctx context.Context, batch []*stepItem, cause error) error {
	deadline := time.Now().Add(s.cfg.ReplanTimeout)
	backoff := 20 * time.Millisecond
	s.cfg.Logger.Warn("step failed; replaying its sessions", "sessions", len(batch), "cause", cause)
	for attempt := 1; ; attempt++ {
		_, changed := s.routeAndSignal()
		wait := time.Until(deadline)
		if wait <= 0 {
			return status.Errorf(codes.Unavailable, "pipeline: no working pipeline within %v: %v", s.cfg.ReplanTimeout, cause)
		}
		t := time.NewTimer(min(backoff, wait))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.stop:
			t.Stop()
			return status.Error(codes.Unavailable, "pipeline: scheduler closed")
		}
		t.Stop()
		if s.cfg.CapacityGone != nil {
			if gone := s.cfg.CapacityGone(); gone != nil {
				return status.Errorf(codes.Unavailable, "pipeline: capacity lost: %v (after: %v)", gone, cause)
			}
		}
		err := s.replayOnce(ctx, batch)
		if !retryable(err) {
			if err == nil {
				s.cfg.Logger.Info("replay succeeded", "sessions", len(batch), "attempts", attempt)
			}
			return err
		}
		cause = err
		backoff = min(2*backoff, time.Second)
	}
}

// replayOnce sends every session's history and new tokens from position 0:
// in round k, the k-th chunk of every session whose history is that long,
// packed into steps within the row limit. The last chunk of a session
// writes its logits.
func (s *Scheduler) replayOnce(ctx context.Context, batch []*stepItem) error {
	r := s.Route()
	chunk, maxRows := s.cfg.PrefillChunk, s.cfg.MaxBatchRows
	if r != nil && r.MaxStepRows > 0 {
		chunk, maxRows = min(chunk, r.MaxStepRows), min(maxRows, r.MaxStepRows)
	}
	all := make([][]int, len(batch))
	for i, it := range batch {
		all[i] = append(append(make([]int, 0, it.pos+len(it.ids)), it.hist[:it.pos]...), it.ids...)
	}
	for round := 0; ; round++ {
		var parts []stepPart
		for i, it := range batch {
			lo := round * chunk
			if lo >= len(all[i]) || it.ctx.Err() != nil {
				continue
			}
			hi := min(lo+chunk, len(all[i]))
			p := stepPart{it: it, ids: all[i][lo:hi], pos: lo}
			if hi == len(all[i]) {
				p.logits = it.logits
			}
			parts = append(parts, p)
		}
		if len(parts) == 0 {
			return ctx.Err()
		}
		for len(parts) > 0 {
			n, rows := 0, 0
			for n < len(parts) && n < s.cfg.MaxBatchSessions && rows+len(parts[n].ids) <= maxRows {
				rows += len(parts[n].ids)
				n++
			}
			if err := s.forward(ctx, parts[:n], true); err != nil {
				return err
			}
			parts = parts[n:]
		}
	}
}

// stepPart is one session's share of a step: ids at positions pos..., and
// where the logits of the last of them go (nil: not wanted).
type stepPart struct {
	it     *stepItem
	ids    []int
	pos    int
	logits []float32
}

// forward runs one step through every stage and the head.
func (s *Scheduler) forward(ctx context.Context, parts []stepPart, replay bool) error {
	r := s.Route()
	if r == nil || len(r.Stages) == 0 {
		return status.Error(codes.Unavailable, "pipeline: no plan yet")
	}
	H, V := s.ends.Config.HiddenSize, s.ends.Config.VocabSize
	rows := 0
	var ids []int
	spans := make([]*phalanxpb.SessionSpan, len(parts))
	lastRow := make([]int, len(parts))
	heads := 0
	for i, p := range parts {
		ids = append(ids, p.ids...)
		spans[i] = &phalanxpb.SessionSpan{SessionId: p.it.sess.ID, Position: int32(p.pos), Tokens: int32(len(p.ids))}
		rows += len(p.ids)
		lastRow[i] = rows - 1
		if p.logits != nil {
			heads++
		}
	}
	x := make([]float32, rows*H)
	if err := s.ends.Embed(ids, x); err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	stepID := s.stepID.Add(1)
	stageMs := make([]float64, len(r.Stages))
	computeMs := make([]float64, len(r.Stages))
	stepStart := time.Now()
	var wireBytes uint64
	// A step's spans hang under the first session's request; the others
	// are linked, so each request's trace shows every stage it crossed.
	var links []trace.Link
	for _, p := range parts[1:] {
		if sc := trace.SpanContextFromContext(p.it.ctx); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	parent := parts[0].it.ctx
	if s.metrics != nil {
		s.metrics.BatchSessions.Observe(float64(len(parts)))
	}
	// The activations travel straight: encoded once for the first stage,
	// each stage's reply (checked, not decoded) is the next stage's input,
	// and only the last reply is decoded.
	hidden := new(phalanxpb.Tensor)
	if err := wire.EncodeF32Into(hidden, rows, H, x, s.cfg.Wire); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	for i, st := range r.Stages {
		req := &phalanxpb.StageRequest{Epoch: r.Epoch, LayerStart: int32(st.Layers.Start), LayerEnd: int32(st.Layers.End),
			StepId: stepID, Spans: spans, Hidden: hidden, ReplyDtype: s.cfg.Wire}
		wireBytes += uint64(len(req.Hidden.Data))
		sctx, span := tracer.Start(parent, "phalanx.stage_step", trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
			trace.WithAttributes(attribute.String("phalanx.worker", st.WorkerID), attribute.Int("phalanx.stage", i),
				attribute.Int64("phalanx.step", int64(stepID)), attribute.Int("phalanx.rows", rows),
				attribute.Int("phalanx.sessions", len(parts)), attribute.Bool("phalanx.replay", replay)))
		if span.SpanContext().IsValid() {
			req.TraceContext = map[string]string{}
			otel.GetTextMapPropagator().Inject(sctx, propagation.MapCarrier(req.TraceContext))
		}
		start := time.Now()
		resp, err := st.Client.Step(ctx, req)
		if err != nil {
			span.SetStatus(otelcodes.Error, err.Error())
			span.End()
			return err
		}
		span.End()
		stageMs[i] = float64(time.Since(start).Microseconds()) / 1000
		if s.metrics != nil {
			s.metrics.StageStep.WithLabelValues(strconv.Itoa(i), st.WorkerID).Observe(stageMs[i] / 1000)
			s.metrics.WireBytes.WithLabelValues(st.WorkerID).Add(float64(len(req.Hidden.Data)))
		}
		computeMs[i] = resp.GetComputeMs()
		hidden = resp.GetHidden()
		if err := wire.Check(hidden, rows, H, s.cfg.Wire); err != nil {
			st.Client.Reset(fmt.Errorf("bad answer: %v", err))
			return fmt.Errorf("%w: %s answered a bad tensor: %v", ErrStageDown, st.Client.Address, err)
		}
	}
	var err error
	if x, _, err = wire.DecodeF32(hidden, H, rows, x); err != nil {
		return status.Errorf(codes.Internal, "pipeline: decode the last stage's answer: %v", err)
	}
	// The head runs on the last row of every session that wants logits.
	headStart := time.Now()
	if heads > 0 {
		last := make([]float32, heads*H)
		k := 0
		for i, p := range parts {
			if p.logits != nil {
				copy(last[k*H:(k+1)*H], x[lastRow[i]*H:(lastRow[i]+1)*H])
				k++
			}
		}
		logits := make([]float32, heads*V)
		if err := s.ends.Logits(last, logits); err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		k = 0
		for _, p := range parts {
			if p.logits != nil {
				copy(p.logits, logits[k*V:(k+1)*V])
				k++
			}
		}
	}
	if s.cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		s.cfg.Logger.Debug("step", "step", stepID, "sessions", len(parts), "rows", rows, "stage_rtt_ms", stageMs,
			"stage_compute_ms", computeMs, "head_ms", float64(time.Since(headStart).Microseconds())/1000,
			"total_ms", float64(time.Since(stepStart).Microseconds())/1000)
	}
	s.statsMu.Lock()
	s.stats.Steps++
	s.stats.Tokens += uint64(rows)
	s.stats.WireBytes += wireBytes
	s.stats.StageMillis = stageMs
	s.stats.LastStep = time.Now()
	s.statsMu.Unlock()
	return nil
}
