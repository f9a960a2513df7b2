package tests

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a stand-in OpenTelemetry collector: it accepts OTLP/HTTP
// trace exports and keeps the spans.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []receivedSpan
	addr  string
}

type receivedSpan struct {
	service, instance, name, traceID string
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var ex collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &ex); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range ex.GetResourceSpans() {
			attrs := map[string]string{}
			for _, a := range rs.GetResource().GetAttributes() {
				attrs[a.GetKey()] = a.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					r.spans = append(r.spans, receivedSpan{attrs["service.name"], attrs["service.instance.id"], sp.GetName(), hex.EncodeToString(sp.GetTraceId())})
				}
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Write(out)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *otlpReceiver) snapshot() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedSpan(nil), r.spans...)
}

// One request's trace holds the coordinator's spans and every worker's,
// under one trace id; /metrics serves the Prometheus metrics.
func TestTracingAndMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	recv := startOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+recv.addr)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	httpAddr, wm := freeAddr(t), freeAddr(t)
	c := startCluster(t, fixture(t, "phi-tiny-f32"), clusterOpts{workers: 0, coordArgs: []string{"--http", httpAddr, "--min-workers", "3"}})
	c.addWorker("w1", "--speed", "200", "--metrics", wm) // faster: the plan uses all three
	c.addWorker("w2", "--speed", "100")
	c.addWorker("w3", "--speed", "100")
	st := c.waitEpoch(0, 30*time.Second)
	if len(st.GetStages()) != 3 {
		t.Fatalf("want 3 stages, got %v", st.GetStages())
	}
	if _, _, _, err := c.generate(context.Background(), tokenRequest([]int{1, 2, 3}, 4)); err != nil {
		t.Fatal(err)
	}
	// Find the request's trace and wait for every process's spans in it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		spans := recv.snapshot()
		var traceID string
		for _, s := range spans {
			if s.name == "phalanx.generate" {
				traceID = s.traceID
			}
		}
		workers := map[string]bool{}
		stageSteps := 0
		for _, s := range spans {
			if s.traceID != traceID || traceID == "" {
				continue
			}
			if s.service == "phalanx-worker" && s.name == "phalanx.worker_step" {
				workers[s.instance] = true
			}
			if s.service == "phalanx-coordinator" && s.name == "phalanx.stage_step" {
				stageSteps++
			}
		}
		if len(workers) == 3 && stageSteps >= 3*4 {
			t.Logf("trace %s: coordinator stage steps %d, workers %v", traceID, stageSteps, workers)
			break
		}
		if time.Now().After(deadline) {
			for _, s := range spans {
				t.Logf("span %s/%s %s trace %s", s.service, s.instance, s.name, s.traceID)
			}
			t.Fatalf("trace %q has workers %v and %d stage steps; spans received: %d", traceID, workers, stageSteps, len(spans))
		}
		time.Sleep(200 * time.Millisecond)
	}
	get := func(url string) string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	cm := get("http://" + httpAddr + "/metrics")
	for _, want := range []string{"phalanx_generated_tokens_total 4", "phalanx_requests_total{outcome=\"ok\"} 1",
		"phalanx_time_to_first_token_seconds_count 1", "phalanx_inter_token_latency_seconds_count 3",
		"phalanx_stage_step_seconds_bucket", "phalanx_wire_bytes_total", "phalanx_queue_depth 0", "go_goroutines"} {
		if !strings.Contains(cm, want) {
			t.Errorf("coordinator /metrics lacks %q", want)
		}
	}
	wmet := get("http://" + wm + "/metrics")
	for _, want := range []string{"phalanx_worker_kv_cache_bytes", "phalanx_worker_steps_total{code=\"OK\"}", "phalanx_worker_layers", "process_resident_memory_bytes"} {
		if !strings.Contains(wmet, want) {
			t.Errorf("worker /metrics lacks %q", want)
		}
	}
}
