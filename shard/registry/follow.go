package registry

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// mirror is a local copy of the keys a watcher follows.
type mirror map[string]*mvccpb.KeyValue

// fingerprint identifies the mirror's content: equal fingerprints mean the
// same keys at the same revisions.
func (m mirror) fingerprint() string {
	keys := make([]string, 0, len(m))
	for k, kv := range m {
		keys = append(keys, k+"@"+strconv.FormatInt(kv.ModRevision, 10))
	}
	sort.Strings(keys)
	return strings.Join(keys, "\n")
}

// follow mirrors key (or every key under it, if prefix) and sends
// render(mirror) on the returned channel each time the mirror changes,
// starting with its current content. It survives everything etcd can do
// to a watch — compaction, a lost leader, a restart — by getting the keys
// afresh and watching again from there, with backoff; a value identical
// to the last one sent (same keys at the same revisions) is not sent
// twice. The channel holds only the latest value: a slow reader skips
// intermediate states, never the last. It is closed when ctx is done.
func follow[T any](ctx context.Context, cli *clientv3.Client, key string, prefix bool, what string, render func(mirror) (T, bool)) <-chan T {
	out := make(chan T)
	go func() {
		defer close(out)
		var (
			pending     T
			havePending bool
			sent        bool
			last        string
			bo          retryBackoff
			state       = mirror{}
		)
		offer := func() {
			fp := state.fingerprint()
			if sent && fp == last {
				return
			}
			v, ok := render(state)
			last, sent = fp, true
			if ok {
				pending, havePending = v, true
			}
		}
		// wait sleeps d while still delivering a pending value.
		wait := func(d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			for {
				var send chan<- T
				if havePending {
					send = out
				}
				select {
				case <-ctx.Done():
					return false
				case <-t.C:
					return true
				case send <- pending:
					havePending = false
				}
			}
		}
		var opts []clientv3.OpOption
		if prefix {
			opts = append(opts, clientv3.WithPrefix())
		}
		for ctx.Err() == nil {
			gctx, cancel := context.WithTimeout(ctx, attemptTimeout)
			resp, err := cli.Get(gctx, key, opts...)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					slog.Debug("registry: get failed; retrying", "what", what, "err", err)
				}
				if !wait(bo.wait()) {
					return
				}
				continue
			}
			state = mirror{}
			for _, kv := range resp.Kvs {
				state[string(kv.Key)] = kv
			}
			offer()

			wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			wch := cli.Watch(wctx, key, append(opts, clientv3.WithRev(resp.Header.Revision+1))...)
			healthy := true
			for healthy {
				var send chan<- T
				if havePending {
					send = out
				}
				select {
				case <-ctx.Done():
					wcancel()
					return
				case send <- pending:
					havePending = false
				case wr, ok := <-wch:
					if !ok || wr.Canceled || wr.CompactRevision != 0 || wr.Err() != nil {
						if ctx.Err() == nil {
							slog.Debug("registry: watch ended; resyncing", "what", what, "err", wr.Err(), "compacted", wr.CompactRevision)
						}
						healthy = false
						break
					}
					for _, ev := range wr.Events {
						if ev.Type == clientv3.EventTypeDelete {
							delete(state, string(ev.Kv.Key))
						} else {
							state[string(ev.Kv.Key)] = ev.Kv
						}
					}
					bo.reset()
					offer()
				}
			}
			wcancel()
			if !wait(bo.wait()) {
				return
			}
		}
	}()
	return out
}
