package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phalanx-llm/phalanx/engine"
)

// TestLoadAndFaults is a bad day on one cluster of real processes: a crowd
// of streaming HTTP clients that reset their connections mid-answer, more
// concurrent long requests than admission takes, and a worker killed with
// about a hundred streams in flight. Nothing may exit, no KV cache may be
// left on any worker, every admitted request that its client did not
// abandon must end with exactly the tokens of a fault-free run, and every
// refusal must be a fast 429 / RESOURCE_EXHAUSTED.
func TestLoadAndFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process load and fault test")
	}
	binaries(t)
	model := filepath.Join(t.TempDir(), "tiny")
	if out, err := exec.Command(bin.phalanx, "synth", "--out", model, "--preset", "tiny", "--layers", "6", "--seed", "7").CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	local := localModel(t, model)
	const (
		maxSessions = 112
		maxQueue    = 24
	)
	httpAddr := freeAddr(t)
	c := startCluster(t, model, clusterOpts{
		coordArgs: []string{"--http", httpAddr, "--min-workers", "3", "--max-sessions", fmt.Sprint(maxSessions),
			"--max-queue", fmt.Sprint(maxQueue), "--queue-timeout", "3s", "--prefill-chunk", "16"},
	})
	for i, speed := range []string{"100", "200", "300"} { // distinct speeds: a plan over all three
		c.addWorker(fmt.Sprintf("w%d", i+1), "--speed", speed, "--debug-step-delay", "3ms", "--session-idle-timeout", "10m")
	}
	c.waitReady(60 * time.Second)
	alive := func(phase string) {
		t.Helper()
		for _, p := range append([]*proc{c.coord}, c.workers["w1"], c.workers["w2"], c.workers["w3"]) {
			if p == nil {
				continue
			}
			select {
			case <-p.done:
				t.Fatalf("%s: %s exited: %v", phase, p.name, p.err)
			default:
			}
		}
	}

	// 1. A crowd of SSE clients reset their connections mid-stream.
	start := time.Now()
	resets := crowdResets(t, httpAddr, c.status().GetModel(), 200)
	alive("after the crowd reset")
	t.Logf("crowd: %d streams reset mid-answer, %d reset while waiting, %d refused with 429 (Retry-After %q), in %v",
		resets.midStream, resets.early, resets.refused, resets.retryAfter, time.Since(start).Round(time.Millisecond))
	if resets.refused > 0 && resets.retryAfter == "" {
		t.Fatal("crowd: a 429 without Retry-After")
	}
	if resets.other > 0 {
		t.Fatalf("crowd: %d clients saw something else than a stream or a 429: %v", resets.other, resets.firstOther)
	}
	freed := waitNoSessions(t, c, 5*time.Second)
	t.Logf("crowd: every worker back to 0 KV sessions %v after the last reset", freed.Round(time.Millisecond))
	// A client that hangs up is no failure of the cluster: logged, not warned about.
	for deadline := time.Now().Add(3 * time.Second); resets.midStream > 0 && len(logLines(t, c.coord, "went away")) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("crowd: no hang-up was logged")
		}
	}
	for _, msg := range []string{"generation failed", "stream ended by an error"} {
		if w := logLines(t, c.coord, `"level":"WARN"`, msg); len(w) > 0 {
			t.Fatalf("crowd: %d clients hanging up logged a warning %q: %v", len(w), msg, w[0])
		}
	}

	// 2. More long requests at once than admission takes.
	type outcome struct {
		tokens []int
		err    error
		took   time.Duration
	}
	prompt := func(i int) []int { return []int{(i * 13) % 200, (i * 7) % 200, 5, 9, (i * 3) % 200} }
	const long = 60
	want := make([][]int, 2*maxSessions)
	for i := range want {
		want[i], _ = engine.Greedy(local, prompt(i), long)
	}
	results := make([]outcome, maxSessions+maxQueue+40)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			begin := time.Now()
			toks, _, _, err := c.generate(context.Background(), tokenRequest(prompt(i), long))
			results[i] = outcome{toks, err, time.Since(begin)}
		}()
	}
	wg.Wait()
	alive("after the overload")
	var ok, refused int
	var slowestRefusal time.Duration
	for i, r := range results {
		switch {
		case r.err == nil:
			ok++
			if !slices.Equal(r.tokens, want[i]) {
				t.Fatalf("overload: request %d answered %v, want %v", i, r.tokens, want[i])
			}
		case status.Code(r.err) == codes.ResourceExhausted:
			refused++
			slowestRefusal = max(slowestRefusal, r.took)
		default:
			t.Fatalf("overload: request %d: %v", i, r.err)
		}
	}
	if ok < maxSessions || refused == 0 {
		t.Fatalf("overload: %d completed, %d refused of %d (limit %d + queue %d)", ok, refused, len(results), maxSessions, maxQueue)
	}
	t.Logf("overload: %d requests at once: %d completed with the fault-free tokens, %d refused (slowest refusal %v)",
		len(results), ok, refused, slowestRefusal.Round(time.Millisecond))
	waitNoSessions(t, c, 5*time.Second)

	// 3. A planned worker is killed with ~100 streams in flight.
	st := c.status()
	victim := st.GetStages()[1].GetWorkerId()
	const streams = 100
	var (
		produced atomic.Int64
		killOnce sync.Once
		killedAt time.Time
	)
	stream := make([]streamResult, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream[i] = runStream(c, tokenRequest(prompt(i), long), func(int) {
				if produced.Add(1) == streams*10 {
					killOnce.Do(func() {
						killedAt = time.Now()
						c.workers[victim].kill()
					})
				}
			})
		}()
	}
	wg.Wait()
	if killedAt.IsZero() {
		t.Fatal("the worker was never killed: streams ended too early")
	}
	delete(c.workers, victim)
	alive("after the kill")
	var longest time.Duration
	for i, r := range stream {
		if r.err != nil {
			t.Fatalf("stream %d failed after %s was killed: %v", i, victim, r.err)
		}
		if !slices.Equal(r.tokens, want[i]) {
			t.Fatalf("stream %d after the kill: %v, want %v", i, r.tokens, want[i])
		}
		longest = max(longest, r.gap)
	}
	t.Logf("kill -9 of %s with %d streams in flight: all %d finished with the fault-free tokens, longest pause %v",
		victim, streams, streams, longest.Round(time.Millisecond))
	waitNoSessions(t, c, 5*time.Second)
	alive("at the end")
}

