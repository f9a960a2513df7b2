package tests

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// rssKB reads a process's resident set size.
func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.Atoi(strings.Fields(rest)[0])
			return v
		}
	}
	return 0
}

// TestSoak runs 32 concurrent clients against a 3-worker cluster for
// $PHALANX_SOAK (e.g. 10m): every request must succeed (greedy ones with
// the reference tokens), goroutines and RSS must stay flat, and no KV cache
// may be left once the sessions end. Skipped unless PHALANX_SOAK is set.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("PHALANX_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set PHALANX_SOAK=10m to run the soak test")
	}
	fx := fixture(t, "phi-tiny-f32")
	local := localModel(t, fx)
	c := startCluster(t, fx, clusterOpts{workers: 3, workerArgs: []string{"--speed", "100"}})
	var requests, failures, tokens atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var refMu sync.Mutex
	for cl := 0; cl < 32; cl++ {
		wg.Add(1)
		go func(cl int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				prompt := []int{cl + 1, i % 1000, (cl * i) % 1000}
				req := tokenRequest(prompt, 8+(cl+i)%24)
				greedy := i%2 == 0
				if !greedy {
					seed := uint64(cl*100000 + i)
					req.Sampling = &phalanxpb.SamplingParams{Temperature: 0.9, TopP: 0.95, TopK: 50, Seed: &seed}
				}
				toks, _, _, err := c.generate(context.Background(), req)
				requests.Add(1)
				tokens.Add(int64(len(toks)))
				if err == nil && greedy {
					refMu.Lock()
					want, _ := engine.Greedy(local, prompt, int(req.MaxTokens))
					refMu.Unlock()
					if !slices.Equal(toks, want) {
						err = fmt.Errorf("client %d request %d: %v, want %v", cl, i, toks, want)
					}
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}(cl)
	}
	type sample struct {
		at                time.Duration
		coordRSS, workRSS int
		coordG, workG     int32
		sessions          int32
		reqs              int64
	}
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(min(d/10, 30*time.Second))
	for time.Now().Before(deadline) {
		<-tick.C
		st := c.status()
		s := sample{at: time.Since(start).Round(time.Second), coordRSS: rssKB(c.coord.cmd.Process.Pid), coordG: st.GetGoroutines(), reqs: requests.Load()}
		for _, w := range c.workers {
			s.workRSS += rssKB(w.cmd.Process.Pid)
		}
		for _, w := range st.GetWorkers() {
			s.workG += w.GetGoroutines()
			s.sessions += w.GetSessions()
		}
		samples = append(samples, s)
	}
	tick.Stop()
	wg.Wait()
	time.Sleep(time.Second)
	st := c.status()
	var left int32
	var leftBytes uint64
	for _, w := range st.GetWorkers() {
		left += w.GetSessions()
		leftBytes += w.GetKvCacheBytes()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %10s %14s %12s %14s %10s %9s\n", "time", "requests", "coord RSS MB", "coord gor.", "workers RSS MB", "workers g.", "sessions")
	for _, s := range samples {
		fmt.Fprintf(&b, "%-8v %10d %14.1f %12d %14.1f %10d %9d\n", s.at, s.reqs, float64(s.coordRSS)/1024, s.coordG, float64(s.workRSS)/1024, s.workG, s.sessions)
	}
	t.Logf("soak %v, 32 clients: %d requests, %d tokens, %d failures; after: %d sessions, %d KV bytes left\n%s",
		d, requests.Load(), tokens.Load(), failures.Load(), left, leftBytes, b.String())
	if failures.Load() > 0 {
		t.Errorf("%d failures; first: %v", failures.Load(), firstErr.Load())
	}
	if left != 0 || leftBytes != 0 {
		t.Errorf("%d sessions and %d KV cache bytes left after every session ended", left, leftBytes)
	}
	if n := len(samples); n >= 4 {
		first, last := samples[1], samples[n-1]
		if last.coordG > first.coordG+50 || last.workG > first.workG+50 {
			t.Errorf("goroutines grew: coordinator %d → %d, workers %d → %d", first.coordG, last.coordG, first.workG, last.workG)
		}
		if float64(last.coordRSS) > 1.5*float64(first.coordRSS)+20000 || float64(last.workRSS) > 1.5*float64(first.workRSS)+20000 {
			t.Errorf("RSS grew: coordinator %d → %d KB, workers %d → %d KB", first.coordRSS, last.coordRSS, first.workRSS, last.workRSS)
		}
	}
}
