package controlplane

import (
	"fmt"
	"testing"

	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// The micro-batches a route keeps in flight: one per stage that can compute
// while the others do — every stage on a machine of its own, and on a
// shared machine as many as the workers' threads fit its CPUs.
func TestParallelStages(t *testing.T) {
	type w struct{ host, cpus, threads string }
	for _, tc := range []struct {
		name    string
		workers []w
		want    int
	}{
		{"machines unknown", []w{{"", "2", "1"}, {"a", "2", "1"}}, 0},
		{"one machine, every worker on every CPU", []w{{"a", "2", "2"}, {"a", "2", "2"}}, 1},
		{"one machine, a CPU each", []w{{"a", "2", "1"}, {"a", "2", "1"}}, 2},
		{"one machine, threads for two of three", []w{{"a", "4", "2"}, {"a", "4", "2"}, {"a", "4", "2"}}, 2},
		{"one machine, one worker wants every CPU", []w{{"a", "4", "1"}, {"a", "4", "4"}}, 1},
		{"one machine, a worker that publishes nothing", []w{{"a", "8", "1"}, {"a", "", ""}}, 1},
		{"two machines, all CPUs each", []w{{"a", "2", "2"}, {"b", "2", "2"}}, 2},
		{"two machines, one shared by two", []w{{"a", "2", "2"}, {"a", "2", "2"}, {"b", "2", "2"}}, 2},
		{"more CPUs than stages", []w{{"a", "64", "1"}, {"a", "64", "1"}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			workers := map[string]registry.WorkerRecord{}
			var stages []shard.Stage
			for i, wk := range tc.workers {
				id := fmt.Sprint("w", i)
				labels := map[string]string{LabelHost: wk.host}
				if wk.cpus != "" {
					labels[LabelCPUs], labels[LabelThreads] = wk.cpus, wk.threads
				}
				workers[id] = registry.WorkerRecord{WorkerInfo: shard.WorkerInfo{ID: id, Labels: labels}}
				stages = append(stages, shard.Stage{WorkerID: id, Start: i, End: i + 1})
			}
			if got := parallelStages(stages, workers); got != tc.want {
				t.Errorf("parallelStages = %d, want %d", got, tc.want)
			}
		})
	}
}
