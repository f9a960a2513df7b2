package controlplane

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// replan computes the plan for the current workers and publishes it when
// the assignment changes.
func (c *Coordinator) replan(ctx context.Context, lead *registry.Leadership) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		c.mu.Unlock()
		return // first probes still running; they trigger a re-plan when done
	}
	cur := c.plan
	var infos []shard.WorkerInfo
	for _, w := range c.workers {
		if w.Labels["model"] != c.modelID || !c.reachable[w.ID+"@"+w.Address] {
			continue // another model, or not (yet) verified over the wire
		}
		infos = append(infos, w.WorkerInfo)
	}
	c.mu.Unlock()
	infos, raised := sameMachineSpeeds(infos)
	// --min-workers holds back the first plan until enough workers joined;
	// once serving, losing workers re-plans onto whoever remains.
	opts := shard.PlanOptions{MinWorkers: max(c.cfg.MinWorkers, 1), Model: c.modelID, Now: time.Now()}
	if cur.Epoch > 0 {
		opts.PreferStable = &cur
		opts.MinWorkers = 1
	}
	next, err := shard.MakePlan(c.size, infos, opts)
	if err != nil {
		c.mu.Lock()
		changed := c.planErr == nil || c.planErr.Error() != err.Error()
		c.planErr = err
		c.mu.Unlock()
		switch {
		case !changed:
		case cur.Epoch == 0 && errors.Is(err, shard.ErrNotEnoughWorkers):
			// Start-up, waiting for --min-workers: expected, not an error.
			c.log.Info("waiting for workers before the first plan", "workers", len(infos), "min_workers", opts.MinWorkers)
		default:
			c.log.Error("cannot plan the model over the workers", "workers", len(infos), "err", err)
		}
		return
	}
	c.mu.Lock()
	c.planErr = nil
	c.mu.Unlock()
	if cur.Epoch > 0 && next.SameAssignment(cur) && sameAddresses(next, cur) {
		c.clearStaged(ctx, lead)
		return
	}
	next.Epoch = cur.Epoch + 1
	if len(raised) > 0 {
		next.Explanation += "\n" + strings.Join(raised, "\n")
	}
	mix := kernelMix(next, infos)
	if mix != "" {
		next.Explanation += "\n" + mix
	}
	if fetching := c.mustFetch(cur, next); len(fetching) > 0 {
		c.stage(ctx, lead, next, fetching)
		return
	}
	if mix != "" {
		c.log.Warn("workers run different kernel sets", "sets", mix)
	}
	if err := lead.PublishPlan(ctx, next, cur.Epoch); err != nil {
		// Publishing is fenced by the leadership, so no other leader wrote
		// what is stored: it is not adopted but reconciled (lead retries).
		c.log.Error("cannot publish the plan", "epoch", next.Epoch, "err", err)
		c.mu.Lock()
		c.planSuspect = true
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.plan = next
	c.mu.Unlock()
	c.log.Info("published a new plan", "epoch", next.Epoch, "stages", len(next.Stages), "explanation", next.Explanation)
	c.clearStaged(ctx, lead)
}

// mustFetch lists the workers without model files that next gives layers
// they have not got in their caches yet — while the plan in force can
// still serve (every stage's worker is alive at its address). Such a plan
// is staged rather than published: the plan in force keeps serving while
// they fetch, and the plan is published once they have. Without a plan in
// force, or when it lost a stage, there is nothing to keep serving and
// the plan is published at once.
func (c *Coordinator) mustFetch(cur, next shard.Plan) []string {
	if cur.Epoch == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	byID := make(map[string]registry.WorkerRecord, len(c.workers))
	for _, w := range c.workers {
		byID[w.ID] = w
	}
	for _, st := range cur.Stages {
		w, ok := byID[st.WorkerID]
		if !ok || w.Address != st.Address || !c.reachable[w.ID+"@"+w.Address] {
			return nil
		}
	}
	var fetching []string
	for _, st := range next.Stages {
		w := byID[st.WorkerID]
		if !needsFetch(w, st) {
			continue
		}
		fetching = append(fetching, st.WorkerID)
	}
	return fetching
}

