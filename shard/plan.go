package shard

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidPlan is wrapped by every error Plan.Validate returns.
var ErrInvalidPlan = errors.New("shard: invalid plan")

// WorkerInfo is what a worker reports about itself when it joins the
// cluster; the planner reads nothing else.
type WorkerInfo struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Version string `json:"version,omitempty"`
	// MemoryTotal and MemoryFree are in bytes. MemoryFree is the memory the
	// worker can give to layers, KV caches and its fixed overhead, counting
	// the memory its currently loaded layers occupy as free: the planner
	// decides from scratch what the worker holds.
	MemoryTotal uint64 `json:"memory_total"`
	MemoryFree  uint64 `json:"memory_free"`
	// Speed is the measured number of layer-steps per second this worker
	// runs for the served model's layer (one decode step of one layer);
	// higher is faster. A worker with Speed <= 0 has not been measured and
	// is never given layers.
	Speed  float64           `json:"speed"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Stage is one hop of the pipeline: one worker running layers [Start, End).
type Stage struct {
	WorkerID string `json:"worker_id"`
	Address  string `json:"address"`
	Start    int    `json:"start"`
	End      int    `json:"end"`
}

// Layers is the number of layers the stage runs.
func (s Stage) Layers() int { return s.End - s.Start }

// Plan assigns every decoder layer of a model to exactly one worker.
type Plan struct {
	// Epoch numbers plans; it only moves forward (see the registry).
	Epoch uint64 `json:"epoch"`
	// Model identifies the served model (name and weights digest, say);
	// workers refuse a plan for a model they were not started with.
	Model     string `json:"model"`
	NumLayers int    `json:"num_layers"`
	// Stages in pipeline order: Stages[0] starts at layer 0.
	Stages      []Stage   `json:"stages"`
	Explanation string    `json:"explanation,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// StageFor returns the stage that runs layer and its index in p.Stages.
// ok is false when no stage holds the layer.
func (p Plan) StageFor(layer int) (s Stage, index int, ok bool) {
	for i, st := range p.Stages {
		if layer >= st.Start && layer < st.End {
			return st, i, true
		}
	}
	return Stage{}, -1, false
}

// StageOf returns the stage run by the worker with the given ID and its
// index in p.Stages. ok is false when the worker runs no stage (a spare).
func (p Plan) StageOf(workerID string) (s Stage, index int, ok bool) {
	for i, st := range p.Stages {
		if st.WorkerID == workerID {
			return st, i, true
		}
	}
	return Stage{}, -1, false
}

// SameAssignment reports whether p and q run the same model with the same
// workers, at the same addresses, holding the same layers in the same
// order. Epoch, Explanation and CreatedAt are ignored: a coordinator uses
// this to avoid publishing a new epoch that changes nothing.
func (p Plan) SameAssignment(q Plan) bool {
	if p.Model != q.Model || p.NumLayers != q.NumLayers || len(p.Stages) != len(q.Stages) {
		return false
	}
	for i := range p.Stages {
		if p.Stages[i] != q.Stages[i] {
			return false
		}
	}
	return true
}

// Validate checks the plan's shape: at least one layer, stages that are
// non-empty, contiguous and in order, cover [0, NumLayers) exactly, and
// name distinct, non-empty workers. It does not check capacities.
func (p Plan) Validate() error {
	if p.NumLayers <= 0 {
		return fmt.Errorf("%w: %d layers", ErrInvalidPlan, p.NumLayers)
	}
	if len(p.Stages) == 0 {
		return fmt.Errorf("%w: no stages", ErrInvalidPlan)
	}
	seen := make(map[string]bool, len(p.Stages))
	next := 0
	for i, s := range p.Stages {
		if s.WorkerID == "" {
			return fmt.Errorf("%w: stage %d has no worker", ErrInvalidPlan, i)
		}
		if seen[s.WorkerID] {
			return fmt.Errorf("%w: worker %q runs two stages", ErrInvalidPlan, s.WorkerID)
		}
		seen[s.WorkerID] = true
		if s.Start != next {
			return fmt.Errorf("%w: stage %d (%s) starts at layer %d, want %d", ErrInvalidPlan, i, s.WorkerID, s.Start, next)
		}
		if s.End <= s.Start {
			return fmt.Errorf("%w: stage %d (%s) is empty: [%d,%d)", ErrInvalidPlan, i, s.WorkerID, s.Start, s.End)
		}
		next = s.End
	}
	if next != p.NumLayers {
		return fmt.Errorf("%w: stages end at layer %d, model has %d", ErrInvalidPlan, next, p.NumLayers)
	}
	return nil
}

// MovedLayers is the number of layers the workers of to must load because
// they did not hold them in from: the cost of switching plans.
func MovedLayers(from, to Plan) int {
	moved := 0
	for _, s := range to.Stages {
		old, _, ok := from.StageOf(s.WorkerID)
		overlap := 0
		if ok {
			overlap = max(0, min(old.End, s.End)-max(old.Start, s.Start))
		}
		moved += s.Layers() - overlap
	}
	return moved
}
