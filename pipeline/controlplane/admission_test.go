package controlplane

import (
	"testing"

	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// The derived session limit counts each session's keys and values at the
// cache's width: F16 fits twice the sessions of float32 in the same memory,
// and the stage with the least room decides.
func TestAutoMaxSessionsKVBytes(t *testing.T) {
	size := shard.ModelSize{NumLayers: 32, LayerBytes: 100 << 20}
	plan := shard.Plan{Stages: []shard.Stage{{WorkerID: "a", Start: 0, End: 16}, {WorkerID: "b", Start: 16, End: 32}}}
	const kvDim = 2560
	per32 := uint64(16 * sessionTokensBudgeted * kvDim * 2 * 4) // one session over 16 layers, float32
	used := 16*size.LayerBytes + DefaultWorkerReserve
	workers := map[string]registry.WorkerRecord{
		"a": {WorkerInfo: shard.WorkerInfo{ID: "a", MemoryFree: used + 10*per32}},
		"b": {WorkerInfo: shard.WorkerInfo{ID: "b", MemoryFree: used + 20*per32}},
	}
	if got := AutoMaxSessions(plan, workers, size, kvDim, 4); got != 10 {
		t.Errorf("float32: %d sessions, want 10", got)
	}
	if got := AutoMaxSessions(plan, workers, size, kvDim, 2); got != 20 {
		t.Errorf("F16: %d sessions, want 20", got)
	}
}
