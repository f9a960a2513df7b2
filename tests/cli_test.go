package tests

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runPhalanx runs the phalanx binary and fails the test if it takes longer
// than limit: a failure of `up` or `run` must end within seconds.
func runPhalanx(t *testing.T, limit time.Duration, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.phalanx, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("phalanx %s still running after %v\nstderr:\n%s", strings.Join(args, " "), limit, errb.String())
	}
	t.Logf("phalanx %s: %v in %v\n%s", strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), errb.String())
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func tinyModel(t *testing.T) string {
	t.Helper()
	binaries(t)
	model := filepath.Join(t.TempDir(), "tiny")
	if out, err := exec.Command(bin.phalanx, "synth", "--out", model, "--preset", "tiny", "--seed", "9").CombinedOutput(); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	return model
}

// `up` with a path that is not a model fails at once naming the cause,
// before any process starts.
func TestUpWrongModel(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the phalanx binary")
	}
	empty := t.TempDir()
	for _, c := range []struct{ model, want string }{
		{filepath.Join(empty, "nope"), "no such file or directory"},
		{empty, "has no config.json"},
	} {
		_, errs, code := runPhalanx(t, 10*time.Second, nil, "up", "--model", c.model, "--workers", "3", "--listen", freeAddr(t), "--http", "")
		if code != 1 || !strings.Contains(errs, c.want) || !strings.Contains(errs, "phalanx synth") {
			t.Errorf("up --model %s: exit %d, stderr %q; want exit 1 naming %q and what to try", c.model, code, errs, c.want)
		}
	}
}

// A model that passes the first checks but that the coordinator cannot
// load: `up` ends within seconds with the coordinator's own error, and
// keeps its logs where it says.
func TestUpCoordinatorFailsKeepsLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the phalanx binary")
	}
	model := filepath.Join(t.TempDir(), "half")
	os.Mkdir(model, 0o755)
	b, err := os.ReadFile(filepath.Join(tinyModel(t), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(model, "config.json"), b, 0o644)
	data := filepath.Join(t.TempDir(), "not", "yet") // --data is made when missing
	_, errs, code := runPhalanx(t, 10*time.Second, nil, "up", "--model", model, "--workers", "2", "--listen", freeAddr(t), "--http", "", "--data", data)
	if code != 1 || !strings.Contains(errs, "coordinator exited: safetensors:") {
		t.Fatalf("exit %d, stderr %q; want the coordinator's error", code, errs)
	}
	if !strings.Contains(errs, "logs kept in "+data) {
		t.Errorf("stderr does not say where the logs are: %q", errs)
	}
	if log, err := os.ReadFile(filepath.Join(data, "coordinator.log")); err != nil || !bytes.Contains(log, []byte("safetensors")) {
		t.Errorf("coordinator.log: %v\n%s", err, log)
	}
	// A temporary data directory is kept too, and named.
	_, errs, _ = runPhalanx(t, 10*time.Second, nil, "up", "--model", model, "--listen", freeAddr(t), "--http", "")
	m := regexp.MustCompile(`logs kept in (\S+)`).FindStringSubmatch(errs)
	if m == nil {
		t.Fatalf("no log directory in %q", errs)
	}
	if _, err := os.Stat(filepath.Join(m[1], "coordinator.log")); err != nil {
		t.Error(err)
	}
	os.RemoveAll(m[1])
}

// A second `up` while the first one's ports are taken fails at once naming
// the port and the flag that moves it, instead of reporting the other
// cluster as its own.
func TestUpBusyPort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the phalanx binary")
	}
	model := tinyModel(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--listen", addr, "--http", ""}, "--listen"},
		{[]string{"--listen", freeAddr(t), "--http", addr}, "--http"},
	} {
		args := append([]string{"up", "--model", model, "--workers", "1"}, c.args...)
		_, errs, code := runPhalanx(t, 10*time.Second, nil, args...)
		if code != 1 || !strings.Contains(errs, addr+" is already in use") || !strings.Contains(errs, c.flag) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, errs)
		}
	}
}

// A cluster that starts: the ready line names the API and the web console,
// the progress says "1 worker", the coordinator logs no ERROR while it
// waits for the workers, and an interrupt removes the temporary logs.
func TestUpReady(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	model := tinyModel(t)
	data := filepath.Join(t.TempDir(), "data")
	httpAddr := freeAddr(t)
	listen := freeAddr(t)
	cmd := exec.Command(bin.phalanx, "up", "--model", model, "--workers", "1", "--listen", listen, "--http", httpAddr, "--data", data,
		"--log-level", "debug")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no ready line after 2 minutes\n%s", errb.String())
	}
	if !strings.HasPrefix(line, "ready:") || !strings.Contains(line, "web console http://"+httpAddr+"/") {
		t.Errorf("ready line %q", line)
	}
	// --log-level reaches the processes: with debug, the coordinator logs
	// each step's per-stage times.
	if _, errs, code := runPhalanx(t, time.Minute, nil, "generate", "--coordinator", listen, "--tokens", "1,2,3", "--max-tokens", "2"); code != 0 {
		t.Errorf("generate: %s", errs)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Errorf("up after an interrupt: %v\n%s", err, errb.String())
	}
	if !strings.Contains(errb.String(), ", 1 worker,") {
		t.Errorf("stderr: %s", errb.String())
	}
	log, err := os.ReadFile(filepath.Join(data, "coordinator.log"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(log, []byte(`"level":"ERROR"`)) {
		t.Errorf("the coordinator logged an error during a normal start:\n%s", log)
	}
	if !bytes.Contains(log, []byte(`"msg":"step"`)) {
		t.Errorf("--log-level debug: no step record in the coordinator's log")
	}
}

// `run ORG/NAME` with the Hub out of reach ends at once with what to try:
// HF_ENDPOINT, a local directory, synth.
func TestRunOfflineHint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the phalanx binary")
	}
	closed := freeAddr(t) // nothing listens there
	env := []string{"HF_ENDPOINT=http://" + closed, "HF_HUB_CACHE=" + t.TempDir()}
	_, errs, code := runPhalanx(t, 30*time.Second, env, "run", "microsoft/phi-2")
	for _, want := range []string{"connection refused", "HF_ENDPOINT", "local model directory", "phalanx synth"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q: %s", want, errs)
		}
	}
	if code != 1 {
		t.Errorf("exit %d", code)
	}
}

// A worker listening on every interface without --advertise warns that it
// advertises an address nobody else can dial.
func TestWorkerUnspecifiedAdvertiseWarns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker binary")
	}
	model := tinyModel(t)
	_, port, _ := net.SplitHostPort(freeAddr(t))
	p := startProc(t, t.TempDir(), "worker", bin.worker, "--model", model, "--listen", "0.0.0.0:"+port, "--etcd", freeAddr(t))
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(p.log)
		if bytes.Contains(b, []byte("--advertise")) && bytes.Contains(b, []byte(`"level":"WARN"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warning about --advertise in the worker's log:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
}
