package controlplane

import (
	"strings"
	"testing"

	"github.com/phalanx-llm/phalanx/shard"
)

func TestKernelMix(t *testing.T) {
	plan := shard.Plan{Stages: []shard.Stage{{WorkerID: "w1"}, {WorkerID: "w2"}, {WorkerID: "w3"}}}
	info := func(id, k string) shard.WorkerInfo {
		return shard.WorkerInfo{ID: id, Labels: map[string]string{LabelKernels: k}}
	}
	same := []shard.WorkerInfo{info("w1", "avx512"), info("w2", "avx512"), info("w3", "avx512"), info("spare", "avx2")}
	if got := kernelMix(plan, same); got != "" {
		t.Errorf("one set in the plan (a spare runs another): %q", got)
	}
	mixed := []shard.WorkerInfo{info("w3", "avx2"), info("w1", "avx512"), info("w2", "avx512")}
	got := kernelMix(plan, mixed)
	if !strings.Contains(got, "avx2: w3; avx512: w1, w2") {
		t.Errorf("mixed sets: %q", got)
	}
	if got := kernelMix(plan, []shard.WorkerInfo{{ID: "w1"}, info("w2", "avx2")}); got != "" {
		t.Errorf("a worker that does not say is no mix: %q", got)
	}
}
