package controlplane

import (
	"github.com/phalanx-llm/phalanx/internal/observe"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
)

// tracer names the spans Phalanx makes itself (request, stage step, worker step).
var tracer = otel.Tracer("github.com/phalanx-llm/phalanx/pipeline/controlplane")

// metrics are the coordinator's Prometheus metrics (requests and tokens;
// the data plane registers its own), registered by NewCoordinator on
// Config.Registerer.
type metrics struct {
	Requests        *prometheus.CounterVec
	PromptTokens    prometheus.Counter
	GeneratedTokens prometheus.Counter
	TimeToFirst     prometheus.Histogram
	InterToken      prometheus.Histogram
}

// newMetrics registers the coordinator's metrics on reg, with gauges that
// read c's live state.
func newMetrics(reg prometheus.Registerer, c *Coordinator) *metrics {
	m := &metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phalanx_requests_total",
			Help: "Generation requests by outcome (ok, error, canceled, refused)."}, []string{"outcome"}),
		PromptTokens: prometheus.NewCounter(prometheus.CounterOpts{Name: "phalanx_prompt_tokens_total",
			Help: "Prompt tokens processed."}),
		GeneratedTokens: prometheus.NewCounter(prometheus.CounterOpts{Name: "phalanx_generated_tokens_total",
			Help: "Tokens generated (rate() of it is tokens per second)."}),
		TimeToFirst: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "phalanx_time_to_first_token_seconds",
			Help: "Time from request to first token.", Buckets: observe.LatencyBuckets}),
		InterToken: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "phalanx_inter_token_latency_seconds",
			Help: "Time between consecutive tokens of a request.", Buckets: observe.LatencyBuckets}),
	}
	reg.MustRegister(m.Requests, m.PromptTokens, m.GeneratedTokens, m.TimeToFirst, m.InterToken,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_max_sessions", Help: "Generations admitted to run at once."},
			func() float64 { return float64(c.admit.Stats().Limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_admission_queue", Help: "Requests waiting for a session."},
			func() float64 { return float64(c.admit.Stats().Queued) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_leader", Help: "1 when this coordinator leads the cluster."},
			func() float64 {
				if c.Leading() {
					return 1
				}
				return 0
			}),
	)
	return m
}
