package shard

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Errors MakePlan returns, wrapped with a message that says what is wrong.
var (
	// ErrInsufficientMemory: the workers together cannot hold the model.
	ErrInsufficientMemory = errors.New("shard: insufficient memory")
	// ErrNotEnoughWorkers: fewer usable workers than PlanOptions.MinWorkers
	// (or none at all).
	ErrNotEnoughWorkers = errors.New("shard: not enough workers")
	// ErrInvalidModel: a ModelSize without layers.
	ErrInvalidModel = errors.New("shard: invalid model size")
	// ErrInvalidWorker: a worker without an ID, or two with the same ID.
	ErrInvalidWorker = errors.New("shard: invalid worker")
)

// DefaultStableTolerance is how much slower than optimal (as a fraction of
// the optimal bottleneck time) a plan that keeps layers where they are may
// be, when PlanOptions.StableTolerance is zero.
const DefaultStableTolerance = 0.05

// maxStableNewcomers bounds the workers outside the previous plan that the
// stability search may place anywhere in the pipeline (its cost grows as
// 2^n). The fastest ones are considered; the rest stay spare.
const maxStableNewcomers = 6

// ModelSize is what the planner needs to know about a model.
type ModelSize struct {
	NumLayers int
	// LayerBytes is the size of one decoder layer's weights.
	LayerBytes uint64
	// KVBytesPerLayer is the memory reserved per layer held for KV caches.
	KVBytesPerLayer uint64
	// FixedBytes is each worker's overhead regardless of the layers it holds
	// (runtime, buffers, activations).
	FixedBytes uint64
}

// perLayer is the memory one layer costs a worker.
func (m ModelSize) perLayer() uint64 { return m.LayerBytes + m.KVBytesPerLayer }

// Capacity is the number of layers a worker with memoryFree bytes can
// hold: floor((memoryFree − FixedBytes) / (LayerBytes + KVBytesPerLayer)),
// at most NumLayers.
func (m ModelSize) Capacity(memoryFree uint64) int {
	if memoryFree <= m.FixedBytes {
		return 0
	}
	per := m.perLayer()
	if per == 0 {
		return m.NumLayers
	}
	n := (memoryFree - m.FixedBytes) / per
	if n > uint64(m.NumLayers) {
		return m.NumLayers
	}
	return int(n)
}

// PlanOptions tune MakePlan.
type PlanOptions struct {
	// MinWorkers is the number of usable workers (distinct, with a measured
	// speed) below which MakePlan refuses to plan with ErrNotEnoughWorkers.
	// It does not force that many stages.
	MinWorkers int
	// PreferStable is the plan in force, if any. See MakePlan for how it is
	// used.
	PreferStable *Plan
	// StableTolerance is how much slower than the optimal bottleneck (as a
	// fraction) MakePlan may go to move fewer layers when PreferStable is
	// set. Zero means DefaultStableTolerance; negative means none.
	StableTolerance float64
	// Model is copied into Plan.Model.
	Model string
	// Now is the plan's CreatedAt; zero means time.Now().
	Now time.Time
}

// candidate is a worker as the planner sees it.
type candidate struct {
	WorkerInfo
	capacity int    // layers it can hold
	upper    int    // layers it may take without exceeding the bottleneck
	spare    string // why it gets no layers whatever happens, "" if usable
}

// measuredSpeed rejects zero, negative, NaN and infinite speeds.
func measuredSpeed(s float64) bool { return s > 0 && !math.IsInf(s, 0) }

// stageTime is the seconds per token a worker takes for n layers.
func stageTime(n int, speed float64) float64 { return float64(n) / speed }

// within reports whether a stage of n layers at speed fits under the
// bottleneck t. The relative slack absorbs rounding in k/speed so that
// ties between workers stay ties.
func within(n int, speed, t float64) bool {
	return stageTime(n, speed) <= t*(1+1e-9)
}

