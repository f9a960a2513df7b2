package connlimit

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Past the limit a connection is closed at once; closing one frees a slot.
func TestLimitRefusesAtOnce(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	l := New(inner, "test", 2, slog.New(slog.NewTextHandler(&logs, nil)))
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	defer a.Close()
	defer b.Close()
	sa, sb := <-accepted, <-accepted
	// The reset can reach the client before its connect returns.
	start := time.Now()
	if third, err := net.Dial("tcp", inner.Addr().String()); err == nil {
		third.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := third.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("third connection past a limit of 2: read %v, want EOF or reset", err)
		}
		third.Close()
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v", d)
	}
	for !strings.Contains(logs.String(), "connection limit reached") && time.Since(start) < 5*time.Second {
		time.Sleep(time.Millisecond)
	}
	if l.Refused() != 1 || l.Open() != 2 {
		t.Errorf("refused %d open %d, want 1 and 2", l.Refused(), l.Open())
	}
	if !strings.Contains(logs.String(), "connection limit reached") {
		t.Errorf("no log line for the refusal: %q", logs.String())
	}
	sa.Close()
	sa.Close() // a second Close does not free a second slot
	fourth := dial()
	defer fourth.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a freed slot was not reused")
	}
	sb.Close()
	if l.Open() != 0 {
		t.Errorf("open %d after closing everything, want 0", l.Open())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// failingListener fails Accept with an error n times, then closes.
type failingListener struct {
	net.Listener
	err error
	n   int
}

func (f *failingListener) Accept() (net.Conn, error) {
	if f.n > 0 {
		f.n--
		return nil, f.err
	}
	return nil, net.ErrClosed
}

// EMFILE is retried with a pause and logged once per LogEvery, not spun on.
func TestAcceptOutOfFilesRetriesQuietly(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	var logs bytes.Buffer
	l := New(&failingListener{Listener: inner, err: &net.OpError{Op: "accept", Err: syscall.EMFILE}, n: 6}, "test", 0,
		slog.New(slog.NewTextHandler(&logs, nil)))
	start := time.Now()
	_, err = l.Accept()
	if err != net.ErrClosed {
		t.Fatalf("Accept: %v, want the listener's close error after the retries", err)
	}
	// 5+10+20+40+80+160 ms of pauses.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("6 retries took %v: not pausing", d)
	}
	if n := strings.Count(logs.String(), "accept failed"); n != 1 {
		t.Errorf("%d log lines for 6 failures within %v, want 1:\n%s", n, LogEvery, logs.String())
	}
	if l.AcceptFailures() != 6 {
		t.Errorf("AcceptFailures %d, want 6", l.AcceptFailures())
	}
	// Other errors go straight to the server.
	l2 := New(&failingListener{Listener: inner, err: io.ErrUnexpectedEOF, n: 1}, "test", 0, nil)
	if _, err := l2.Accept(); err != io.ErrUnexpectedEOF {
		t.Errorf("Accept: %v, want the error itself", err)
	}
}
