package registry

import (
	"context"
	"math/rand/v2"
	"time"
)

// retryBackoff spaces out attempts to reach etcd: 100 ms doubling to 2 s,
// with ±20 % jitter so that a cluster's workers do not retry in step
// after an etcd restart.
type retryBackoff struct{ next time.Duration }

const (
	minRetry = 100 * time.Millisecond
	maxRetry = 2 * time.Second
	// attemptTimeout bounds one attempt to reach etcd inside a retry loop,
	// so that a loop blocked on a dead server gets to try again.
	attemptTimeout = 5 * time.Second
)

func (b *retryBackoff) wait() time.Duration {
	if b.next == 0 {
		b.next = minRetry
	}
	d := b.next
	b.next = min(2*b.next, maxRetry)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (b *retryBackoff) reset() { b.next = 0 }

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