type crowdResult struct {
	midStream, early, refused, other int
	retryAfter                       string
	firstOther                       error
}

// crowdResets starts n streaming completions over HTTP at once; each client
// reads a few events and resets its connection (RST, as a killed client
// does). Clients refused with 429 are counted.
func crowdResets(t *testing.T, addr, model string, n int) crowdResult {
	var mu sync.Mutex
	var res crowdResult
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind, retry, err := resetClient(addr, model, i)
			mu.Lock()
			defer mu.Unlock()
			switch kind {
			case "mid":
				res.midStream++
			case "early":
				res.early++
			case "429":
				res.refused++
				res.retryAfter = retry
			default:
				res.other++
				if res.firstOther == nil {
					res.firstOther = err
				}
			}
		}()
	}
	wg.Wait()
	return res
}

func resetClient(addr, model string, i int) (kind, retryAfter string, err error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", "", err
	}
	tcp := conn.(*net.TCPConn)
	defer func() {
		tcp.SetLinger(0) // close with RST
		tcp.Close()
	}()
	body, _ := json.Marshal(map[string]any{"model": model, "prompt": fmt.Sprintf("client %d says hello and then", i),
		"max_tokens": 200, "stream": true, "temperature": 0, "ignore_eos": true})
	fmt.Fprintf(conn, "POST /v1/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body)
	if i%5 == 0 {
		// Gone before the first token: reset while queued or prefilling.
		time.Sleep(time.Duration(i%7) * time.Millisecond)
		return "early", "", nil
	}
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return "429", resp.Header.Get("Retry-After"), nil
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	events := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			if events++; events >= 1+i%4 {
				return "mid", "", nil
			}
		}
	}
	return "", "", errors.New("stream ended before the client reset it")
}

// waitNoSessions waits until every worker reports 0 KV sessions and returns
// how long that took.
func waitNoSessions(t *testing.T, c *cluster, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		st := c.status()
		held := map[string]int32{}
		total := int32(0)
		for _, w := range st.GetWorkers() {
			held[w.GetId()] = w.GetSessions()
			total += w.GetSessions()
		}
		if total == 0 && st.GetActiveSessions() == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("KV sessions still held %v after %v: %v (coordinator: %d active)", timeout, time.Since(start), held, st.GetActiveSessions())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