// MakePlan assigns m's layers to workers.
//
// Without PreferStable, it minimizes the bottleneck (the largest stage
// time, layers ÷ speed) exactly, then uses as few stages as possible, then
// evens out stage times by taking surplus layers from the stage that is
// slowest relative to its speed. Stages appear in worker-ID order.
//
// With PreferStable (the plan in force, for the same model and layer
// count), it keeps the workers that survive in their previous pipeline
// order, may put new workers anywhere between them, and picks, among all
// plans whose bottleneck is within StableTolerance of the optimum, the one
// that makes workers load the fewest layers they do not already hold;
// ties go to fewer stages, then to the lower bottleneck. A plan whose
// survivors still fit keeps their ranges unchanged. The epoch becomes
// PreferStable.Epoch+1 (1 without a previous plan).
func MakePlan(m ModelSize, workers []WorkerInfo, opts PlanOptions) (Plan, error) {
	if m.NumLayers <= 0 {
		return Plan{}, fmt.Errorf("%w: %d layers", ErrInvalidModel, m.NumLayers)
	}
	cands, err := candidates(m, workers)
	if err != nil {
		return Plan{}, err
	}
	var usable []*candidate
	measured := 0
	for _, c := range cands {
		if measuredSpeed(c.Speed) {
			measured++
		}
		if c.spare == "" {
			usable = append(usable, c)
		}
	}
	if measured == 0 || measured < opts.MinWorkers {
		return Plan{}, fmt.Errorf("%w: %d workers with a measured speed, need at least %d", ErrNotEnoughWorkers, measured, max(1, opts.MinWorkers))
	}
	holdable := 0
	for _, c := range usable {
		holdable += c.capacity
	}
	if holdable < m.NumLayers {
		// If no worker can take even one layer, the cheapest fix is one
		// worker with room for its fixed overhead plus the missing layers.
		var bestFree uint64
		for _, c := range cands {
			if measuredSpeed(c.Speed) {
				bestFree = max(bestFree, c.MemoryFree)
			}
		}
		return Plan{}, insufficientMemory(m, measured, holdable, bestFree)
	}

	best := optimalBottleneck(usable, m.NumLayers)
	for _, c := range usable {
		c.upper = upperBound(c, best)
	}

	plan := Plan{Model: opts.Model, NumLayers: m.NumLayers, Epoch: 1, CreatedAt: opts.Now}
	if plan.CreatedAt.IsZero() {
		plan.CreatedAt = time.Now()
	}
	var (
		counts map[string]int
		order  []*candidate
		notes  []string
	)
	prev := opts.PreferStable
	if prev != nil {
		plan.Epoch = prev.Epoch + 1
		if why := reusable(*prev, m, opts.Model); why != "" {
			notes = append(notes, fmt.Sprintf("previous plan (epoch %d) not reused: %s", prev.Epoch, why))
			prev = nil
		}
	}
	if prev != nil {
		tol := opts.StableTolerance
		if tol == 0 {
			tol = DefaultStableTolerance
		}
		tol = max(tol, 0)
		limit := best * (1 + tol)
		for _, c := range usable {
			c.upper = upperBound(c, limit)
		}
		var moved int
		order, counts, moved = stablePlan(*prev, usable, m.NumLayers)
		notes = append(notes, fmt.Sprintf("kept layers in place from epoch %d where possible (bottleneck allowed %.0f%% above optimal): %s of %d to load",
			prev.Epoch, tol*100, plural(moved, "layer"), m.NumLayers))
	} else {
		counts = freshPlan(usable, m.NumLayers)
		order = usable // already sorted by ID
	}

	start := 0
	for _, c := range order {
		n := counts[c.ID]
		if n == 0 {
			continue
		}
		plan.Stages = append(plan.Stages, Stage{WorkerID: c.ID, Address: c.Address, Start: start, End: start + n})
		start += n
	}
	plan.Explanation = explain(m, plan, cands, best, notes)
	if err := plan.Validate(); err != nil {
		// Unreachable unless the planner is wrong; say so rather than panic.
		return Plan{}, fmt.Errorf("shard: planner bug: %w", err)
	}
	return plan, nil
}

