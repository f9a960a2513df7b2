package registry

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/shard"
	"github.com/phalanx-llm/phalanx/shard/registry/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The registry logs re-registrations at Warn/Info; keep test output to
	// warnings.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func worker(id string) shard.WorkerInfo {
	return shard.WorkerInfo{ID: id, Address: id + ":7070", Version: "test", MemoryTotal: 16e9, MemoryFree: 12e9,
		Speed: 100, Labels: map[string]string{"zone": "a"}}
}

func plan(epoch uint64) shard.Plan {
	return shard.Plan{Epoch: epoch, Model: "phi-2", NumLayers: 32, Stages: []shard.Stage{
		{WorkerID: "a", Address: "a:7070", Start: 0, End: 16},
		{WorkerID: "b", Address: "b:7070", Start: 16, End: 32},
	}, CreatedAt: time.Unix(1, 0).UTC()}
}

// eventually polls cond every 50 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func workerIDs(t *testing.T, ctx context.Context, cli *clientv3.Client, cluster string) []string {
	t.Helper()
	recs, err := ListWorkers(ctx, cli, cluster)
	if err != nil {
		t.Logf("ListWorkers: %v", err)
		return nil
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

func equalIDs(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// receive waits for the next value on ch.
func receive[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
	}
	panic("unreachable")
}

func TestRegisterListUpdateClose(t *testing.T) {
	srv := etcdtest.New(t)
	cli := srv.Client(t)
	ctx := testContext(t, 20*time.Second)

	a, err := Register(ctx, cli, "c1", worker("a"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Register(ctx, cli, "c1", worker("b"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	recs, err := ListWorkers(ctx, cli, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID != "a" || recs[1].ID != "b" || recs[0].Labels["zone"] != "a" || recs[0].Speed != 100 {
		t.Fatalf("ListWorkers = %+v", recs)
	}
	if ids := workerIDs(t, ctx, cli, "other"); len(ids) != 0 {
		t.Fatalf("another cluster sees %v", ids)
	}

	if err := a.Update(ctx, func(r *WorkerRecord) { r.ReadyEpoch, r.Layers = 3, [2]int{0, 16} }); err != nil {
		t.Fatal(err)
	}
	recs, _ = ListWorkers(ctx, cli, "c1")
	if recs[0].ReadyEpoch != 3 || recs[0].Layers != [2]int{0, 16} {
		t.Fatalf("after Update: %+v", recs[0])
	}
	if err := a.Update(ctx, func(r *WorkerRecord) { r.ID = "z" }); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Update changing the ID = %v", err)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if ids := workerIDs(t, ctx, cli, "c1"); !equalIDs(ids, "b") {
		t.Fatalf("after Close: %v", ids)
	}
	if err := a.Update(ctx, func(*WorkerRecord) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Update after Close = %v", err)
	}
	if _, err := Register(ctx, cli, "c1", worker("x/y"), time.Second); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Register with a slash = %v", err)
	}
}

func TestLeaseExpiryAndRecovery(t *testing.T) {
	srv := etcdtest.New(t)
	observer := srv.Client(t)
	ctx := testContext(t, 30*time.Second)

	// A worker whose process dies: its connection to etcd goes away, the
	// lease is not renewed and its key expires with the TTL.
	dying := srv.Client(t)
	m, err := Register(ctx, dying, "c1", worker("dying"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	dying.Close()
	eventually(t, 6*time.Second, "expired worker gone", func() bool {
		return len(workerIDs(t, ctx, observer, "c1")) == 0
	})
	t.Logf("key expired %v after the worker's client closed", time.Since(start).Round(10*time.Millisecond))
	m.Close() // its client is closed: the revoke fails, nothing to check

	// A live worker whose lease is taken away (revoked by an operator, or
	// forgotten by etcd): it notices and registers again with its latest
	// record.
	cli := srv.Client(t)
	w, err := Register(ctx, cli, "c1", worker("w"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Update(ctx, func(r *WorkerRecord) { r.ReadyEpoch = 7 }); err != nil {
		t.Fatal(err)
	}
	if _, err := observer.Revoke(ctx, w.currentLease()); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	eventually(t, 8*time.Second, "worker registered again", func() bool {
		recs, err := ListWorkers(ctx, observer, "c1")
		return err == nil && len(recs) == 1 && recs[0].ReadyEpoch == 7
	})
	t.Logf("worker back %v after its lease was revoked", time.Since(start).Round(10*time.Millisecond))
}

func TestPublishAndWatchPlan(t *testing.T) {
	srv := etcdtest.New(t)
	cli := srv.Client(t)
	ctx := testContext(t, 20*time.Second)

	if _, err := LoadPlan(ctx, cli, "c1"); !errors.Is(err, ErrNoPlan) {
		t.Fatalf("LoadPlan before any plan = %v", err)
	}
	wctx, stop := context.WithCancel(ctx)
	plans, err := WatchPlan(wctx, cli, "c1")
	if err != nil {
		t.Fatal(err)
	}

	if err := PublishPlan(ctx, cli, "c1", plan(1), 0); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, plans, 5*time.Second, "plan 1"); p.Epoch != 1 || !p.SameAssignment(plan(1)) || !p.CreatedAt.Equal(plan(1).CreatedAt) {
		t.Fatalf("watched %+v", p)
	}
	if err := PublishPlan(ctx, cli, "c1", plan(2), 1); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, plans, 5*time.Second, "plan 2"); p.Epoch != 2 {
		t.Fatalf("watched epoch %d", p.Epoch)
	}

	for _, tt := range []struct {
		name   string
		epoch  uint64
		expect uint64
	}{
		{"stale expectation", 3, 1},
		{"create over existing", 3, 0},
		{"epoch does not move", 2, 2},
		{"epoch goes back", 1, 2},
	} {
		if err := PublishPlan(ctx, cli, "c1", plan(tt.epoch), tt.expect); !errors.Is(err, ErrEpochConflict) {
			t.Errorf("%s: PublishPlan(epoch %d, expect %d) = %v, want ErrEpochConflict", tt.name, tt.epoch, tt.expect, err)
		}
	}
	if err := PublishPlan(ctx, cli, "c1", shard.Plan{Epoch: 9, NumLayers: 32}, 2); !errors.Is(err, shard.ErrInvalidPlan) {
		t.Errorf("invalid plan: %v", err)
	}
	if p, err := LoadPlan(ctx, cli, "c1"); err != nil || p.Epoch != 2 {
		t.Fatalf("LoadPlan = %d, %v", p.Epoch, err)
	}

	// Of two publishers racing from the same epoch, exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = PublishPlan(ctx, cli, "c1", plan(3), 2) })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("racing publishers: %v, %v", errs[0], errs[1])
	}
	if p := receive(t, plans, 5*time.Second, "plan 3"); p.Epoch != 3 {
		t.Fatalf("watched epoch %d", p.Epoch)
	}

	// A new watcher starts with the plan in force.
	late, err := WatchPlan(wctx, cli, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if p := receive(t, late, 5*time.Second, "current plan"); p.Epoch != 3 {
		t.Fatalf("late watcher got epoch %d", p.Epoch)
	}
	stop()
	for range plans {
	}
	for range late {
	}
}

func TestWatchWorkers(t *testing.T) {
	srv := etcdtest.New(t)
	cli := srv.Client(t)
	ctx := testContext(t, 20*time.Second)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	snaps, err := WatchWorkers(wctx, cli, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if s := receive(t, snaps, 5*time.Second, "initial"); len(s) != 0 {
		t.Fatalf("initial snapshot %+v", s)
	}
	a, err := Register(ctx, cli, "c1", worker("a"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s := receive(t, snaps, 5*time.Second, "a joined"); len(s) != 1 || s[0].ID != "a" {
		t.Fatalf("snapshot %+v", s)
	}
	if err := a.Update(ctx, func(r *WorkerRecord) { r.ReadyEpoch = 4 }); err != nil {
		t.Fatal(err)
	}
	if s := receive(t, snaps, 5*time.Second, "a ready"); len(s) != 1 || s[0].ReadyEpoch != 4 {
		t.Fatalf("snapshot %+v", s)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if s := receive(t, snaps, 5*time.Second, "a left"); len(s) != 0 {
		t.Fatalf("snapshot %+v", s)
	}
	stop()
	for range snaps {
	}
}

func TestElection(t *testing.T) {
	srv := etcdtest.New(t)
	admin := srv.Client(t)
	ctx := testContext(t, 30*time.Second)

	if _, err := Leader(ctx, admin, "c1"); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader before any campaign = %v", err)
	}
	first, err := Campaign(ctx, srv.Client(t), "c1", "coord-1", WithSessionTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := Leader(ctx, admin, "c1"); err != nil || id != "coord-1" {
		t.Fatalf("Leader = %q, %v", id, err)
	}

	type result struct {
		l   *Leadership
		err error
	}
	campaign := func(id string) <-chan result {
		ch := make(chan result, 1)
		go func() {
			l, err := Campaign(ctx, srv.Client(t), "c1", id, WithSessionTTL(2*time.Second))
			ch <- result{l, err}
		}()
		return ch
	}
	secondCh := campaign("coord-2")
	select {
	case r := <-secondCh:
		t.Fatalf("second candidate won while the first leads: %+v", r)
	case <-time.After(500 * time.Millisecond):
	}

	// A candidate that gives up while waiting leaves no trace.
	gctx, giveUp := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := Campaign(gctx, srv.Client(t), "c1", "impatient"); err == nil {
		t.Fatal("impatient candidate won")
	}
	giveUp()

	if err := first.PublishPlan(ctx, plan(1), 0); err != nil {
		t.Fatalf("leader publish: %v", err)
	}
	if err := first.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	default:
		t.Fatal("Done not closed after Resign")
	}
	second := receive(t, secondCh, 5*time.Second, "second takes over after resign")
	if second.err != nil {
		t.Fatal(second.err)
	}
	if id, _ := Leader(ctx, admin, "c1"); id != "coord-2" {
		t.Fatalf("Leader = %q after the first resigned", id)
	}
	if err := first.PublishPlan(ctx, plan(2), 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("resigned leader publish = %v, want ErrNotLeader", err)
	}

	// The second leader's session dies (its lease is gone, as when the
	// process stops renewing it): Done closes and the third takes over.
	thirdCh := campaign("coord-3")
	time.Sleep(200 * time.Millisecond)
	if _, err := admin.Revoke(ctx, second.l.session.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the session died")
	}
	third := receive(t, thirdCh, 5*time.Second, "third takes over after the session died")
	if third.err != nil {
		t.Fatal(third.err)
	}
	if err := second.l.PublishPlan(ctx, plan(2), 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("deposed leader publish = %v, want ErrNotLeader", err)
	}
	if err := third.l.PublishPlan(ctx, plan(2), 1); err != nil {
		t.Fatalf("new leader publish: %v", err)
	}
	if id, _ := Leader(ctx, admin, "c1"); id != "coord-3" {
		t.Fatalf("Leader = %q", id)
	}
	second.l.Resign(ctx)
	if err := third.l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Leader(ctx, admin, "c1"); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("Leader after everyone resigned = %v", err)
	}
}

// TestRideOutEtcdRestart stops etcd for longer than the worker's lease TTL
// and starts it again on the same data and ports: the worker is listed
// again within seconds, and watchers see changes made after the restart.
func TestRideOutEtcdRestart(t *testing.T) {
	srv := etcdtest.New(t)
	workerCli, coordCli := srv.Client(t), srv.Client(t)
	ctx := testContext(t, 40*time.Second)

	m, err := Register(ctx, workerCli, "c1", worker("a"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	plans, _ := WatchPlan(wctx, coordCli, "c1")
	workers, _ := WatchWorkers(wctx, coordCli, "c1")
	if err := PublishPlan(ctx, coordCli, "c1", plan(1), 0); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, plans, 5*time.Second, "plan 1"); p.Epoch != 1 {
		t.Fatalf("epoch %d", p.Epoch)
	}
	if s := receive(t, workers, 5*time.Second, "a listed"); len(s) != 1 {
		t.Fatalf("workers %+v", s)
	}

	srv.Restart(t, 3*time.Second)
	restarted := time.Now()

	eventually(t, 10*time.Second, "worker listed after the restart", func() bool {
		return equalIDs(workerIDs(t, ctx, coordCli, "c1"), "a")
	})
	t.Logf("worker listed %v after etcd came back", time.Since(restarted).Round(10*time.Millisecond))
	// The worker must stay listed, i.e. its lease is being renewed (a
	// record left over from the old lease would expire within the TTL).
	time.Sleep(3 * time.Second)
	if ids := workerIDs(t, ctx, coordCli, "c1"); !equalIDs(ids, "a") {
		t.Fatalf("worker not kept alive after the restart: %v", ids)
	}
	if err := m.Update(ctx, func(r *WorkerRecord) { r.ReadyEpoch = 2 }); err != nil {
		t.Fatalf("Update after the restart: %v", err)
	}

	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := PublishPlan(pctx, coordCli, "c1", plan(2), 1); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, plans, 10*time.Second, "plan 2 after the restart"); p.Epoch != 2 {
		t.Fatalf("watched epoch %d after the restart (plan 1 sent twice?)", p.Epoch)
	}
	eventually(t, 10*time.Second, "workers watcher sees the update", func() bool {
		select {
		case s := <-workers:
			return len(s) == 1 && s[0].ReadyEpoch == 2
		default:
			return false
		}
	})
	stop()
	for range plans {
	}
	for range workers {
	}
}

// The leader sees every state of the plan key — garbage, a deletion, a
// foreign plan — and restores its own over exactly what it saw.
func TestWatchStoredPlanAndRestore(t *testing.T) {
	cli, ctx, lead := leaderOfC1(t)
	wctx, stop := context.WithCancel(ctx)
	stored, err := WatchStoredPlan(wctx, cli, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if sp := receive(t, stored, 5*time.Second, "empty key"); sp.Present {
		t.Fatalf("before any plan: %+v", sp)
	}
	if err := lead.PublishPlan(ctx, plan(1), 0); err != nil {
		t.Fatal(err)
	}
	sp := receive(t, stored, 5*time.Second, "plan 1")
	if !sp.Present || sp.Err != nil || sp.Plan.Epoch != 1 || sp.ModRevision == 0 {
		t.Fatalf("plan 1: %+v", sp)
	}
	key := PlanKey("c1")
	for _, tt := range []struct {
		name  string
		write func() error
		check func(StoredPlan) bool
	}{
		{"garbage", func() error { _, err := cli.Put(ctx, key, "{not json"); return err },
			func(sp StoredPlan) bool { return sp.Present && sp.Err != nil }},
		{"no stages", func() error { _, err := cli.Put(ctx, key, `{"epoch":7,"model":"phi-2","num_layers":32}`); return err },
			func(sp StoredPlan) bool {
				return sp.Present && errors.Is(sp.Err, shard.ErrInvalidPlan) && sp.Plan.Epoch == 7
			}},
		{"deleted", func() error { _, err := cli.Delete(ctx, key); return err },
			func(sp StoredPlan) bool { return !sp.Present && sp.ModRevision == 0 }},
	} {
		if err := tt.write(); err != nil {
			t.Fatal(err)
		}
		sp := receive(t, stored, 5*time.Second, tt.name)
		if !tt.check(sp) {
			t.Fatalf("%s: watched %+v", tt.name, sp)
		}
		if now, err := ReadPlan(ctx, cli, "c1"); err != nil || now.ModRevision != sp.ModRevision || now.Present != sp.Present {
			t.Fatalf("%s: ReadPlan = %+v, %v; watched %+v", tt.name, now, err, sp)
		}
		// Restoring over a revision that is not the current one stores nothing.
		if err := lead.RestorePlan(ctx, plan(9), sp.ModRevision+1000); !errors.Is(err, ErrEpochConflict) {
			t.Fatalf("%s: RestorePlan over a stale revision = %v", tt.name, err)
		}
		if err := lead.RestorePlan(ctx, plan(10), sp.ModRevision); err != nil {
			t.Fatalf("%s: RestorePlan = %v", tt.name, err)
		}
		if p := receive(t, stored, 5*time.Second, "restored"); p.Err != nil || p.Plan.Epoch != 10 {
			t.Fatalf("%s: after RestorePlan watched %+v", tt.name, p)
		}
	}
	// Garbage cleared by a leader with no plan of its own.
	cli.Put(ctx, key, "garbage")
	sp = receive(t, stored, 5*time.Second, "garbage again")
	if err := lead.ClearPlan(ctx, sp.ModRevision); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, stored, 5*time.Second, "cleared"); p.Present {
		t.Fatalf("after ClearPlan: %+v", p)
	}
	// A resigned leader restores nothing.
	if err := lead.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lead.RestorePlan(ctx, plan(11), 0); !errors.Is(err, ErrNotLeader) {
		t.Errorf("RestorePlan after Resign = %v, want ErrNotLeader", err)
	}
	stop()
	for range stored {
	}
}

// The staged plan: written and cleared only by the leader, watched with
// its removals, unreadable values hidden.
func TestStagedPlan(t *testing.T) {
	cli, ctx, lead := leaderOfC1(t)
	wctx, stop := context.WithCancel(ctx)
	staged, err := WatchStaged(wctx, cli, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if s := receive(t, staged, 5*time.Second, "nothing staged"); s.Present {
		t.Fatalf("before staging: %+v", s)
	}
	if err := lead.StagePlan(ctx, shard.Plan{Epoch: 3}); !errors.Is(err, shard.ErrInvalidPlan) {
		t.Fatalf("staging an invalid plan: %v", err)
	}
	if err := lead.StagePlan(ctx, plan(2)); err != nil {
		t.Fatal(err)
	}
	if s := receive(t, staged, 5*time.Second, "staged"); !s.Present || s.Plan.Epoch != 2 || !s.Plan.SameAssignment(plan(2)) {
		t.Fatalf("staged: %+v", s)
	}
	if s, err := ReadStaged(ctx, cli, "c1"); err != nil || !s.Present || s.Plan.Epoch != 2 {
		t.Fatalf("ReadStaged = %+v, %v", s, err)
	}
	cli.Put(ctx, StagedKey("c1"), "{garbage")
	if s := receive(t, staged, 5*time.Second, "garbage"); s.Present {
		t.Fatalf("garbage watched as %+v", s)
	}
	if err := lead.StagePlan(ctx, plan(4)); err != nil {
		t.Fatal(err)
	}
	receive(t, staged, 5*time.Second, "staged again")
	if err := lead.ClearStaged(ctx); err != nil {
		t.Fatal(err)
	}
	if s := receive(t, staged, 5*time.Second, "cleared"); s.Present {
		t.Fatalf("after ClearStaged: %+v", s)
	}
	if err := lead.ClearStaged(ctx); err != nil {
		t.Fatalf("clearing nothing: %v", err)
	}
	if err := lead.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lead.StagePlan(ctx, plan(5)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("StagePlan after Resign = %v, want ErrNotLeader", err)
	}
	stop()
	for range staged {
	}
}

// leaderOfC1 starts an etcd and makes coord-1 the leader of cluster c1 for
// the test (it resigns at the end).
func leaderOfC1(t *testing.T) (*clientv3.Client, context.Context, *Leadership) {
	t.Helper()
	cli := etcdtest.New(t).Client(t)
	ctx := testContext(t, 20*time.Second)
	lead, err := Campaign(ctx, cli, "c1", "coord-1", WithSessionTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lead.Resign(context.Background()) })
	return cli, ctx, lead
}
