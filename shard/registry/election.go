package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/phalanx-llm/phalanx/shard"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrNoLeader: nobody holds the leadership.
var ErrNoLeader = errors.New("registry: no leader")

// DefaultSessionTTL is how long a leader that stopped renewing its session
// (crashed, partitioned) keeps the leadership before another candidate
// takes over.
const DefaultSessionTTL = 10 * time.Second

// CampaignOption tunes Campaign.
type CampaignOption func(*campaignConfig)

type campaignConfig struct{ ttl time.Duration }

// WithSessionTTL sets the TTL of the leader's session (rounded up to
// whole seconds); DefaultSessionTTL otherwise.
func WithSessionTTL(ttl time.Duration) CampaignOption {
	return func(c *campaignConfig) { c.ttl = ttl }
}

// Leadership is a won election. It ends when Resign is called or when its
// session expires (the process could not renew it within the TTL); Done
// tells which moment that is.
type Leadership struct {
	id       string
	cli      *clientv3.Client
	cluster  string
	session  *concurrency.Session
	election *concurrency.Election
	key      string // the election key it won with
	rev      int64  // and that key's create revision
	done     chan struct{}
	resigned chan struct{}
	once     sync.Once
	err      error
}

// Campaign blocks until id is the leader of cluster, or ctx is done (then
// it withdraws the candidacy and returns ctx's error). The leader's key
// is attached to a session lease of DefaultSessionTTL (see
// WithSessionTTL), kept alive in the background.
func Campaign(ctx context.Context, cli *clientv3.Client, cluster, id string, opts ...CampaignOption) (*Leadership, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty candidate id", ErrInvalidName)
	}
	cfg := campaignConfig{ttl: DefaultSessionTTL}
	for _, o := range opts {
		o(&cfg)
	}
	ttl := max(int64((cfg.ttl+time.Second-1)/time.Second), 1)
	// Grant the lease under ctx ourselves: NewSession would grant it under
	// the client's lifetime context and could block past ctx.
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("registry: campaign: %w", err)
	}
	session, err := concurrency.NewSession(cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(ttl)))
	if err != nil {
		revokeCtx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		_, _ = cli.Revoke(revokeCtx, lease.ID) // best effort: the lease expires anyway
		return nil, fmt.Errorf("registry: campaign: %w", err)
	}
	election := concurrency.NewElection(session, LeaderPrefix(cluster))
	if err := election.Campaign(ctx, id); err != nil {
		session.Close()
		return nil, fmt.Errorf("registry: campaign: %w", err)
	}
	l := &Leadership{
		id: id, cli: cli, cluster: cluster,
		session: session, election: election,
		key: election.Key(), rev: election.Rev(),
		done: make(chan struct{}), resigned: make(chan struct{}),
	}
	go func() {
		defer close(l.done)
		select {
		case <-session.Done():
		case <-l.resigned:
		}
	}()
	return l, nil
}

// ID is the candidate id this leadership was won with.
func (l *Leadership) ID() string { return l.id }

// Done is closed when the leadership ends: the session expired or could
// not be renewed, or Resign was called. A leader must stop acting as one
// (publishing plans, routing) when it is closed.
func (l *Leadership) Done() <-chan struct{} { return l.done }

// Resign gives up the leadership (another candidate takes over at once)
// and ends the session. Calling it again returns the first result.
func (l *Leadership) Resign(ctx context.Context) error {
	l.once.Do(func() {
		err := l.election.Resign(ctx)
		if cerr := l.session.Close(); err == nil && cerr != nil && ctx.Err() == nil {
			err = cerr
		}
		close(l.resigned)
		<-l.done
		if err != nil {
			l.err = fmt.Errorf("registry: resign: %w", err)
		}
	})
	return l.err
}

// cmp is the transaction condition that holds while l leads: its key
// still exists with the revision it won with.
func (l *Leadership) cmp() clientv3.Cmp {
	// Not l.election.Key(): Resign clears it.
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)
}

// holds reports whether l's election key is still in place.
func (l *Leadership) holds(ctx context.Context) (bool, error) {
	resp, err := l.cli.Txn(ctx).If(l.cmp()).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// PublishPlan is the package's PublishPlan fenced by the leadership: the
// transaction also requires that this leader's election key still exists,
// so a deposed leader that has not noticed yet cannot overwrite its
// successor's plan (ErrNotLeader).
func (l *Leadership) PublishPlan(ctx context.Context, plan shard.Plan, expectEpoch uint64) error {
	return publishPlan(ctx, l.cli, l.cluster, plan, expectEpoch, l)
}

// Leader returns the id of cluster's current leader, or ErrNoLeader.
func Leader(ctx context.Context, cli *clientv3.Client, cluster string) (string, error) {
	if err := checkName("cluster", cluster); err != nil {
		return "", err
	}
	// As concurrency.Election.Leader does, without needing a session: the
	// leader is the candidate key created first.
	resp, err := cli.Get(ctx, LeaderPrefix(cluster)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("registry: leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", ErrNoLeader
	}
	return string(resp.Kvs[0].Value), nil
}