// candidates validates the workers and sorts them by ID.
func candidates(m ModelSize, workers []WorkerInfo) ([]*candidate, error) {
	cands := make([]*candidate, 0, len(workers))
	seen := make(map[string]bool, len(workers))
	for _, w := range workers {
		if w.ID == "" {
			return nil, fmt.Errorf("%w: worker at %q has no ID", ErrInvalidWorker, w.Address)
		}
		if seen[w.ID] {
			return nil, fmt.Errorf("%w: two workers with ID %q", ErrInvalidWorker, w.ID)
		}
		seen[w.ID] = true
		c := &candidate{WorkerInfo: w, capacity: m.Capacity(w.MemoryFree)}
		switch {
		case !measuredSpeed(w.Speed):
			c.spare = "speed not measured"
		case c.capacity == 0:
			c.spare = fmt.Sprintf("memory: %s free cannot hold %s fixed + one layer of %s",
				formatBytes(w.MemoryFree), formatBytes(m.FixedBytes), formatBytes(m.perLayer()))
		}
		cands = append(cands, c)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].ID < cands[j].ID })
	return cands, nil
}

func insufficientMemory(m ModelSize, workers, holdable int, bestFree uint64) error {
	per := formatBytes(m.perLayer())
	if m.KVBytesPerLayer > 0 {
		per += fmt.Sprintf(" (%s weights + %s KV cache)", formatBytes(m.LayerBytes), formatBytes(m.KVBytesPerLayer))
	}
	fixed := ""
	if m.FixedBytes > 0 {
		fixed = fmt.Sprintf(" plus %s fixed per worker", formatBytes(m.FixedBytes))
	}
	missing := m.NumLayers - holdable
	short := uint64(missing) * m.perLayer()
	how := fmt.Sprintf("%s × %s", plural(missing, "layer"), formatBytes(m.perLayer()))
	if holdable == 0 && bestFree < m.FixedBytes {
		// Not even the fixed overhead fits anywhere: count it once.
		short += m.FixedBytes - bestFree
		how += fmt.Sprintf(", plus %s of fixed overhead the best worker lacks", formatBytes(m.FixedBytes-bestFree))
	}
	return fmt.Errorf("%w: model needs %d layers × %s%s; the %s can hold %d layers; %s more memory is needed (%s)",
		ErrInsufficientMemory, m.NumLayers, per, fixed, plural(workers, "worker"), holdable, formatBytes(short), how)
}

// optimalBottleneck is the smallest T such that the workers can hold all
// layers with no stage slower than T. Giving each layer in turn to the
// worker whose stage would then be fastest picks the numLayers smallest
// values of {k/speed_i : 1 ≤ k ≤ capacity_i}; any assignment uses a prefix
// of each worker's sequence, so none can do better than the largest of
// those.
func optimalBottleneck(usable []*candidate, numLayers int) float64 {
	n := make([]int, len(usable))
	var t float64
	for range numLayers {
		bi := -1
		for i, c := range usable {
			if n[i] < c.capacity && (bi < 0 || stageTime(n[i]+1, c.Speed) < stageTime(n[bi]+1, usable[bi].Speed)) {
				bi = i
			}
		}
		n[bi]++
		t = max(t, stageTime(n[bi], usable[bi].Speed))
	}
	return t
}

// upperBound is the most layers c can take without its stage exceeding t.
func upperBound(c *candidate, t float64) int {
	k := min(c.capacity, int(t*c.Speed))
	for k < c.capacity && within(k+1, c.Speed, t) {
		k++
	}
	for k > 0 && !within(k, c.Speed, t) {
		k--
	}
	return k
}

