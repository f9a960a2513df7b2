package dataplane

import (
	"github.com/phalanx-llm/phalanx/internal/observe"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
)

// tracer names the coordinator's stage-step spans.
var tracer = otel.Tracer("github.com/phalanx-llm/phalanx/pipeline/dataplane")

// metrics are the data plane's Prometheus metrics, registered by
// NewScheduler on Config.Registerer.
type metrics struct {
	StageStep     *prometheus.HistogramVec
	StageCompute  *prometheus.HistogramVec
	WireBytes     *prometheus.CounterVec
	BatchSessions prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, s *Scheduler) *metrics {
	m := &metrics{
		StageStep: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "phalanx_stage_step_seconds",
			Help: "Round trip of one step to one stage.", Buckets: observe.LatencyBuckets}, []string{"stage", "worker"}),
		StageCompute: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "phalanx_stage_compute_seconds",
			Help:    "A stage's own compute time for one step, as it reports it: the step's round trip less this is network and queueing.",
			Buckets: observe.LatencyBuckets}, []string{"stage", "worker"}),
		WireBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "phalanx_wire_bytes_total",
			Help: "Activation bytes sent to each stage (per hop)."}, []string{"worker"}),
		BatchSessions: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "phalanx_step_sessions",
			Help: "Sessions per micro-batch step.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64}}),
	}
	reg.MustRegister(m.StageStep, m.StageCompute, m.WireBytes, m.BatchSessions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_queue_depth", Help: "Steps waiting for a micro-batch."},
			func() float64 { return float64(s.QueueDepth()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_active_sessions", Help: "Open generation sessions."},
			func() float64 { return float64(s.ActiveSessions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phalanx_plan_epoch", Help: "Epoch of the plan routed to (0: none)."},
			func() float64 {
				if r := s.Route(); r != nil {
					return float64(r.Epoch)
				}
				return 0
			}),
	)
	return m
}
