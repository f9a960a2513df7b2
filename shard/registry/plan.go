package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/phalanx-llm/phalanx/shard"
	"go.etcd.io/etcd/api/v3/mvccpb"
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

// StoredPlan is what the plan key holds, whatever it is: a leader compares
// it with the plan it published, so it must see deletions and values that
// are not plans, which WatchPlan hides from workers.
type StoredPlan struct {
	// Present: the key exists.
	Present bool
	// Plan is the stored plan when Err is nil.
	Plan shard.Plan
	// Err says why a present value is not a usable plan: it does not parse,
	// or fails shard.Plan.Validate.
	Err error
	// ModRevision is the key's mod revision; 0 when absent. RestorePlan
	// writes only over this revision.
	ModRevision int64
}

func storedPlan(kv *mvccpb.KeyValue) StoredPlan {
	if kv == nil {
		return StoredPlan{}
	}
	sp := StoredPlan{Present: true, ModRevision: kv.ModRevision}
	if err := json.Unmarshal(kv.Value, &sp.Plan); err != nil {
		sp.Plan, sp.Err = shard.Plan{}, fmt.Errorf("registry: stored plan: %w", err)
	} else if err := sp.Plan.Validate(); err != nil {
		sp.Err = fmt.Errorf("registry: stored plan: %w", err)
	}
	return sp
}

// ReadPlan returns what the plan key holds now.
func ReadPlan(ctx context.Context, cli *clientv3.Client, cluster string) (StoredPlan, error) {
	if err := checkName("cluster", cluster); err != nil {
		return StoredPlan{}, err
	}
	resp, err := cli.Get(ctx, PlanKey(cluster))
	if err != nil {
		return StoredPlan{}, fmt.Errorf("registry: read plan: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return StoredPlan{}, nil
	}
	return storedPlan(resp.Kvs[0]), nil
}

// WatchStoredPlan sends what the plan key holds now and after every change
// (a write, a deletion, a value that is not a plan), until ctx is done; it
// has WatchPlan's guarantees (latest value, survives compaction and etcd
// restarts).
func WatchStoredPlan(ctx context.Context, cli *clientv3.Client, cluster string) (<-chan StoredPlan, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	key := PlanKey(cluster)
	return follow(ctx, cli, key, false, "stored plan", func(state mirror) (StoredPlan, bool) {
		return storedPlan(state[key]), true
	}), nil
}

// RestorePlan writes plan over what the plan key held at modRevision (0:
// the key is absent), whatever that was: the leader's way to replace a
// plan it did not write (a foreign write, garbage, a deletion). Like
// PublishPlan it is fenced by the leadership (ErrNotLeader), and it stores
// nothing when the key changed since modRevision (ErrEpochConflict): the
// caller looks again. The plan must pass shard.Plan.Validate; choosing an
// epoch past the stored one, so workers reload, is the caller's part.
func (l *Leadership) RestorePlan(ctx context.Context, plan shard.Plan, modRevision int64) error {
	if err := plan.Validate(); err != nil {
		return fmt.Errorf("registry: restore plan: %w", err)
	}
	data, err := json.Marshal(plan)
	if err != nil {
		return fmt.Errorf("registry: restore plan: %w", err)
	}
	key := PlanKey(l.cluster)
	resp, err := l.cli.Txn(ctx).If(l.cmp(), clientv3.Compare(clientv3.ModRevision(key), "=", modRevision)).
		Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("registry: restore plan: %w", err)
	}
	if resp.Succeeded {
		return nil
	}
	if ok, err := l.holds(ctx); err == nil && !ok {
		return ErrNotLeader
	}
	return fmt.Errorf("%w: the plan changed since revision %d", ErrEpochConflict, modRevision)
}

// ClearPlan deletes what the plan key held at modRevision, fenced like
// RestorePlan: a leader with no plan of its own yet clears a value that is
// not a usable plan, so its first plan can be published.
func (l *Leadership) ClearPlan(ctx context.Context, modRevision int64) error {
	key := PlanKey(l.cluster)
	resp, err := l.cli.Txn(ctx).If(l.cmp(), clientv3.Compare(clientv3.ModRevision(key), "=", modRevision)).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return fmt.Errorf("registry: clear plan: %w", err)
	}
	if resp.Succeeded {
		return nil
	}
	if ok, err := l.holds(ctx); err == nil && !ok {
		return ErrNotLeader
	}
	return fmt.Errorf("%w: the plan changed since revision %d", ErrEpochConflict, modRevision)
}
