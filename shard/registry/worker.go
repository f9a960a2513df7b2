package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/phalanx-llm/phalanx/shard"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrClosed is returned by a Membership after Close.
var ErrClosed = errors.New("registry: membership closed")

// WorkerRecord is what a worker publishes under workers/<id>: what it is
// (shard.WorkerInfo) and what it currently holds.
type WorkerRecord struct {
	shard.WorkerInfo
	// ReadyEpoch is the plan epoch whose layers the worker has loaded and
	// serves; the coordinator routes to it only for that epoch.
	ReadyEpoch uint64 `json:"ready_epoch"`
	// Layers is the [start, end) range the worker holds now; {0, 0} for
	// none.
	Layers [2]int `json:"layers"`
	// Transfer is the progress of a worker without model files fetching
	// its planned layers; nil for a worker that reads its own files.
	Transfer *Transfer `json:"transfer,omitempty"`
}

func (r WorkerRecord) clone() WorkerRecord {
	r.Labels = maps.Clone(r.Labels)
	if r.Transfer != nil {
		t := *r.Transfer
		r.Transfer = &t
	}
	return r
}

// Membership keeps a worker's record in etcd for as long as the worker
// lives. Its methods are safe for concurrent use.
type Membership struct {
	cli *clientv3.Client
	key string
	ttl int64 // seconds

	mu    sync.Mutex // held across puts, so that records reach etcd in order
	rec   WorkerRecord
	lease clientv3.LeaseID

	lost      chan struct{} // an Update found the lease gone
	cancel    context.CancelFunc
	done      chan struct{} // closed when the keep-alive loop exits
	closeOnce sync.Once
	closeErr  error
	closed    bool // guarded by mu
}

// Register publishes info under workers/<info.ID> with a lease of the given
// TTL (rounded up to whole seconds, at least one) and keeps the lease alive
// until Close. If the lease is lost — etcd restarted and forgot it, or
// could not be reached for longer than the TTL — Register's background
// loop grants a new lease and publishes the latest record again, retrying
// with backoff (100 ms doubling to 2 s) until it succeeds or Close is
// called. A record with the same ID already in etcd (a previous
// incarnation of this worker, say) is overwritten.
//
// ctx bounds only the first registration; the membership lives until Close.
func Register(ctx context.Context, cli *clientv3.Client, cluster string, info shard.WorkerInfo, ttl time.Duration) (*Membership, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	if err := checkName("worker id", info.ID); err != nil {
		return nil, err
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	m := &Membership{
		cli:  cli,
		key:  WorkerKey(cluster, info.ID),
		ttl:  max(secs, 1),
		rec:  WorkerRecord{WorkerInfo: info}.clone(),
		lost: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	if err := m.grantAndPut(ctx); err != nil {
		return nil, fmt.Errorf("registry: register %s: %w", info.ID, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	keepAlive, err := cli.KeepAlive(runCtx, m.currentLease())
	if err != nil {
		cancel()
		m.revoke()
		return nil, fmt.Errorf("registry: register %s: keep-alive: %w", info.ID, err)
	}
	m.cancel = cancel
	go m.run(runCtx, keepAlive)
	return m, nil
}

func (m *Membership) currentLease() clientv3.LeaseID {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease
}

// grantAndPut takes a new lease and publishes the record under it.
func (m *Membership) grantAndPut(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	lease, err := m.cli.Grant(ctx, m.ttl)
	if err != nil {
		return fmt.Errorf("grant lease: %w", err)
	}
	data, err := json.Marshal(m.rec)
	if err != nil {
		return err
	}
	if _, err := m.cli.Put(ctx, m.key, string(data), clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("put %s: %w", m.key, err)
	}
	m.lease = lease.ID
	return nil
}

// run consumes keep-alive responses; when the keep-alive channel closes
// (the lease expired or could not be renewed in time) or an Update found
// the lease gone, it registers again.
func (m *Membership) run(ctx context.Context, keepAlive <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(m.done)
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-keepAlive:
			if ok {
				continue
			}
		case <-m.lost:
		}
		if ctx.Err() != nil {
			return
		}
		slog.Warn("registry: worker lease lost; registering again", "key", m.key)
		var bo retryBackoff
		for {
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			err := m.grantAndPut(actx)
			cancel()
			if err == nil {
				keepAlive, err = m.cli.KeepAlive(ctx, m.currentLease())
			}
			if err == nil {
				slog.Info("registry: worker registered again", "key", m.key, "lease", m.currentLease())
				break
			}
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			slog.Debug("registry: re-registration failed; retrying", "key", m.key, "err", err)
			if !sleep(ctx, bo.wait()) {
				return
			}
		}
	}
}

// Record returns the latest record (published or waiting to be).
func (m *Membership) Record() WorkerRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rec.clone()
}

// Update changes the worker's record with fn and publishes it. The change
// is kept even when publishing fails: the membership publishes its latest
// record whenever it registers again, and the error only says that etcd
// has not seen it yet. fn must not change the ID.
func (m *Membership) Update(ctx context.Context, fn func(*WorkerRecord)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	rec := m.rec.clone()
	fn(&rec)
	if rec.ID != m.rec.ID {
		return fmt.Errorf("%w: Update changed the worker ID from %q to %q", ErrInvalidName, m.rec.ID, rec.ID)
	}
	m.rec = rec
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = m.cli.Put(ctx, m.key, string(data), clientv3.WithLease(m.lease))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		select {
		case m.lost <- struct{}{}:
		default:
		}
	}
	if err != nil {
		return fmt.Errorf("registry: update %s (kept; published on re-registration): %w", m.key, err)
	}
	return nil
}

// Close stops keeping the lease alive and revokes it, so the worker's key
// disappears at once rather than after the TTL. If etcd cannot be reached
// within a few seconds the key expires with the lease instead.
func (m *Membership) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		<-m.done
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.closeErr = m.revoke()
	})
	return m.closeErr
}

func (m *Membership) revoke() error {
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	if _, err := m.cli.Revoke(ctx, m.currentLease()); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("registry: revoke lease of %s: %w", m.key, err)
	}
	return nil
}

// decodeWorkers turns worker keys into records sorted by ID, skipping (and
// logging) records that do not parse.
func decodeWorkers(state mirror) []WorkerRecord {
	recs := make([]WorkerRecord, 0, len(state))
	for k, kv := range state {
		var r WorkerRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			slog.Warn("registry: skipping unreadable worker record", "key", k, "err", err)
			continue
		}
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	return recs
}

// ListWorkers returns the live workers' records, sorted by ID.
func ListWorkers(ctx context.Context, cli *clientv3.Client, cluster string) ([]WorkerRecord, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	resp, err := cli.Get(ctx, WorkersPrefix(cluster), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("registry: list workers: %w", err)
	}
	state := mirror{}
	for _, kv := range resp.Kvs {
		state[string(kv.Key)] = kv
	}
	return decodeWorkers(state), nil
}

// WatchWorkers sends the full list of live workers (sorted by ID) now and
// after every change, until ctx is done; then it closes the channel. A
// slow reader gets the latest list, not every intermediate one. The watch
// survives compaction and etcd restarts (it lists again and resumes).
func WatchWorkers(ctx context.Context, cli *clientv3.Client, cluster string) (<-chan []WorkerRecord, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	return follow(ctx, cli, WorkersPrefix(cluster), true, "workers", func(state mirror) ([]WorkerRecord, bool) {
		return decodeWorkers(state), true
	}), nil
}
