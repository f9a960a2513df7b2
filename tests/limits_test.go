package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// A coordinator with 256 file descriptors takes a flood of 600 idle and
// slow-body connections (more than it has descriptors) on its HTTP and
// gRPC ports: it refuses what exceeds --max-connections at once, closes
// slow bodies and silent connections after --http-read-timeout, keeps
// serving the client it already had, and afterwards serves new clients
// as before. Before the limits, the flood exhausted its descriptors and
// slow bodies were held for ever.
func TestCoordinatorSurvivesConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	const (
		maxConns    = 64
		readTimeout = time.Second
		flood       = 300 // per port
	)
	dir := fixture(t, "phi-tiny-f32")
	httpAddr := freeAddr(t)
	// Soft limit below the hard one: the Go runtime raises it itself (to
	// hard - 1 with the Go this module builds with), the daemon need not.
	c := startCluster(t, dir, clusterOpts{workers: 1,
		coordWrap: []string{prlimit, "--nofile=128:256"},
		coordArgs: []string{"--http", httpAddr, "--max-connections", fmt.Sprint(maxConns), "--http-read-timeout", readTimeout.String()}})
	pid := c.coord.cmd.Process.Pid
	if soft, hard := procFileLimit(t, pid); soft < 255 || hard != 256 {
		t.Errorf("coordinator's open-files limit %d/%d, want at least 255/256 (the runtime raises soft to hard)", soft, hard)
	}
	req := tokenRequest([]int{1, 2, 3, 4, 5}, 12)
	want, _, _, err := c.generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}

	// The flood: slow bodies and silent sockets on HTTP, silent sockets on gRPC.
	type held struct {
		conn   net.Conn
		closed chan time.Duration // how long after its dial the server closed it
	}
	baseFDs := procFDs(t, pid)
	start := time.Now()
	var (
		httpAll []held
		grpcAll []net.Conn
		refused int // connections reset or closed within a second
	)
	var wg sync.WaitGroup
	for i := 0; i < flood; i++ {
		if cn, err := net.Dial("tcp", c.addr); err == nil {
			grpcAll = append(grpcAll, cn)
		} else {
			refused++
		}
		dialed := time.Now()
		cn, err := net.Dial("tcp", httpAddr)
		if err != nil {
			refused++
			continue
		}
		if i%2 == 0 {
			fmt.Fprintf(cn, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"prompt\":")
		}
		h := held{conn: cn, closed: make(chan time.Duration, 1)}
		httpAll = append(httpAll, h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err := io.Copy(io.Discard, cn) // until the server closes it
			if err != nil && strings.Contains(err.Error(), "timeout") {
				return // never closed: the channel stays empty
			}
			h.closed <- time.Since(dialed)
		}()
	}
	t.Cleanup(func() {
		for _, cn := range grpcAll {
			cn.Close()
		}
		for _, h := range httpAll {
			h.conn.Close()
		}
	})
	fds := procFDs(t, pid)
	t.Logf("flood: %d HTTP + %d gRPC connections opened in %v, %d refused at connect; coordinator fds %d before, %d during",
		len(httpAll), len(grpcAll), time.Since(start).Round(time.Millisecond), refused, baseFDs, fds)
	if fds > baseFDs+2*maxConns+8 {
		t.Errorf("coordinator holds %d fds during the flood, %d before, limit %d connections per listener", fds, baseFDs, maxConns)
	}

	// The client connected before the flood is served during it.
	got, _, _, err := c.generate(context.Background(), req)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("during the flood: %v %v, want %v", err, got, want)
	}
	// A new HTTP client is refused at once or served, never left hanging.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	t0 := time.Now()
	resp, err := hc.Get("http://" + httpAddr + "/healthz")
	if err == nil {
		resp.Body.Close()
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("a new HTTP client during the flood waited %v (err %v)", d, err)
	} else {
		t.Logf("a new HTTP client during the flood: answered in %v (err %v)", d.Round(time.Millisecond), err)
	}

	// Every HTTP connection is closed: refused ones at once, the ones
	// accepted after the read timeout.
	wg.Wait()
	var fast, timedOut, open int
	var latest time.Duration
	for _, h := range httpAll {
		select {
		case d := <-h.closed:
			latest = max(latest, d)
			if d < readTimeout/2 {
				fast++
			} else {
				timedOut++
			}
		default:
			open++
		}
	}
	t.Logf("HTTP flood: %d refused at once, %d closed after the read timeout (longest held %v), %d never closed",
		fast, timedOut, latest.Round(time.Millisecond), open)
	if open > 0 {
		t.Errorf("%d slow or silent HTTP connections were never closed", open)
	}
	if fast == 0 {
		t.Error("no HTTP connection was refused at once")
	}
	if latest > readTimeout+3*time.Second {
		t.Errorf("a slow connection was held %v, read timeout %v", latest, readTimeout)
	}
	// gRPC: past the limit, connections were closed at once.
	grpcRefused := 0
	for _, cn := range grpcAll {
		cn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := cn.Read(make([]byte, 1)); err != nil && !strings.Contains(err.Error(), "timeout") {
			grpcRefused++
		}
	}
	t.Logf("gRPC flood: %d of %d connections refused", grpcRefused, len(grpcAll))
	if grpcRefused < len(grpcAll)-maxConns {
		t.Errorf("gRPC: only %d of %d connections refused with a limit of %d", grpcRefused, len(grpcAll), maxConns)
	}
	for _, cn := range grpcAll {
		cn.Close()
	}

	select {
	case <-c.coord.done:
		t.Fatalf("coordinator exited during the flood: %v", c.coord.err)
	default:
	}
	// After the flood: new HTTP and gRPC clients are served.
	eventuallyOK(t, 10*time.Second, "readyz after the flood", func() error {
		resp, err := hc.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := phalanxpb.NewInferenceClient(conn).Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var fresh []int
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("a new gRPC client after the flood: %v", err)
		}
		for _, tk := range msg.GetTokens() {
			fresh = append(fresh, int(tk))
		}
		if msg.GetDone() {
			break
		}
	}
	if !slices.Equal(fresh, want) {
		t.Errorf("after the flood: %v, want %v", fresh, want)
	}
	log, _ := os.ReadFile(c.coord.log)
	if !strings.Contains(string(log), "connection limit reached") {
		t.Error("the coordinator did not log the refusals")
	}
	if strings.Contains(string(log), "accept failed") {
		t.Error("the coordinator ran out of file descriptors")
	}
}

// procFileLimit reads a process's open-files limit from /proc.
func procFileLimit(t *testing.T, pid int) (soft, hard int) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Max open files"); ok {
			fmt.Sscan(rest, &soft, &hard)
		}
	}
	return soft, hard
}

// procFDs is the number of a process's open file descriptors.
func procFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// eventuallyOK polls f every 100 ms until it returns nil or d passes.
func eventuallyOK(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	pollEvery(t, 100*time.Millisecond, d, what, f)
}

// pollEvery polls f every interval until it returns nil, failing t once d
// has passed.
func pollEvery(t *testing.T, interval, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(interval)
	}
}
