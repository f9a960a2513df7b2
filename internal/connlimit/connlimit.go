// Package connlimit bounds the connections a listener keeps open and keeps
// an accept loop alive, and quiet, when the process runs out of file
// descriptors.
//
// A connection past the limit is accepted and closed at once (with
// SO_LINGER 0, so the client sees a reset immediately) rather than left in
// the kernel's accept backlog as golang.org/x/net/netutil.LimitListener
// does: a client learns within a round trip that this server is full and
// can go elsewhere, instead of waiting for its own connect timeout while
// the backlog fills. The cost is one file descriptor for the moment of the
// refusal.
//
// Accept errors caused by exhausted resources (EMFILE, ENFILE, ENOBUFS,
// ENOMEM) are retried inside Accept with a growing pause (5 ms to 1 s), and
// logged at most once per LogEvery with the number of occurrences since the
// last line, so neither the HTTP nor the gRPC server spins or floods the
// log. The package never limits anything but the count of open
// connections: timeouts belong to the servers.
package connlimit

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// LogEvery is the shortest interval between two log lines of one kind
// from one listener.
const LogEvery = 5 * time.Second

// Listener is a net.Listener that holds at most Max connections open.
type Listener struct {
	net.Listener
	name string
	max  int64
	log  *slog.Logger

	open     atomic.Int64
	refused  atomic.Uint64
	failures atomic.Uint64

	mu      sync.Mutex
	lastLog map[string]time.Time
	skipped map[string]uint64
}

// New wraps l so that at most max connections accepted from it are open at
// a time (max <= 0: no limit, only the accept-error handling). name says
// which listener it is in log lines ("http", "grpc").
func New(l net.Listener, name string, max int, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.Default()
	}
	return &Listener{Listener: l, name: name, max: int64(max), log: log,
		lastLog: map[string]time.Time{}, skipped: map[string]uint64{}}
}

// Open is the number of accepted connections not yet closed.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Refused is the number of connections closed at once because the limit
// was reached.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// AcceptFailures is the number of accept errors retried (out of file
// descriptors, mostly).
func (l *Listener) AcceptFailures() uint64 { return l.failures.Load() }

// Accept waits for a connection under the limit.
func (l *Listener) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !exhausted(err) {
				return nil, err
			}
			l.failures.Add(1)
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.warn("accept", "accept failed: out of resources; retrying (raise the file limit or lower --max-connections)",
				"err", err, "open", l.open.Load())
			time.Sleep(pause)
			continue
		}
		pause = 0
		if l.max > 0 && l.open.Add(1) > l.max {
			l.open.Add(-1)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // reset: the client learns at once, no TIME_WAIT here
			}
			c.Close()
			l.refused.Add(1)
			l.warn("refuse", "connection limit reached: refusing new connections", "limit", l.max, "remote", c.RemoteAddr().String())
			continue
		}
		if l.max <= 0 {
			l.open.Add(1)
		}
		return &conn{Conn: c, l: l}, nil
	}
}

// warn logs one line of kind unless one was logged less than LogEvery ago;
// the next line says how many were skipped.
func (l *Listener) warn(kind, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.lastLog[kind]) < LogEvery {
		l.skipped[kind]++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped[kind]
	l.lastLog[kind], l.skipped[kind] = now, 0
	l.mu.Unlock()
	l.log.Warn(msg, append([]any{"listener", l.name, "address", l.Addr().String(), "since_last_line", skipped}, args...)...)
}

// exhausted reports an accept error that a later Accept may not have:
// the process or the system is out of descriptors or buffers.
func exhausted(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// conn gives its slot back once, on the first Close.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// CloseWrite lets net/http half-close before closing, as it does on a bare
// *net.TCPConn, so a client reads the last response instead of a reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