// freshPlan fills the fewest workers that can cover the layers under the
// optimal bottleneck (largest allowance first, then faster, then by ID),
// each up to its allowance, then removes the surplus one layer at a time
// from the stage with the largest time.
func freshPlan(usable []*candidate, numLayers int) map[string]int {
	byAllowance := append([]*candidate(nil), usable...)
	sort.SliceStable(byAllowance, func(i, j int) bool {
		a, b := byAllowance[i], byAllowance[j]
		if a.upper != b.upper {
			return a.upper > b.upper
		}
		if a.Speed != b.Speed {
			return a.Speed > b.Speed
		}
		return a.ID < b.ID
	})
	counts := make(map[string]int)
	var chosen []*candidate
	total := 0
	for _, c := range byAllowance {
		if total >= numLayers {
			break
		}
		chosen = append(chosen, c)
		counts[c.ID] = c.upper
		total += c.upper
	}
	// chosen is in ID order after this, so ties below resolve by ID.
	sort.Slice(chosen, func(i, j int) bool { return chosen[i].ID < chosen[j].ID })
	for ; total > numLayers; total-- {
		var worst *candidate
		for _, c := range chosen {
			if counts[c.ID] == 0 {
				continue
			}
			if worst == nil {
				worst = c
				continue
			}
			tc, tw := stageTime(counts[c.ID], c.Speed), stageTime(counts[worst.ID], worst.Speed)
			if tc > tw || (tc == tw && c.Speed < worst.Speed) {
				worst = c
			}
		}
		counts[worst.ID]--
	}
	return counts
}

// reusable says why prev cannot guide a plan for m, or "" if it can.
func reusable(prev Plan, m ModelSize, model string) string {
	if err := prev.Validate(); err != nil {
		return err.Error()
	}
	if prev.NumLayers != m.NumLayers {
		return fmt.Sprintf("it has %d layers, the model %d", prev.NumLayers, m.NumLayers)
	}
	if prev.Model != "" && model != "" && prev.Model != model {
		return fmt.Sprintf("it is for model %q", prev.Model)
	}
	return ""
}

// stableCost orders partial plans in the stability search: fewer layers
// to load, then fewer stages, then a lower bottleneck.
type stableCost struct {
	moved, stages int
	bottleneck    float64
}

func (a stableCost) less(b stableCost) bool {
	if a.moved != b.moved {
		return a.moved < b.moved
	}
	if a.stages != b.stages {
		return a.stages < b.stages
	}
	return a.bottleneck < b.bottleneck
}

// stablePlan is a dynamic program over (survivors placed, layers covered,
// newcomers used). Survivors keep their previous order and may take any
// number of layers up to their allowance (zero makes them spare);
// newcomers may be inserted anywhere. A worker's cost is the number of
// layers in its new range that its previous range did not hold. Every
// count vector within the allowances is reachable in this order family,
// so the search always finds a plan when the optimal bottleneck exists.
// It returns the workers in pipeline order, their layer counts and the
// number of layers that move.
func stablePlan(prev Plan, usable []*candidate, numLayers int) ([]*candidate, map[string]int, int) {
	byID := make(map[string]*candidate, len(usable))
	for _, c := range usable {
		byID[c.ID] = c
	}
	var survivors []*candidate
	held := make(map[string]Stage)
	for _, s := range prev.Stages {
		if c, ok := byID[s.WorkerID]; ok {
			survivors = append(survivors, c)
			held[s.WorkerID] = s
		}
	}
	var newcomers []*candidate
	for _, c := range usable {
		if _, ok := held[c.ID]; !ok && c.upper > 0 {
			newcomers = append(newcomers, c)
		}
	}
	if len(newcomers) > maxStableNewcomers {
		sort.SliceStable(newcomers, func(i, j int) bool {
			a, b := newcomers[i], newcomers[j]
			if a.upper != b.upper {
				return a.upper > b.upper
			}
			return a.Speed > b.Speed
		})
		newcomers = newcomers[:maxStableNewcomers]
		sort.Slice(newcomers, func(i, j int) bool { return newcomers[i].ID < newcomers[j].ID })
	}

	type step struct {
		from   int // state index it came from, -1 for none
		worker *candidate
		n      int
	}
	type state struct {
		ok   bool
		cost stableCost
		step step
	}
	S, L, M := len(survivors), numLayers, 1<<len(newcomers)
	idx := func(i, b, mask int) int { return (i*(L+1)+b)*M + mask }
	states := make([]state, (S+1)*(L+1)*M)
	states[idx(0, 0, 0)] = state{ok: true, step: step{from: -1}}
	relax := func(from, to int, c *candidate, n, moved int) {
		cur := states[from].cost
		next := stableCost{moved: cur.moved + moved, stages: cur.stages, bottleneck: cur.bottleneck}
		if n > 0 {
			next.stages++
			next.bottleneck = max(next.bottleneck, stageTime(n, c.Speed))
		}
		if !states[to].ok || next.less(states[to].cost) {
			states[to] = state{ok: true, cost: next, step: step{from: from, worker: c, n: n}}
		}
	}
	for b := 0; b <= L; b++ {
		for i := 0; i <= S; i++ {
			for mask := 0; mask < M; mask++ {
				from := idx(i, b, mask)
				if !states[from].ok {
					continue
				}
				if i < S {
					c, old := survivors[i], held[survivors[i].ID]
					for n := 0; n <= min(c.upper, L-b); n++ {
						overlap := max(0, min(old.End, b+n)-max(old.Start, b))
						relax(from, idx(i+1, b+n, mask), c, n, n-overlap)
					}
				}
				for j, c := range newcomers {
					if mask&(1<<j) != 0 {
						continue
					}
					for n := 1; n <= min(c.upper, L-b); n++ {
						relax(from, idx(i, b+n, mask|1<<j), c, n, n)
					}
				}
			}
		}
	}
	end := -1
	for mask := 0; mask < M; mask++ {
		s := idx(S, L, mask)
		if states[s].ok && (end < 0 || states[s].cost.less(states[end].cost)) {
			end = s
		}
	}
	var order []*candidate
	counts := make(map[string]int)
	for s := end; states[s].step.from >= 0; s = states[s].step.from {
		st := states[s].step
		order = append(order, st.worker)
		counts[st.worker.ID] = st.n
	}
	for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
		order[i], order[j] = order[j], order[i]
	}
	return order, counts, states[end].cost.moved
}

