package shard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	st := func(id string, a, b int) Stage { return Stage{WorkerID: id, Start: a, End: b} }
	tests := []struct {
		name   string
		plan   Plan
		errSub string // "" means valid
	}{
		{"one stage", Plan{NumLayers: 32, Stages: []Stage{st("a", 0, 32)}}, ""},
		{"three stages", Plan{NumLayers: 32, Stages: []Stage{st("a", 0, 10), st("b", 10, 21), st("c", 21, 32)}}, ""},
		{"no layers", Plan{NumLayers: 0}, "0 layers"},
		{"no stages", Plan{NumLayers: 32}, "no stages"},
		{"gap", Plan{NumLayers: 32, Stages: []Stage{st("a", 0, 10), st("b", 11, 32)}}, "starts at layer 11, want 10"},
		{"overlap", Plan{NumLayers: 32, Stages: []Stage{st("a", 0, 10), st("b", 9, 32)}}, "starts at layer 9"},
		{"not from zero", Plan{NumLayers: 32, Stages: []Stage{st("a", 1, 32)}}, "starts at layer 1"},
		{"short", Plan{NumLayers: 32, Stages: []Stage{st("a", 0, 31)}}, "end at layer 31"},
		{"long", Plan{NumLayers: 32, Stages: []Stage{st("a", 0, 33)}}, "end at layer 33"},
		{"empty stage", Plan{NumLayers: 32, Stages: []Stage{st("a", 0, 32), st("b", 32, 32)}}, "empty"},
		{"duplicate worker", Plan{NumLayers: 32, Stages: []Stage{st("a", 0, 16), st("a", 16, 32)}}, "two stages"},
		{"no worker", Plan{NumLayers: 32, Stages: []Stage{st("", 0, 32)}}, "no worker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.Validate()
			if tt.errSub == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), tt.errSub) {
				t.Fatalf("Validate() = %v, want ErrInvalidPlan containing %q", err, tt.errSub)
			}
		})
	}
}

func TestStageFor(t *testing.T) {
	p := Plan{NumLayers: 32, Stages: []Stage{{WorkerID: "a", Start: 0, End: 10}, {WorkerID: "b", Start: 10, End: 32}}}
	for _, tt := range []struct {
		layer int
		id    string
		index int
	}{{0, "a", 0}, {9, "a", 0}, {10, "b", 1}, {31, "b", 1}, {32, "", -1}, {-1, "", -1}} {
		s, i, ok := p.StageFor(tt.layer)
		if s.WorkerID != tt.id || i != tt.index || ok != (tt.index >= 0) {
			t.Errorf("StageFor(%d) = %q, %d, %v; want %q, %d", tt.layer, s.WorkerID, i, ok, tt.id, tt.index)
		}
	}
	if _, i, ok := p.StageOf("b"); !ok || i != 1 {
		t.Errorf("StageOf(b) = %d, %v", i, ok)
	}
	if _, _, ok := p.StageOf("z"); ok {
		t.Error("StageOf(z) found a stage")
	}
}

func TestCapacity(t *testing.T) {
	m := ModelSize{NumLayers: 32, LayerBytes: 170e6, KVBytesPerLayer: 10e6, FixedBytes: 500e6}
	for _, tt := range []struct {
		free uint64
		want int
	}{{0, 0}, {500e6, 0}, {679e6, 0}, {680e6, 1}, {2300e6, 10}, {100e9, 32}} {
		if got := m.Capacity(tt.free); got != tt.want {
			t.Errorf("Capacity(%d) = %d, want %d", tt.free, got, tt.want)
		}
	}
	if got := (ModelSize{NumLayers: 4}).Capacity(1); got != 4 {
		t.Errorf("Capacity with zero-size layers = %d, want 4", got)
	}
}

