package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
)

// tracer names the spans Phalanx makes itself (request, stage step, worker step).
var tracer = otel.Tracer("github.com/phalanx-llm/phalanx/pipeline")

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// CoordinatorMetrics are the coordinator's Prometheus metrics.
type CoordinatorMetrics struct {
	Requests        *prometheus.CounterVec
	PromptTokens    prometheus.Counter
	GeneratedTokens prometheus.Counter
	TimeToFirst     prometheus.Histogram
	InterToken      prometheus.Histogram
	StageStep       *prometheus.HistogramVec
	WireBytes       *prometheus.CounterVec
	BatchSessions   prometheus.Histogram
}

// NewCoordinatorMetrics registers the coordinator's metrics on reg, with
// gauges that read c's live state.
func NewCoordinatorMetrics(reg prometheus.Registerer, c *Coordinator) *CoordinatorMetrics {
	m := &CoordinatorMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phalanx_requests_total",
			Help: "Generation requests by outcome (ok, error, canceled, refused)."}, []string{"outcome"}),
		PromptTokens: prometheus.NewCounter(prometheus.CounterOpts{Name: "phalanx_prompt_tokens_total",
			Help: "Prompt tokens processed."}),
		GeneratedTokens: prometheus.NewCounter(prometheus.CounterOpts{Name: "phalanx_generated_tokens_total",
			Help: "Tokens generated (rate() of it is tokens per second)."}),
		TimeToFirst: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "phalanx_time_to_first_token_seconds",
			Help: "Time from request to first token.", Buckets: latencyBuckets}),
		InterToken: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "phalanx_inter_token_latency_seconds",
			Help: "Time between consecutive tokens of a request.", Buckets: latencyBuckets}),
		StageStep: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "phalanx_stage_step_seconds",
			Help: "Round trip of one step to one stage.", Buckets: latencyBuckets}, []string{"stage", "worker"}),
		WireBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phalanx_wire_bytes_total",
			Help: "Activation bytes sent to each stage (per hop)."}, []string{"worker"}),
		BatchSessions: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "phalanx_step_sessions",
			Help: "Sessions per micro-batch step.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64}}),
	}
	reg.MustRegister(m.Requests, m.PromptTokens, m.GeneratedTokens, m.TimeToFirst, m.InterToken, m.StageStep, m.WireBytes, m.BatchSessions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_queue_depth", Help: "Steps waiting for a micro-batch."},
			func() float64 { return float64(c.sched.QueueDepth()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_active_sessions", Help: "Open generation sessions."},
			func() float64 { return float64(c.sched.ActiveSessions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_max_sessions", Help: "Generations admitted to run at once."},
			func() float64 { return float64(c.admit.Stats().Limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_admission_queue", Help: "Requests waiting for a session."},
			func() float64 { return float64(c.admit.Stats().Queued) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_plan_epoch", Help: "Epoch of the plan routed to (0: none)."},
			func() float64 {
				if r := c.sched.Route(); r != nil {
					return float64(r.Epoch)
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_leader", Help: "1 when this coordinator leads the cluster."},
			func() float64 {
				if c.Leading() {
					return 1
				}
				return 0
			}),
	)
	c.metrics = m
	c.sched.metrics = m
	return m
}

// WorkerMetrics are a worker's Prometheus metrics.
type WorkerMetrics struct {
	Steps    *prometheus.CounterVec
	StepTime prometheus.Histogram
	Rows     prometheus.Counter
}

// NewWorkerMetrics registers a worker's metrics on reg.
func NewWorkerMetrics(reg prometheus.Registerer, s *StageServer) *WorkerMetrics {
	m := &WorkerMetrics{
		Steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phalanx_worker_steps_total",
			Help: "Steps answered, by status code (OK or the rejection's code)."}, []string{"code"}),
		StepTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "phalanx_worker_step_seconds",
			Help: "Compute time of one step.", Buckets: latencyBuckets}),
		Rows: prometheus.NewCounter(prometheus.CounterOpts{Name: "phalanx_worker_rows_total",
			Help: "Token rows computed."}),
	}
	reg.MustRegister(m.Steps, m.StepTime, m.Rows,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_worker_kv_cache_bytes", Help: "Bytes held by KV caches."},
			func() float64 { _, b := s.Stats(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_worker_sessions", Help: "Sessions holding a KV cache."},
			func() float64 { n, _ := s.Stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_worker_layers", Help: "Decoder layers held."},
			func() float64 { r, _, _ := s.Held(); return float64(r.Len()) }),
	)
	s.metrics = m
	return m
}
