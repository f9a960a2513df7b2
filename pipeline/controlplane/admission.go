package controlplane

import (
	"github.com/phalanx-llm/phalanx/pipeline/dataplane"
	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// LabelMaxStepRows is the worker label that publishes the rows its stage
// takes in one step.
const LabelMaxStepRows = "max_step_rows"

// LabelHost is the worker label that names its machine.
const LabelHost = "host"

// LabelThreads and LabelCPUs are the worker labels that publish its kernel
// threads and the CPUs of its machine: stages that share a machine compute
// at the same time only as far as their threads fit its CPUs
// (parallelStages).
const (
	LabelThreads = "threads"
	LabelCPUs    = "cpus"
)

// LabelKernels is the worker label that names its kernel set (AVX-512,
// AVX2, NEON, generic): workers on different sets may round differently.
const LabelKernels = "kernels"

// LabelKVCache is the worker label that lists the KV cache dtypes its
// stage keeps as a step's kv_dtype asks ("f32,f16"). A worker without it
// predates kv_dtype and keeps float32 whatever a step asks.
const LabelKVCache = "kv_cache"

// LabelSpeed is the worker label that says where its speed came from:
// SpeedCalibrated (timed at start, the default) or SpeedGiven (--speed).
const (
	LabelSpeed      = "speed"
	SpeedCalibrated = "calibrated"
	SpeedGiven      = "given"
)

// defaultMaxSessions is the session limit before a plan gives the workers'
// budgets.
const defaultMaxSessions = 64

// sessionTokensBudgeted is the length a session is assumed to reach when the
// session limit is derived from KV cache budgets: long enough for a chat
// turn, a quarter of Phi-2's window.
const sessionTokensBudgeted = 512

// AutoMaxSessions derives the session limit from the plan: for each stage,
// the KV cache budget its worker has left after its layers (what it offers,
// less the weights and the worker's reserve) divided by the cache of one
// sessionTokensBudgeted-token session over its layers (keys and values of
// kvBytes bytes each: 4 for float32, 2 for F16); the smallest stage decides, within [4, dataplane.MaxQueuedSteps/2].
// Sessions that grow longer are still served while the budget lasts; a
// worker out of budget refuses the step with RESOURCE_EXHAUSTED.
func AutoMaxSessions(plan shard.Plan, workers map[string]registry.WorkerRecord, size shard.ModelSize, kvDim, kvBytes int) int {
	limit := dataplane.MaxQueuedSteps / 2
	for _, st := range plan.Stages {
		layers := uint64(st.End - st.Start)
		w, ok := workers[st.WorkerID]
		if !ok || layers == 0 {
			continue
		}
		used := layers*size.LayerBytes + DefaultWorkerReserve
		if w.MemoryFree <= used {
			limit = min(limit, 4)
			continue
		}
		perSession := layers * sessionTokensBudgeted * uint64(kvDim) * 2 * uint64(kvBytes)
		limit = min(limit, int((w.MemoryFree-used)/perSession))
	}
	return max(limit, 4)
}
