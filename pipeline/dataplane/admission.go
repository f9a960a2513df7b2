package dataplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ErrBusy reports a request refused because the cluster is at its session
// limit and its admission queue is full, or stayed full for the queue
// timeout. It reaches clients as RESOURCE_EXHAUSTED (gRPC) and 429 (HTTP),
// with a retry delay.
var ErrBusy = errors.New("pipeline: busy")

// RetryAfter is the delay refused clients are told to wait.
const RetryAfter = 2 * time.Second

// BusyError is the status of a refused request: RESOURCE_EXHAUSTED with a
// RetryInfo detail, which the HTTP edge turns into Retry-After.
func BusyError(format string, a ...any) error {
	st := status.New(codes.ResourceExhausted, fmt.Sprintf(format, a...))
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(RetryAfter)}); err == nil {
		st = d
	}
	return st.Err()
}

// RetryDelay is the retry delay a status error carries, or 0.
func RetryDelay(err error) time.Duration {
	st, ok := status.FromError(err)
	if !ok {
		return 0
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// Admission bounds the generations running at once. Past the limit a
// request waits in a bounded FIFO queue for at most the queue timeout;
// past the queue it is refused at once. Nothing waits without bound.
type Admission struct {
	mu       sync.Mutex
	limit    int // sessions that may run at once
	active   int
	waiters  []chan struct{} // FIFO; closed when granted
	maxQueue int
	timeout  time.Duration
	refused  uint64
}

// NewAdmission admits limit sessions at once and queues maxQueue more for
// at most timeout each.
func NewAdmission(limit, maxQueue int, timeout time.Duration) *Admission {
	return &Admission{limit: max(limit, 1), maxQueue: max(maxQueue, 0), timeout: timeout}
}

// Acquire admits one session, waiting in the queue if needed. The returned
// function gives the place back; call it exactly once.
func (a *Admission) Acquire(ctx context.Context) (release func(), err error) {
	a.mu.Lock()
	if a.active < a.limit && len(a.waiters) == 0 {
		a.active++
		a.mu.Unlock()
		return a.releaseFunc(), nil
	}
	if len(a.waiters) >= a.maxQueue {
		a.refused++
		active, limit := a.active, a.limit
		a.mu.Unlock()
		return nil, BusyError("cluster busy: %d of %d sessions running and %d requests queued; retry later", active, limit, a.maxQueue)
	}
	ch := make(chan struct{})
	a.waiters = append(a.waiters, ch)
	a.mu.Unlock()

	t := time.NewTimer(a.timeout)
	defer t.Stop()
	var cause error
	select {
	case <-ch:
		return a.releaseFunc(), nil
	case <-t.C:
		cause = BusyError("cluster busy: no session free within the %v queue timeout; retry later", a.timeout)
	case <-ctx.Done():
		cause = ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, w := range a.waiters {
		if w == ch {
			a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
			if status.Code(cause) == codes.ResourceExhausted {
				a.refused++
			}
			return nil, cause
		}
	}
	// Granted while timing out: the place is ours, give it back.
	a.active--
	a.grantLocked()
	return nil, cause
}

func (a *Admission) releaseFunc() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.active--
			a.grantLocked()
			a.mu.Unlock()
		})
	}
}

func (a *Admission) grantLocked() {
	for a.active < a.limit && len(a.waiters) > 0 {
		ch := a.waiters[0]
		a.waiters = a.waiters[1:]
		a.active++
		close(ch)
	}
}

// SetLimit changes the number of sessions that may run at once; running
// sessions above a lowered limit finish normally.
func (a *Admission) SetLimit(n int) {
	a.mu.Lock()
	a.limit = max(n, 1)
	a.grantLocked()
	a.mu.Unlock()
}

// AdmissionStats are the admission figures at one moment.
type AdmissionStats struct {
	Limit, Active, Queued, MaxQueue int
	Refused                         uint64
}

// Stats returns the current figures.
func (a *Admission) Stats() AdmissionStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AdmissionStats{Limit: a.limit, Active: a.active, Queued: len(a.waiters), MaxQueue: a.maxQueue, Refused: a.refused}
}
