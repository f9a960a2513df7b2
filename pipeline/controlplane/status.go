package controlplane

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/phalanx-llm/phalanx/pipeline/dataplane"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// Status describes the cluster for ClusterStatus and the console.
func (c *Coordinator) Status(ctx context.Context) *phalanxpb.ClusterStatusResponse {
	c.mu.Lock()
	plan, workers, planErr := c.plan, append([]registry.WorkerRecord(nil), c.workers...), c.planErr
	staged, stagedWait := c.staged, c.stagedWait
	c.mu.Unlock()
	leader, _ := registry.Leader(ctx, c.cfg.Etcd, c.cfg.Cluster)
	st := c.sched.Stats()
	resp := &phalanxpb.ClusterStatusResponse{
		Epoch: plan.Epoch, Leader: leader, Model: c.modelID, NumLayers: int32(c.ends.Config.NumLayers),
		PlanExplanation: plan.Explanation, ActiveSessions: int32(c.sched.ActiveSessions()),
		QueueDepth: int32(c.sched.QueueDepth()), TokensPerSecond: c.tokenRate(st), Goroutines: int32(runtime.NumGoroutine()),
		MicroBatches: int32(c.sched.MicroBatches()), Wire: c.cfg.Wire, KvCache: c.cfg.KVCache,
	}
	as := c.admit.Stats()
	resp.MaxSessions, resp.QueuedRequests, resp.MaxQueuedRequests, resp.RefusedRequests = int32(as.Limit), int32(as.Queued), int32(as.MaxQueue), as.Refused
	if planErr != nil {
		resp.PlanExplanation = "cannot plan: " + planErr.Error() + "\n" + plan.Explanation
	}
	if staged.Epoch > 0 {
		resp.PlanExplanation += fmt.Sprintf("\nstaged: epoch %d %s, published once %s have fetched their layers",
			staged.Epoch, stageList(staged), strings.Join(stagedWait, ", "))
	}
	route := c.sched.Route()
	for i, s := range plan.Stages {
		ss := &phalanxpb.StageStatus{WorkerId: s.WorkerID, Address: s.Address, LayerStart: int32(s.Start), LayerEnd: int32(s.End),
			Ready: route != nil && route.Epoch == plan.Epoch}
		if ss.Ready && i < len(st.StageMillis) {
			ss.LastStepLatencyMs = st.StageMillis[i]
		}
		resp.Stages = append(resp.Stages, ss)
	}
	sort.Slice(workers, func(i, j int) bool { return workers[i].ID < workers[j].ID })
	for _, w := range workers {
		ws := &phalanxpb.WorkerStatus{Id: w.ID, Address: w.Address, Version: w.Version, MemoryTotalBytes: w.MemoryTotal,
			MemoryFreeBytes: w.MemoryFree, Speed: w.Speed, ReadyEpoch: w.ReadyEpoch, Healthy: true,
			LayerStart: int32(w.Layers[0]), LayerEnd: int32(w.Layers[1])}
		if tr := w.Transfer; tr != nil {
			ws.TransferDoneBytes, ws.TransferTotalBytes, ws.TransferReceivedBytes = tr.Done, tr.Total, tr.Received
		}
		c.mu.Lock()
		cl := c.clients[w.ID+"@"+w.Address]
		c.mu.Unlock()
		if cl != nil {
			ictx, cancel := context.WithTimeout(ctx, time.Second)
			info, err := cl.RPC().Info(ictx, &phalanxpb.InfoRequest{})
			cancel()
			if err != nil {
				ws.Healthy = false
			} else {
				ws.KvCacheBytes, ws.Sessions, ws.Goroutines = info.GetKvCacheBytes(), info.GetSessions(), info.GetGoroutines()
			}
		}
		resp.Workers = append(resp.Workers, ws)
	}
	return resp
}

// tokenRate is tokens per second over the last few seconds.
func (c *Coordinator) tokenRate(st dataplane.StepStats) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	ts := &c.tokStats
	if d := now.Sub(ts.at); d >= 2*time.Second || ts.at.IsZero() {
		if !ts.at.IsZero() {
			ts.rate = float64(st.Tokens-ts.tokens) / d.Seconds()
		}
		ts.at, ts.tokens = now, st.Tokens
	}
	return ts.rate
}

// capacityGone tells the scheduler to stop waiting for a re-plan: the
// workers left cannot hold the model.
func (c *Coordinator) capacityGone() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.planErr != nil && (errors.Is(c.planErr, shard.ErrInsufficientMemory) || errors.Is(c.planErr, shard.ErrNotEnoughWorkers)) {
		return c.planErr
	}
	return nil
}

// PlanError is why the cluster cannot be planned now, if it cannot.
func (c *Coordinator) PlanError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.planErr
}
