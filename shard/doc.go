// Package shard decides which worker runs which decoder layers.
//
// A Phalanx model is a stack of decoder layers (32 for Phi-2). Workers each
// hold one contiguous range of layers; hidden states flow through them in
// pipeline order. This package is the pure part of that decision: given the
// workers' measured speed and free memory and the model's size, MakePlan
// returns a Plan — an epoch, the model identity and the stages — and a
// human-readable Explanation of why. Membership, plan storage and leader
// election over etcd live in the sub-package registry.
//
// shard never performs I/O: no network, no files, no clock except
// time.Now as the default for Plan.CreatedAt. It never imports gRPC or
// etcd; only its registry sub-package does.
//
// # Usage
//
//	size := shard.ModelSize{NumLayers: 32, LayerBytes: 170e6, KVBytesPerLayer: 10e6, FixedBytes: 500e6}
//	plan, err := shard.MakePlan(size, workers, shard.PlanOptions{
//		Model:        "phi-2@sha256:…",
//		PreferStable: current, // the plan in force, or nil
//	})
//	switch {
//	case errors.Is(err, shard.ErrInsufficientMemory):
//		// err's message says how much memory is missing
//	case err != nil:
//		...
//	}
//	slog.Info("plan", "epoch", plan.Epoch, "why", plan.Explanation)
//
// # The planning rule
//
// A stage's time per token is layers ÷ speed, where speed is the worker's
// measured layer-steps per second. A pipeline is as fast as its slowest
// stage (the bottleneck), so MakePlan first finds the smallest possible
// bottleneck exactly: handing out layers one at a time to the worker whose
// stage would then be fastest, never beyond a worker's memory capacity
// floor((MemoryFree − FixedBytes) / (LayerBytes + KVBytesPerLayer)),
// yields the optimum. With that bottleneck fixed, each worker may take at
// most min(capacity, ⌊bottleneck × speed⌋) layers.
//
// Fresh plan (no PreferStable): the fewest workers whose allowances cover
// the model are filled (fewer stages means fewer network hops per token),
// surplus layers are taken back from whichever stage is slowest, and the
// stages run in worker-ID order, so the same inputs always give the same
// plan. Workers that get no layers are spares.
//
// Stable plan (PreferStable set to the plan in force, for the same model and
// number of layers): a worker that reloads layers stalls the pipeline, so
// MakePlan accepts a bottleneck up to StableTolerance (default 5 %) above
// the optimum and, among all such plans, picks the one where workers load
// the fewest layers they did not hold in the previous plan; ties go to
// fewer stages, then to the lower bottleneck. Surviving workers keep their
// previous pipeline order; new workers may be placed anywhere. When a
// worker dies its range is taken by a spare or by its neighbours, and
// survivors whose ranges still fit keep them unchanged. When a worker
// joins, it takes layers only if that brings the bottleneck back within the
// tolerance of the new optimum.
//
// # Errors
//
// A model the workers cannot hold is ErrInsufficientMemory, and the message
// says how many layers fit, how many do not, and how many bytes are
// missing. Fewer workers with a measured speed than PlanOptions.MinWorkers
// (or none) is ErrNotEnoughWorkers. Workers without a measured speed are
// listed as spares and never given layers.
package shard