// needsFetch: w caches its layers and has not got st's range in its cache
// — neither within the layers it holds (a worker's cache keeps them) nor
// as a completed transfer.
func needsFetch(w registry.WorkerRecord, st shard.Stage) bool {
	if w.Labels[LabelWeights] != "cache" {
		return false
	}
	if w.ReadyEpoch > 0 && w.Layers[0] <= st.Start && st.End <= w.Layers[1] {
		return false
	}
	t := w.Transfer
	return t == nil || t.Layers != [2]int{st.Start, st.End} || t.Total == 0 || t.Done < t.Total
}

// stage stores next as the staged plan (once per assignment): the workers
// in fetching fetch their ranges of it into their caches, and each
// progress report they publish re-plans, which publishes next when none
// is left fetching.
func (c *Coordinator) stage(ctx context.Context, lead *registry.Leadership, next shard.Plan, fetching []string) {
	c.mu.Lock()
	same := c.staged.Epoch == next.Epoch && c.staged.SameAssignment(next) && sameAddresses(c.staged, next)
	c.stagedWait = fetching
	c.mu.Unlock()
	if same {
		return
	}
	if err := lead.StagePlan(ctx, next); err != nil {
		c.log.Error("cannot stage the plan", "epoch", next.Epoch, "err", err)
		return
	}
	c.mu.Lock()
	c.staged = next
	c.mu.Unlock()
	c.log.Info("staged a plan: the plan in force serves while workers fetch their layers",
		"epoch", next.Epoch, "stages", stageList(next), "fetching", strings.Join(fetching, ","))
}

// clearStaged removes the staged plan, if the leader staged one: it was
// published, or the workers changed and it is no longer the plan to come.
func (c *Coordinator) clearStaged(ctx context.Context, lead *registry.Leadership) {
	c.mu.Lock()
	staged := c.staged
	c.mu.Unlock()
	if staged.Epoch == 0 {
		return
	}
	if err := lead.ClearStaged(ctx); err != nil {
		c.log.Warn("cannot clear the staged plan", "err", err)
		return
	}
	c.mu.Lock()
	c.staged, c.stagedWait = shard.Plan{}, nil
	c.mu.Unlock()
}

// reconcile makes the stored plan the leader's. A plan it did not write —
// a foreign write, garbage, a deletion — is replaced by the leader's own
// under an epoch past both, so workers that followed the foreign one
// reload what the leader intends. Before the leader has a plan of its own,
// a usable stored plan is recovered (as at the start of the leadership)
// and anything else is cleared so the first plan can be published.
func (c *Coordinator) reconcile(ctx context.Context, lead *registry.Leadership) {
	err := c.reconcileOnce(ctx, lead)
	c.mu.Lock()
	c.planSuspect = err != nil
	c.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		c.log.Error("cannot restore the leader's plan; retrying", "err", err)
	}
}

func (c *Coordinator) reconcileOnce(ctx context.Context, lead *registry.Leadership) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stored, err := registry.ReadPlan(rctx, c.cfg.Etcd, c.cfg.Cluster)
	if err != nil {
		return err
	}
	c.mu.Lock()
	own := c.plan
	c.mu.Unlock()
	if stored.Present && stored.Err == nil && stored.Plan.Epoch == own.Epoch && stored.Plan.SameAssignment(own) {
		return nil
	}
	if own.Epoch == 0 {
		switch {
		case !stored.Present:
			return nil
		case stored.Err == nil && stored.Plan.Model == c.modelID:
			c.mu.Lock()
			c.plan = stored.Plan
			c.mu.Unlock()
			c.log.Info("recovered the plan from etcd", "epoch", stored.Plan.Epoch, "stages", len(stored.Plan.Stages))
			return nil
		}
		c.log.Warn("the stored plan is not usable: clearing it", "change", planChange(own, stored))
		return lead.ClearPlan(rctx, stored.ModRevision)
	}
	next := own
	next.Epoch = max(own.Epoch, stored.Plan.Epoch) + 1
	if err := lead.RestorePlan(rctx, next, stored.ModRevision); err != nil {
		return err
	}
	c.mu.Lock()
	c.plan = next
	c.mu.Unlock()
	c.log.Warn("the stored plan was not the leader's: restored the leader's plan under a new epoch",
		"change", planChange(own, stored), "epoch", next.Epoch)
	return nil
}

