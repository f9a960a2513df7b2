package stage

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/engine/kernels"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
)

// Config configures a worker's stage server.
type Config struct {
	WorkerID string
	Version  string
	// MaxStepRows bounds the rows (tokens) of one step; default 8192.
	MaxStepRows int
	// MaxSpans bounds the sessions of one step; default 1024.
	MaxSpans int
	// CacheBudget bounds the bytes of all KV caches; 0 means no bound.
	CacheBudget int64
	// IdleTimeout frees a session's cache after this long unused; default 10m.
	IdleTimeout time.Duration
	// StepDelay is added before every step: a testing aid that makes a fast
	// model slow enough to interrupt at a chosen moment.
	StepDelay time.Duration
	// ReplyDelay holds every message to the coordinator (answers and
	// heartbeats) this long before sending it: a testing aid that behaves
	// like a network of that round-trip time. The worker goes on computing
	// queued steps meanwhile, and messages leave in order.
	ReplyDelay time.Duration
	// Heartbeat is how often a running step tells the coordinator it is
	// alive (StageResponse.progress); default 1 s.
	Heartbeat time.Duration
	// Registerer, if set, gets the worker's Prometheus metrics.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

func (c *Config) defaults() {
	if c.MaxStepRows <= 0 {
		c.MaxStepRows = 8192
	}
	if c.MaxSpans <= 0 {
		c.MaxSpans = 1024
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

const maxSessionID = 256

// Server serves the Stage service over the layers a worker holds.
type Server struct {
	phalanxpb.UnimplementedStageServer
	cfg     Config
	metrics *metrics // nil without Config.Registerer

	mu       sync.Mutex // guards the fields below
	model    *engine.Model
	epoch    uint64
	budget   int64  // KV cache bytes allowed; 0: no bound
	midStep  func() // tests: runs while a step's sessions are marked busy
	sessions map[string]*stageSession

	compute sync.Mutex // one step at a time: a step already uses every core
}

var _ phalanxpb.StageServer = (*Server)(nil)

// stageSession is one session's KV cache. Steps hold it by pointer while
// they compute (busy > 0) with s.mu released: Release and idle eviction may
// drop it from the map meanwhile, which frees it once the step is done.
type stageSession struct {
	cache    *engine.KVCache
	lastUsed time.Time
	busy     int // steps computing on it; idle eviction skips it
	// dropped is set when the session left the map while busy: the last
	// step on it returns its cache's memory.
	dropped bool
	// bytes is the cache's size after its last step: read under s.mu by
	// Stats and the budget, while a step may be growing the cache itself.
	bytes int64
}

// dropLocked removes session id and returns its cache's memory to the pool,
// at once or, if a step is computing on it, when that step ends. s.mu held.
func (s *Server) dropLocked(id string) {
	ss := s.sessions[id]
	if ss == nil {
		return
	}
	delete(s.sessions, id)
	if ss.busy > 0 {
		ss.dropped = true
		return
	}
	ss.cache.Release()
}

// dropAllLocked removes every session; no step may be computing (s.compute
// held). s.mu held.
func (s *Server) dropAllLocked() {
	for id := range s.sessions {
		s.dropLocked(id)
	}
}

// NewServer returns a server that holds no layers yet.
func NewServer(cfg Config) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg, budget: cfg.CacheBudget, sessions: map[string]*stageSession{}}
	if cfg.Registerer != nil {
		s.metrics = newMetrics(cfg.Registerer, s)
	}
	return s
}

// Install makes m the served layers, ready for epoch. Sessions whose caches
// belong to another layer range are dropped (the coordinator replays them);
// the previous model is closed once no step uses it.
func (s *Server) Install(m *engine.Model, epoch uint64) {
	s.compute.Lock()
	defer s.compute.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.model
	if old != nil && old.Layers != m.Layers {
		s.dropAllLocked()
	}
	s.model, s.epoch = m, epoch
	if old != nil && old != m {
		old.Close()
	}
}

// Unload frees the layers and every session: the worker is a spare.
func (s *Server) Unload() {
	s.compute.Lock()
	defer s.compute.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.model != nil {
		s.model.Close()
		s.model = nil
	}
	s.dropAllLocked()
}

// MaxStepRows is the most rows (tokens) a step may carry.
func (s *Server) MaxStepRows() int { return s.cfg.MaxStepRows }

// SetCacheBudget changes the bytes all KV caches may use (0: no bound).
func (s *Server) SetCacheBudget(b int64) {
	s.mu.Lock()
	s.budget = b
	s.mu.Unlock()
}

// SetEpoch marks the held layers ready for a new plan epoch that keeps them.
func (s *Server) SetEpoch(epoch uint64) {
	s.mu.Lock()
	s.epoch = epoch
	s.mu.Unlock()
}

// Held returns the layer range held and the epoch it is ready for.
func (s *Server) Held() (engine.LayerRange, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.model == nil {
		return engine.LayerRange{}, 0, false
	}
	return s.model.Layers, s.epoch, true
}

// Stats reports the sessions held and the bytes their caches use.
func (s *Server) Stats() (sessions int, cacheBytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions), s.cacheBytesLocked()
}

