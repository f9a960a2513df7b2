package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/phalanx-llm/phalanx/shard"
)

// StagedKey holds the staged plan: the plan the leader will publish once
// the workers that must fetch weights for it have them in their caches.
// It is a proposal, not the plan in force: workers that hold model files
// ignore it, workers without model files fetch their range of it while the
// plan in force keeps serving.
func StagedKey(cluster string) string { return Prefix(cluster) + "staged" }

// Staged is what the staged key holds: Present is false when no plan is
// staged (the key is absent or unreadable).
type Staged struct {
	Present bool
	Plan    shard.Plan
}

// StagePlan stores plan as the staged plan, fenced by the leadership like
// PublishPlan (ErrNotLeader). The plan must pass shard.Plan.Validate.
func (l *Leadership) StagePlan(ctx context.Context, plan shard.Plan) error {
	if err := plan.Validate(); err != nil {
		return fmt.Errorf("registry: stage plan: %w", err)
	}
	data, err := json.Marshal(plan)
	if err != nil {
		return fmt.Errorf("registry: stage plan: %w", err)
	}
	return l.fencedOp(ctx, "stage plan", clientv3.OpPut(StagedKey(l.cluster), string(data)))
}

// ClearStaged deletes the staged plan (no error when there is none),
// fenced by the leadership.
func (l *Leadership) ClearStaged(ctx context.Context) error {
	return l.fencedOp(ctx, "clear staged plan", clientv3.OpDelete(StagedKey(l.cluster)))
}

func (l *Leadership) fencedOp(ctx context.Context, what string, op clientv3.Op) error {
	resp, err := l.cli.Txn(ctx).If(l.cmp()).Then(op).Commit()
	if err != nil {
		return fmt.Errorf("registry: %s: %w", what, err)
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	return nil
}

// ReadStaged returns the staged plan, if any.
func ReadStaged(ctx context.Context, cli *clientv3.Client, cluster string) (Staged, error) {
	if err := checkName("cluster", cluster); err != nil {
		return Staged{}, err
	}
	resp, err := cli.Get(ctx, StagedKey(cluster))
	if err != nil {
		return Staged{}, fmt.Errorf("registry: read staged plan: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return Staged{}, nil
	}
	return decodeStaged(StagedKey(cluster), resp.Kvs[0].Value), nil
}

func decodeStaged(key string, value []byte) Staged {
	var p shard.Plan
	if err := json.Unmarshal(value, &p); err != nil {
		slog.Warn("registry: skipping unreadable staged plan", "key", key, "err", err)
		return Staged{}
	}
	if err := p.Validate(); err != nil {
		slog.Warn("registry: skipping invalid staged plan", "key", key, "err", err)
		return Staged{}
	}
	return Staged{Present: true, Plan: p}
}

// WatchStaged sends the staged plan now and after every change, including
// its removal (Present false), until ctx is done; it has WatchPlan's
// guarantees (latest value, survives compaction and etcd restarts).
func WatchStaged(ctx context.Context, cli *clientv3.Client, cluster string) (<-chan Staged, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	key := StagedKey(cluster)
	return follow(ctx, cli, key, false, "staged plan", func(state mirror) (Staged, bool) {
		kv, ok := state[key]
		if !ok {
			return Staged{}, true
		}
		return decodeStaged(key, kv.Value), true
	}), nil
}