// explain writes the plan's Explanation: one line per stage and per spare
// worker, saying what it holds and why.
func explain(m ModelSize, p Plan, cands []*candidate, optimal float64, notes []string) string {
	var b strings.Builder
	totalSpeed := 0.0
	for _, c := range cands {
		if c.spare == "" {
			totalSpeed += c.Speed
		}
	}
	byID := make(map[string]*candidate, len(cands))
	for _, c := range cands {
		byID[c.ID] = c
	}
	bottleneck, latency, slowest := 0.0, 0.0, ""
	for _, s := range p.Stages {
		t := stageTime(s.Layers(), byID[s.WorkerID].Speed)
		latency += t
		if t > bottleneck {
			bottleneck, slowest = t, s.WorkerID
		}
	}
	fmt.Fprintf(&b, "%s × %s over %d of %s (stages in pipeline order)\n",
		plural(m.NumLayers, "layer"), formatBytes(m.perLayer()), len(p.Stages), plural(len(cands), "worker"))
	for i, s := range p.Stages {
		c := byID[s.WorkerID]
		share := float64(m.NumLayers) * c.Speed / totalSpeed
		t := stageTime(s.Layers(), c.Speed)
		var why []string
		if s.Layers() == c.capacity && float64(c.capacity) < share {
			why = append(why, "memory-capped")
		}
		if t == bottleneck {
			why = append(why, "bottleneck")
		}
		note := ""
		if len(why) > 0 {
			note = " [" + strings.Join(why, ", ") + "]"
		}
		fmt.Fprintf(&b, "stage %d: %s layers [%d,%d) = %d; speed %s layer-steps/s (speed share %.1f layers); memory cap %d layers; %s/token%s\n",
			i+1, s.WorkerID, s.Start, s.End, s.Layers(), formatFloat(c.Speed), share, c.capacity, formatSeconds(t), note)
	}
	for _, c := range cands {
		if _, _, ok := p.StageOf(c.ID); ok {
			continue
		}
		why := c.spare
		if why == "" {
			why = "not needed for the bottleneck"
		}
		fmt.Fprintf(&b, "spare: %s (%s)\n", c.ID, why)
	}
	fmt.Fprintf(&b, "bottleneck %s/token on %s (optimal %s); per-token latency %s over %s\n",
		formatSeconds(bottleneck), slowest, formatSeconds(optimal), formatSeconds(latency), plural(len(p.Stages), "stage"))
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}