func TestMakePlanErrors(t *testing.T) {
	m := ModelSize{NumLayers: 32, LayerBytes: 170e6}
	w := func(id string, speed float64, mem uint64) WorkerInfo {
		return WorkerInfo{ID: id, Speed: speed, MemoryFree: mem}
	}
	tests := []struct {
		name    string
		m       ModelSize
		workers []WorkerInfo
		opts    PlanOptions
		want    error
		msg     string
	}{
		{"no layers", ModelSize{}, []WorkerInfo{w("a", 1, 1e9)}, PlanOptions{}, ErrInvalidModel, ""},
		{"no workers", m, nil, PlanOptions{}, ErrNotEnoughWorkers, "0 workers"},
		{"min workers", m, []WorkerInfo{w("a", 1, 1e12)}, PlanOptions{MinWorkers: 2}, ErrNotEnoughWorkers, "need at least 2"},
		{"unmeasured only", m, []WorkerInfo{w("a", 0, 1e12)}, PlanOptions{}, ErrNotEnoughWorkers, ""},
		{"duplicate", m, []WorkerInfo{w("a", 1, 1e12), w("a", 1, 1e12)}, PlanOptions{}, ErrInvalidWorker, `"a"`},
		{"empty id", m, []WorkerInfo{w("", 1, 1e12)}, PlanOptions{}, ErrInvalidWorker, ""},
		{"does not fit", m, []WorkerInfo{w("a", 1, 1.7e9), w("b", 1, 1.7e9)}, PlanOptions{}, ErrInsufficientMemory,
			"model needs 32 layers × 170 MB; the 2 workers can hold 20 layers; 2.0 GB more memory is needed (12 layers × 170 MB)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MakePlan(tt.m, tt.workers, tt.opts)
			if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Fatalf("MakePlan() = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

// bruteForce returns the optimal bottleneck and the fewest stages that
// reach it by trying every count vector.
func bruteForce(m ModelSize, ws []WorkerInfo) (best float64, stages int) {
	best, stages = -1, 0
	counts := make([]int, len(ws))
	var rec func(i, left int)
	rec = func(i, left int) {
		if i == len(ws) {
			if left != 0 {
				return
			}
			t, n := 0.0, 0
			for j, c := range counts {
				if c > 0 {
					t = max(t, float64(c)/ws[j].Speed)
					n++
				}
			}
			if best < 0 || t < best*(1-1e-9) || (t <= best*(1+1e-9) && n < stages) {
				best, stages = t, n
			}
			return
		}
		for c := 0; c <= min(left, m.Capacity(ws[i].MemoryFree)); c++ {
			counts[i] = c
			rec(i+1, left-c)
		}
		counts[i] = 0
	}
	rec(0, m.NumLayers)
	return best, stages
}

func bottleneckOf(p Plan, ws []WorkerInfo) float64 {
	speed := map[string]float64{}
	for _, w := range ws {
		speed[w.ID] = w.Speed
	}
	t := 0.0
	for _, s := range p.Stages {
		t = max(t, float64(s.Layers())/speed[s.WorkerID])
	}
	return t
}

func randomCluster(r *rand.Rand) (ModelSize, []WorkerInfo) {
	m := ModelSize{NumLayers: 1 + r.IntN(9), LayerBytes: 100, KVBytesPerLayer: 10, FixedBytes: 50}
	ws := make([]WorkerInfo, 1+r.IntN(4))
	for i := range ws {
		ws[i] = WorkerInfo{
			ID:         fmt.Sprintf("w%d", r.IntN(100)*10+i),
			Speed:      []float64{0.5, 1, 1, 2, 3, 0.3, 0.1, 7}[r.IntN(8)],
			MemoryFree: uint64(r.IntN(1200)),
		}
	}
	return m, ws
}

// TestMakePlanOptimal checks the planner against exhaustive search on
// small random clusters: optimal bottleneck, fewest stages on ties,
// capacities respected, the same plan whatever the input order.
func TestMakePlanOptimal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(0, 0)
	for i := range 3000 {
		m, ws := randomCluster(r)
		p, err := MakePlan(m, ws, PlanOptions{Now: now})
		best, stages := bruteForce(m, ws)
		if best < 0 {
			if !errors.Is(err, ErrInsufficientMemory) {
				t.Fatalf("case %d: %+v %+v: got %v, want ErrInsufficientMemory", i, m, ws, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %+v %+v: %v", i, m, ws, err)
		}
		if got := bottleneckOf(p, ws); got > best*(1+1e-9) {
			t.Fatalf("case %d: bottleneck %v, optimum %v\n%s", i, got, best, p.Explanation)
		}
		if len(p.Stages) != stages {
			t.Fatalf("case %d: %d stages, fewest at the optimum is %d\n%s", i, len(p.Stages), stages, p.Explanation)
		}
		for _, s := range p.Stages {
			for _, w := range ws {
				if w.ID == s.WorkerID && s.Layers() > m.Capacity(w.MemoryFree) {
					t.Fatalf("case %d: %s holds %d layers, capacity %d", i, w.ID, s.Layers(), m.Capacity(w.MemoryFree))
				}
			}
		}
		shuffled := append([]WorkerInfo(nil), ws...)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		q, _ := MakePlan(m, shuffled, PlanOptions{Now: now})
		if !p.SameAssignment(q) || p.Explanation != q.Explanation {
			t.Fatalf("case %d: input order changed the plan:\n%s\n%s", i, p.Explanation, q.Explanation)
		}
	}
}

// TestMakePlanStable checks the stability search on random changes to a
// cluster: the bottleneck stays within the tolerance, and no fresh plan
// makes fewer layers move.
func TestMakePlanStable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		m, ws := randomCluster(r)
		prev, err := MakePlan(m, ws, PlanOptions{})
		if err != nil {
			continue
		}
		// Change the cluster: drop one worker, maybe add one, maybe
		// re-measure one.
		next := append([]WorkerInfo(nil), ws[1:]...)
		if r.IntN(2) == 0 {
			next = append(next, WorkerInfo{ID: "new", Speed: float64(1 + r.IntN(3)), MemoryFree: uint64(r.IntN(1200))})
		}
		if len(next) > 0 && r.IntN(2) == 0 {
			next[0].Speed *= 1.1
		}
		fresh, err := MakePlan(m, next, PlanOptions{})
		if err != nil {
			continue
		}
		stable, err := MakePlan(m, next, PlanOptions{PreferStable: &prev})
		if err != nil {
			t.Fatalf("case %d: fresh plan exists but stable fails: %v", i, err)
		}
		best := bottleneckOf(fresh, next)
		if got := bottleneckOf(stable, next); got > best*(1+DefaultStableTolerance)*(1+1e-9) {
			t.Fatalf("case %d: stable bottleneck %v beyond tolerance of %v\n%s", i, got, best, stable.Explanation)
		}
		if a, b := MovedLayers(prev, stable), MovedLayers(prev, fresh); a > b {
			t.Fatalf("case %d: stable plan moves %d layers, fresh %d\n%s\n%s", i, a, b, stable.Explanation, fresh.Explanation)
		}
		if stable.Epoch != prev.Epoch+1 {
			t.Fatalf("case %d: epoch %d after %d", i, stable.Epoch, prev.Epoch)
		}
		// Re-planning the same cluster again moves nothing.
		again, err := MakePlan(m, next, PlanOptions{PreferStable: &stable})
		if err != nil || MovedLayers(stable, again) != 0 || !stable.SameAssignment(again) {
			t.Fatalf("case %d: re-plan of an unchanged cluster moved layers (%v)\n%s\n%s", i, err, stable.Explanation, again.Explanation)
		}
	}
}

func TestMakePlanPreferStableIgnored(t *testing.T) {
	m := ModelSize{NumLayers: 4, LayerBytes: 1}
	ws := []WorkerInfo{{ID: "a", Speed: 1, MemoryFree: 100}, {ID: "b", Speed: 1, MemoryFree: 100}}
	prev := Plan{Epoch: 7, Model: "x", NumLayers: 8, Stages: []Stage{{WorkerID: "b", End: 8}}}
	p, err := MakePlan(m, ws, PlanOptions{PreferStable: &prev, Model: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Epoch != 8 || !strings.Contains(p.Explanation, "not reused") {
		t.Fatalf("epoch %d, explanation:\n%s", p.Epoch, p.Explanation)
	}
}

func BenchmarkMakePlanStable(b *testing.B) {
	m := ModelSize{NumLayers: 32, LayerBytes: 170e6, KVBytesPerLayer: 10e6, FixedBytes: 500e6}
	var ws []WorkerInfo
	for i := range 8 {
		ws = append(ws, WorkerInfo{ID: fmt.Sprint("w", i), Speed: float64(100 + 10*i), MemoryFree: 16e9})
	}
	prev, _ := MakePlan(m, ws[:4], PlanOptions{})
	for b.Loop() {
		if _, err := MakePlan(m, ws[1:], PlanOptions{PreferStable: &prev}); err != nil {
			b.Fatal(err)
		}
	}
}
