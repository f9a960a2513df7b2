package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/phalanx-llm/phalanx/shard"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	// ErrEpochConflict: the stored plan is not at the epoch the publisher
	// expected (someone else published first), or the new plan's epoch does
	// not move past it.
	ErrEpochConflict = errors.New("registry: plan epoch conflict")
	// ErrNoPlan: no plan has been published yet.
	ErrNoPlan = errors.New("registry: no plan")
	// ErrNotLeader: a Leadership that has lost the election tried to publish.
	ErrNotLeader = errors.New("registry: not the leader")
)

// LoadPlan returns the plan in force, or ErrNoPlan.
func LoadPlan(ctx context.Context, cli *clientv3.Client, cluster string) (shard.Plan, error) {
	if err := checkName("cluster", cluster); err != nil {
		return shard.Plan{}, err
	}
	resp, err := cli.Get(ctx, PlanKey(cluster))
	if err != nil {
		return shard.Plan{}, fmt.Errorf("registry: load plan: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return shard.Plan{}, ErrNoPlan
	}
	var p shard.Plan
	if err := json.Unmarshal(resp.Kvs[0].Value, &p); err != nil {
		return shard.Plan{}, fmt.Errorf("registry: load plan: %w", err)
	}
	return p, nil
}

// PublishPlan stores plan as the plan in force, if and only if the stored
// plan's epoch is expectEpoch (0: no plan stored yet) and plan.Epoch is
// greater; otherwise it returns ErrEpochConflict and stores nothing. The
// check and the write are one transaction (on the stored plan's mod
// revision), so of two coordinators publishing concurrently from the same
// epoch exactly one wins. The plan must pass shard.Plan.Validate.
func PublishPlan(ctx context.Context, cli *clientv3.Client, cluster string, plan shard.Plan, expectEpoch uint64) error {
	return publishPlan(ctx, cli, cluster, plan, expectEpoch, nil)
}

// publishPlan is PublishPlan with extra conditions (the leadership fence).
// A failed transaction is reported as ErrNotLeader when fenced reports the
// fence no longer holds, as ErrEpochConflict otherwise.
func publishPlan(ctx context.Context, cli *clientv3.Client, cluster string, plan shard.Plan, expectEpoch uint64, fence *Leadership) error {
	if err := checkName("cluster", cluster); err != nil {
		return err
	}
	if err := plan.Validate(); err != nil {
		return fmt.Errorf("registry: publish plan: %w", err)
	}
	if plan.Epoch <= expectEpoch {
		return fmt.Errorf("%w: new plan's epoch %d does not move past %d", ErrEpochConflict, plan.Epoch, expectEpoch)
	}
	data, err := json.Marshal(plan)
	if err != nil {
		return fmt.Errorf("registry: publish plan: %w", err)
	}
	key := PlanKey(cluster)
	var cmps []clientv3.Cmp
	if fence != nil {
		cmps = append(cmps, fence.cmp())
	}
	if expectEpoch == 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	} else {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("registry: publish plan: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%w: no plan stored, expected epoch %d", ErrEpochConflict, expectEpoch)
		}
		var stored shard.Plan
		if err := json.Unmarshal(resp.Kvs[0].Value, &stored); err != nil {
			return fmt.Errorf("registry: publish plan: stored plan: %w", err)
		}
		if stored.Epoch != expectEpoch {
			return fmt.Errorf("%w: stored epoch is %d, expected %d", ErrEpochConflict, stored.Epoch, expectEpoch)
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision))
	}
	resp, err := cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("registry: publish plan: %w", err)
	}
	if resp.Succeeded {
		slog.Info("registry: plan published", "cluster", cluster, "epoch", plan.Epoch, "stages", len(plan.Stages))
		return nil
	}
	if fence != nil {
		if ok, err := fence.holds(ctx); err == nil && !ok {
			return ErrNotLeader
		}
	}
	return fmt.Errorf("%w: the plan changed while publishing epoch %d over %d", ErrEpochConflict, plan.Epoch, expectEpoch)
}

// WatchPlan sends the plan in force now (if there is one) and every plan
// published after it, until ctx is done; then it closes the channel. A
// slow reader gets the latest plan, not every intermediate one; a deleted
// plan sends nothing. The watch survives compaction and etcd restarts (it
// loads the plan again and resumes), and a plan seen before a restart is
// not sent twice.
func WatchPlan(ctx context.Context, cli *clientv3.Client, cluster string) (<-chan shard.Plan, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	key := PlanKey(cluster)
	return follow(ctx, cli, key, false, "plan", func(state mirror) (shard.Plan, bool) {
		kv, ok := state[key]
		if !ok {
			return shard.Plan{}, false
		}
		var p shard.Plan
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			slog.Warn("registry: skipping unreadable plan", "key", key, "err", err)
			return shard.Plan{}, false
		}
		return p, true
	}), nil
}