func (s *Server) cacheBytesLocked() int64 {
	var n int64
	for _, ss := range s.sessions {
		n += ss.bytes
	}
	return n
}

// Close frees the layers and every session.
func (s *Server) Close() { s.Unload() }

// Run evicts idle sessions until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(max(s.cfg.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.evictIdle(now)
		}
	}
}

func (s *Server) evictIdle(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.sessions {
		if ss.busy == 0 && now.Sub(ss.lastUsed) > s.cfg.IdleTimeout {
			s.dropLocked(id)
			s.cfg.Logger.Info("session evicted after idle timeout", "session", id, "idle", now.Sub(ss.lastUsed).Round(time.Second))
		}
	}
}

// step validates and runs one request; on error nothing has changed. A
// step whose ctx ends (cancelled, or its stream gone) stops between layers
// with CANCELLED.
func (s *Server) step(ctx context.Context, req *phalanxpb.StageRequest, resp *phalanxpb.StageResponse, buf []float32) ([]float32, error) {
	if ctx.Err() != nil {
		return buf, status.Error(codes.Canceled, "stage: step cancelled")
	}
	s.compute.Lock()
	defer s.compute.Unlock()
	if ctx.Err() != nil {
		return buf, status.Error(codes.Canceled, "stage: step cancelled")
	}
	s.mu.Lock()
	m, epoch := s.model, s.epoch
	s.mu.Unlock()
	if m == nil {
		return buf, status.Error(codes.Unavailable, "stage: no layers loaded yet")
	}
	if req.GetEpoch() != epoch {
		return buf, status.Errorf(codes.FailedPrecondition, "stage: step for plan epoch %d, worker is ready for epoch %d", req.GetEpoch(), epoch)
	}
	if int(req.GetLayerStart()) != m.Layers.Start || int(req.GetLayerEnd()) != m.Layers.End {
		return buf, status.Errorf(codes.FailedPrecondition, "stage: step for layers [%d,%d), worker holds %v", req.GetLayerStart(), req.GetLayerEnd(), m.Layers)
	}
	spans := req.GetSpans()
	if len(spans) == 0 || len(spans) > s.cfg.MaxSpans {
		return buf, status.Errorf(codes.InvalidArgument, "stage: %d sessions in a step, want 1 to %d", len(spans), s.cfg.MaxSpans)
	}
	rows := 0
	for i, sp := range spans {
		if id := sp.GetSessionId(); id == "" || len(id) > maxSessionID {
			return buf, status.Errorf(codes.InvalidArgument, "stage: span %d: session id must have 1 to %d bytes", i, maxSessionID)
		}
		if sp.GetTokens() <= 0 || sp.GetPosition() < 0 {
			return buf, status.Errorf(codes.InvalidArgument, "stage: span %d: %d tokens at position %d", i, sp.GetTokens(), sp.GetPosition())
		}
		if int(sp.GetTokens()) > s.cfg.MaxStepRows-rows {
			return buf, status.Errorf(codes.InvalidArgument, "stage: more than %d rows in a step (%d in its first %d of %d sessions)",
				s.cfg.MaxStepRows, rows+int(sp.GetTokens()), i+1, len(spans))
		}
		rows += int(sp.GetTokens())
		if int(sp.GetPosition())+int(sp.GetTokens()) > m.Config.MaxPositionEmbeddings {
			return buf, status.Errorf(codes.OutOfRange, "stage: session %q: positions %d..%d exceed the %d-token context window",
				sp.GetSessionId(), sp.GetPosition(), int(sp.GetPosition())+int(sp.GetTokens()), m.Config.MaxPositionEmbeddings)
		}
	}
	H := m.Config.HiddenSize
	x, got, err := wire.DecodeF32(req.GetHidden(), H, rows, buf)
	if err != nil {
		return buf, status.Errorf(codes.InvalidArgument, "stage: hidden: %v", err)
	}
	buf = x
	if got != rows {
		return buf, status.Errorf(codes.InvalidArgument, "stage: hidden has %d rows, spans add up to %d", got, rows)
	}
	replyDType := req.GetReplyDtype()
	if replyDType == phalanxpb.DType_DTYPE_UNSPECIFIED {
		replyDType = req.GetHidden().GetDtype()
	}
	if _, err := wire.EncodeF32(0, H, nil, replyDType); err != nil {
		return buf, status.Errorf(codes.InvalidArgument, "stage: reply dtype %v: %v", replyDType, err)
	}

	kv := kernels.F32
	switch req.GetKvDtype() {
	case phalanxpb.DType_DTYPE_UNSPECIFIED, phalanxpb.DType_DTYPE_F32:
	case phalanxpb.DType_DTYPE_F16:
		kv = kernels.F16
	default:
		return buf, status.Errorf(codes.InvalidArgument, "stage: KV cache dtype %v: want F32 or F16", req.GetKvDtype())
	}

	// Resolve sessions and check positions and memory before touching any
	// cache. New sessions enter the map at once, marked busy, so a Release
	// that arrives while the step computes removes them for good.
	s.mu.Lock()
	sessions := make([]*stageSession, len(spans))
	// restart holds the new caches of sessions that start again at
	// position 0 with their keys and values kept otherwise than before:
	// put in place only once the step is accepted.
	// (Rare: made only when needed, not on every step.)
	var restart map[int]*engine.KVCache
	var fresh []string
	undo := func() { // on refusal: forget the sessions this step made
		for _, id := range fresh {
			if ss := s.sessions[id]; ss != nil && ss.busy == 0 && ss.cache.Len() == 0 {
				s.dropLocked(id)
			}
		}
	}
	var grow int64
	seen := make(map[string]bool, len(spans))
	for i, sp := range spans {
		id := sp.GetSessionId()
		if seen[id] {
			undo()
			s.mu.Unlock()
			return buf, status.Errorf(codes.InvalidArgument, "stage: session %q appears twice in one step", id)
		}
		seen[id] = true
		ss := s.sessions[id]
		if ss == nil {
			c, _ := m.NewCacheOf(kv) // kv is F32 or F16
			ss = &stageSession{cache: c, lastUsed: time.Now()}
			s.sessions[id] = ss
			fresh = append(fresh, id)
		}
		held, pos := ss.cache.Len(), int(sp.GetPosition())
		if pos > held {
			undo()
			s.mu.Unlock()
			return buf, status.Errorf(codes.FailedPrecondition, "stage: session %q: step at position %d, worker holds %d positions (replay from %d)", id, pos, held, held)
		}
		cache := ss.cache
		if cache.DType() != kv {
			if pos > 0 || ss.busy > 0 {
				undo()
				s.mu.Unlock()
				return buf, status.Errorf(codes.InvalidArgument, "stage: session %q keeps its keys and values as %v; a step at position %d asks %v",
					id, cache.DType(), pos, kv)
			}
			cache, _ = m.NewCacheOf(kv)
			if restart == nil {
				restart = make(map[int]*engine.KVCache)
			}
			restart[i], held = cache, 0
		}
		grow += cache.BytesFor(pos+int(sp.GetTokens())) - cache.BytesFor(held)
		sessions[i] = ss
	}
	if b := s.budget; b > 0 && s.cacheBytesLocked()+grow > b {
		used := s.cacheBytesLocked()
		undo()
		n := len(s.sessions)
		s.mu.Unlock()
		return buf, status.Errorf(codes.ResourceExhausted, "stage: KV caches would need %d more bytes; %d of %d in use by %d sessions",
			grow, used, b, n)
	}
	for i, c := range restart {
		sessions[i].cache.Release()
		sessions[i].cache, sessions[i].bytes = c, 0
	}
	for _, ss := range sessions {
		ss.busy++
	}
	s.mu.Unlock()
	if s.midStep != nil {
		s.midStep()
	}

	es := make([]engine.Span, len(spans))
	for i, sp := range spans {
		if pos := int(sp.GetPosition()); pos < sessions[i].cache.Len() {
			// Replay or rollback; cannot fail: pos is in [0, Len).
			_ = sessions[i].cache.Truncate(pos)
		}
		es[i] = engine.Span{Cache: sessions[i].cache, Tokens: int(sp.GetTokens())}
	}
	start := time.Now()
	err = m.ForwardContext(ctx, x, es)
	s.mu.Lock()
	now := time.Now()
	for _, ss := range sessions {
		ss.busy--
		ss.lastUsed = now
		ss.bytes = ss.cache.Bytes() // no other step runs: s.compute is held
		if ss.dropped && ss.busy == 0 {
			ss.cache.Release()
		}
	}
	if err != nil {
		undo()
	}
	s.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return buf, status.Error(codes.Canceled, "stage: step cancelled")
		}
		// Shapes were checked above; what is left is a programming error.
		return buf, status.Errorf(codes.Internal, "stage: forward: %v", err)
	}
	resp.ComputeMs = float64(time.Since(start).Microseconds()) / 1000
	resp.Hidden = new(phalanxpb.Tensor)
	if err := wire.EncodeF32Into(resp.Hidden, rows, H, x, replyDType); err != nil {
		return buf, status.Errorf(codes.Internal, "stage: encode: %v", err)
	}
	return buf, nil
}

// Release frees sessions' caches; unknown ids are ignored.
func (s *Server) Release(_ context.Context, req *phalanxpb.ReleaseRequest) (*phalanxpb.ReleaseResponse, error) {
	if n := len(req.GetSessionIds()); n > 100000 {
		return nil, status.Errorf(codes.InvalidArgument, "release: %d ids in one call", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int32
	for _, id := range req.GetSessionIds() {
		if _, ok := s.sessions[id]; ok {
			s.dropLocked(id)
			n++
		}
	}
	return &phalanxpb.ReleaseResponse{Released: n}, nil
}

// Info describes what the worker holds.
func (s *Server) Info(context.Context, *phalanxpb.InfoRequest) (*phalanxpb.InfoResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &phalanxpb.InfoResponse{WorkerId: s.cfg.WorkerID, Version: s.cfg.Version, ReadyEpoch: s.epoch,
		KvCacheBytes: uint64(s.cacheBytesLocked()), Sessions: int32(len(s.sessions)), Goroutines: int32(runtime.NumGoroutine())}
	if s.model != nil {
		r.LayerStart, r.LayerEnd = int32(s.model.Layers.Start), int32(s.model.Layers.End)
	}
	return r, nil
}