// planChange says how the stored plan differs from the leader's.
func planChange(own shard.Plan, stored registry.StoredPlan) string {
	switch {
	case !stored.Present:
		return "the plan was deleted"
	case stored.Err != nil:
		return "the stored value is not a usable plan: " + stored.Err.Error()
	case stored.Plan.Model != own.Model:
		return fmt.Sprintf("the stored plan is for model %q, the leader serves %q (epoch %d)", stored.Plan.Model, own.Model, stored.Plan.Epoch)
	}
	return fmt.Sprintf("epoch %d %s replaced epoch %d %s", stored.Plan.Epoch, stageList(stored.Plan), own.Epoch, stageList(own))
}

func stageList(p shard.Plan) string {
	parts := make([]string, len(p.Stages))
	for i, st := range p.Stages {
		parts[i] = fmt.Sprintf("%s[%d,%d)@%s", st.WorkerID, st.Start, st.End, st.Address)
	}
	return "(" + strings.Join(parts, " ") + ")"
}

// kernelMix says which kernel sets the plan's workers run, when they do not
// all run the same one: each set sums in its own order, so a replay on a
// worker of another set rebuilds a KV cache that differs in its last bits,
// and the continued answer may differ from the one the lost worker would
// have given. Empty when the sets agree (or workers do not say).
func kernelMix(p shard.Plan, infos []shard.WorkerInfo) string {
	inPlan := map[string]bool{}
	for _, st := range p.Stages {
		inPlan[st.WorkerID] = true
	}
	bySet := map[string][]string{}
	for _, w := range infos {
		if k := w.Labels[LabelKernels]; k != "" && inPlan[w.ID] {
			bySet[k] = append(bySet[k], w.ID)
		}
	}
	if len(bySet) < 2 {
		return ""
	}
	sets := make([]string, 0, len(bySet))
	for k, ids := range bySet {
		sort.Strings(ids)
		sets = append(sets, fmt.Sprintf("%s: %s", k, strings.Join(ids, ", ")))
	}
	sort.Strings(sets)
	return "note: workers run different kernel sets (" + strings.Join(sets, "; ") +
		"); a replay after a failure may continue an answer differently in rare close calls"
}

// sameMachineSpeeds gives the calibrated workers that share a machine, run
// as many kernel threads and the same kernel set the fastest speed any of
// them measured. Such workers compute at one speed; calibrations that
// disagree measured what else the machine was doing at the time: workers
// started together time their layer while the others copy gigabytes of
// weights (phalanx up on one machine split Phi-2's 32 layers 4 + 28 once,
// against 15–18 + 14–17 otherwise). A load only ever slows a calibration,
// so the fastest is the least disturbed. A calibrated worker whose own
// figure the planner would refuse (infinite) takes the machine's too; one
// that measured nothing (zero, NaN) stays unusable. Speeds given with
// --speed and workers that name no machine are left as they are. infos is
// not modified; the result may share its unchanged elements. raised says,
// for the plan's explanation, which workers' figures were raised.
func sameMachineSpeeds(infos []shard.WorkerInfo) (out []shard.WorkerInfo, raised []string) {
	key := func(w shard.WorkerInfo) string {
		l := w.Labels
		if l[LabelSpeed] != SpeedCalibrated || l[LabelHost] == "" || l[LabelThreads] == "" {
			return ""
		}
		return l[LabelHost] + "\x00" + l[LabelThreads] + "\x00" + l[LabelKernels]
	}
	fastest := map[string]float64{}
	for _, w := range infos {
		if k := key(w); k != "" && w.Speed > 0 && !math.IsInf(w.Speed, 0) {
			fastest[k] = max(fastest[k], w.Speed)
		}
	}
	out = make([]shard.WorkerInfo, len(infos))
	for i, w := range infos {
		if k := key(w); fastest[k] > 0 && w.Speed > 0 && w.Speed != fastest[k] {
			raised = append(raised, fmt.Sprintf("note: %s calibrated %.4g layer-steps/s, planned at %.4g, the fastest calibration of the workers on machine %q with --threads %s",
				w.ID, w.Speed, fastest[k], w.Labels[LabelHost], w.Labels[LabelThreads]))
			w.Speed = fastest[k]
		}
		out[i] = w
	}
	return out, raised
}
