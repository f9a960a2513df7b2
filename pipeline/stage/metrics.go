package stage

import (
	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/internal/observe"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
)

// tracer names the worker's step spans.
var tracer = otel.Tracer("github.com/phalanx-llm/phalanx/pipeline/stage")

// metrics are a worker's Prometheus metrics, registered by NewServer on
// Config.Registerer.
type metrics struct {
	Steps    *prometheus.CounterVec
	StepTime prometheus.Histogram
	Rows     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	m := &metrics{
		Steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phalanx_worker_steps_total",
			Help: "Steps answered, by status code (OK or the rejection's code)."}, []string{"code"}),
		StepTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "phalanx_worker_step_seconds",
			Help: "Compute time of one step.", Buckets: observe.LatencyBuckets}),
		Rows: prometheus.NewCounter(prometheus.CounterOpts{Name: "phalanx_worker_rows_total",
			Help: "Token rows computed."}),
	}
	reg.MustRegister(m.Steps, m.StepTime, m.Rows,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_worker_kv_cache_bytes", Help: "Bytes held by KV caches."},
			func() float64 { _, b := s.Stats(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_worker_kv_pool_bytes",
			Help: "Bytes the process has mapped for KV cache blocks, in use or kept free for the next sessions."},
			func() float64 { b, _ := engine.KVPoolBytes(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_worker_sessions", Help: "Sessions holding a KV cache."},
			func() float64 { n, _ := s.Stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_worker_layers", Help: "Decoder layers held."},
			func() float64 { r, _, _ := s.Held(); return float64(r.Len()) }),
	)
	return m
}
