// Package registry keeps Phalanx's cluster state in etcd: which workers are
// alive (membership), which plan is in force, and which coordinator leads.
//
// All keys live under /phalanx/<cluster>/:
//
//	workers/<id>  JSON WorkerRecord: shard.WorkerInfo plus the epoch the
//	              worker is ready for and the layers it holds; attached to
//	              a lease the worker keeps alive, so a dead worker
//	              disappears by itself within its TTL.
//	plan          JSON shard.Plan, epoch inside; written only by a
//	              transaction that moves the epoch forward.
//	leader/<lease> election candidates (go.etcd.io/etcd/client/v3/concurrency);
//	              the one created first leads.
//
// The package never plans (that is shard.MakePlan) and never serves
// traffic; it only reads and writes these keys.
//
// # Usage
//
// Worker:
//
//	cli, _ := clientv3.New(registry.ClientConfig(endpoints))
//	m, err := registry.Register(ctx, cli, "prod", info, 10*time.Second)
//	defer m.Close()
//	plans, _ := registry.WatchPlan(ctx, cli, "prod")
//	for p := range plans {
//		// load the layers p assigns to this worker, then:
//		m.Update(ctx, func(r *registry.WorkerRecord) { r.ReadyEpoch, r.Layers = p.Epoch, [2]int{s.Start, s.End} })
//	}
//
// Coordinator:
//
//	lead, err := registry.Campaign(ctx, cli, "prod", hostname)
//	workers, _ := registry.WatchWorkers(ctx, cli, "prod")
//	for {
//		select {
//		case <-lead.Done():
//			return errLostLeadership // stop acting as leader
//		case ws := <-workers:
//			next, err := shard.MakePlan(size, infos(ws), shard.PlanOptions{PreferStable: &current})
//			if err == nil && !next.SameAssignment(current) {
//				err = lead.PublishPlan(ctx, next, current.Epoch)
//			}
//		}
//	}
//
// # Failure behaviour
//
// etcd can restart, compact its history or lose its leader at any time, and
// a worker must not drop out of the cluster because of it:
//
//   - A Membership re-registers by itself. When the keep-alive channel
//     closes (the lease expired, or etcd could not be reached for longer
//     than the TTL) or an Update finds the lease gone, it grants a new lease
//     and publishes its latest record again, retrying with backoff (100 ms
//     doubling to 2 s, jittered) until it succeeds or is closed.
//   - WatchPlan and WatchWorkers get the keys afresh and watch again from
//     there whenever a watch ends (compaction, lost leader, closed
//     channel), with the same backoff; a value identical to the last one
//     sent is not sent again. Their channels hold only the newest value: a
//     slow reader skips intermediate states, never the latest one.
//   - A Leadership ends (Done is closed) when its session lease cannot be
//     renewed within the session TTL. Leadership.PublishPlan is fenced by
//     the leader's key, so a deposed leader cannot overwrite its
//     successor's plan even before it notices (ErrNotLeader).
//
// gRPC's default reconnect backoff grows to two minutes, which would make
// every one of these recoveries slow; ClientConfig caps it at 2 s. Daemons
// should build their client from it.
package registry
