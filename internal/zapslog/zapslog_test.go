package zapslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func lines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func TestLevelsAndFields(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	z := New(log, zapcore.WarnLevel, "embedded etcd").Named("etcdserver").With(zap.String("member", "m1"))
	z.Info("dropped: below warn")
	z.Warn("slow fdatasync", zap.Duration("took", 1500*time.Millisecond), zap.Int("n", 3))
	z.Error("purge failed", zap.Error(errors.New("too many open files")))
	z.DPanic("odd") // does not panic outside development mode
	got := lines(t, &b)
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3 (info dropped): %v", len(got), got)
	}
	w := got[0]
	if w["level"] != "WARN" || w["msg"] != "slow fdatasync" || w["member"] != "m1" || w["logger"] != "etcdserver" ||
		w["n"] != float64(3) || w["took"] != float64(1500*time.Millisecond) {
		t.Errorf("warn line: %v", w)
	}
	if e := got[1]; e["level"] != "ERROR" || e["error"] != "too many open files" {
		t.Errorf("error line: %v", e)
	}
	if d := got[2]; d["level"] != "ERROR" || d["msg"] != "embedded etcd dpanic: odd" {
		t.Errorf("dpanic line: %v", d)
	}
}

func TestLevelFollowsTheLogger(t *testing.T) {
	for _, c := range []struct {
		slog slog.Level
		want zapcore.Level
	}{{slog.LevelDebug, zapcore.InfoLevel}, {slog.LevelInfo, zapcore.WarnLevel}, {slog.LevelWarn, zapcore.WarnLevel}, {slog.LevelError, zapcore.ErrorLevel}} {
		log := slog.New(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: c.slog}))
		if got := Level(log); got != c.want {
			t.Errorf("daemon at %v: etcd at %v, want %v", c.slog, got, c.want)
		}
	}
}

// A zap Fatal leaves an ERROR line naming the library as the last line of
// the log, then the process exits 1. Run in a child process.
func TestFatalLeavesALastLine(t *testing.T) {
	if os.Getenv("ZAPSLOG_FATAL_CHILD") == "1" {
		log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		New(log, zapcore.WarnLevel, "embedded etcd").Fatal("failed to purge snap db file", zap.Error(errors.New("open snap: too many open files")))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFatalLeavesALastLine$")
	cmd.Env = append(os.Environ(), "ZAPSLOG_FATAL_CHILD=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("child: %v, want exit status 1\n%s", err, stderr.String())
	}
	got := lines(t, &stderr)
	if len(got) == 0 {
		t.Fatal("no log line before the exit")
	}
	last := got[len(got)-1]
	if last["level"] != "ERROR" || last["msg"] != "embedded etcd fatal: failed to purge snap db file" || last["error"] != "open snap: too many open files" {
		t.Errorf("last line: %v", last)
	}
}
