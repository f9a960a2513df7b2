package daemon

import (
	"flag"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/phalanx-llm/phalanx/internal/connlimit"
)

// serveFlags bound what one client can hold of a daemon: connections
// (file descriptors) and time.
type serveFlags struct {
	maxConns     int
	readTimeout  time.Duration
	idleTimeout  time.Duration
	writeTimeout time.Duration
}

func addServeFlags(fs *flag.FlagSet, http bool) *serveFlags {
	f := &serveFlags{}
	fs.IntVar(&f.maxConns, "max-connections", 0,
		"connections each listener (gRPC, HTTP) keeps open; more are closed at once (0: from the file limit, at most 1024)")
	if http {
		fs.DurationVar(&f.readTimeout, "http-read-timeout", 30*time.Second,
			"time a client has to send a request's headers and body; slower connections are closed")
		fs.DurationVar(&f.idleTimeout, "http-idle-timeout", 2*time.Minute, "keep-alive connections idle this long are closed")
		fs.DurationVar(&f.writeTimeout, "http-write-timeout", time.Minute,
			"longest one write to a client may block (a client that stops reading); a whole response, a long stream, has no limit")
	}
	return f
}

// grpcHandshakeTimeout closes connections that do not finish the TLS and
// HTTP/2 handshake in time (grpc-go's default is 120 s): a silent socket
// would otherwise hold a connection slot that long.
const grpcHandshakeTimeout = 10 * time.Second

// maxHeaderBytes bounds request headers (net/http's default is 1 MiB); an
// API request's headers are a few hundred bytes.
const maxHeaderBytes = 64 << 10

// fdReserve is how many descriptors the default connection limit leaves for
// everything else: the embedded etcd (its clients, WAL and snapshot files,
// peers), stage connections, model files, metrics.
func fdReserve(limit uint64) uint64 { return max(64, limit/4) }

// defaultMaxConnections is --max-connections 0: what the file limit leaves
// after fdReserve, shared by the process's listeners, between 16 and 1024.
// The Go runtime has already raised the soft limit to (nearly) the hard one
// at start (since Go 1.19; to hard - 1 in current releases), so the soft
// limit read here is the one that applies.
func defaultMaxConnections(limit uint64, listeners int) int {
	if limit == 0 { // unknown
		return 1024
	}
	per := uint64(16)
	if r := fdReserve(limit); limit > r {
		per = max(per, (limit-r)/uint64(max(listeners, 1)))
	}
	return int(min(per, 1024))
}

// limit wraps l with the connection limit and logs it.
func (f *serveFlags) limit(l net.Listener, name string, listeners int, log *slog.Logger) *connlimit.Listener {
	n := f.maxConns
	soft, hard := fileLimit()
	if n <= 0 {
		n = defaultMaxConnections(soft, listeners)
	}
	log.Info("connection limit", "listener", name, "address", l.Addr().String(), "max_connections", n,
		"file_limit", soft, "file_limit_hard", hard)
	return connlimit.New(l, name, n, log)
}

// httpServer is the public HTTP server. Reading a request (headers and
// body) is bounded by --http-read-timeout and keep-alive idling by
// --http-idle-timeout. http.Server's WriteTimeout stays 0: it would cut
// streamed (SSE) answers, which last as long as the generation does;
// instead every single write must finish within --http-write-timeout (see
// deadlines).
func (f *serveFlags) httpServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           deadlines(h, f.writeTimeout),
		ReadHeaderTimeout: min(10*time.Second, f.readTimeout),
		ReadTimeout:       f.readTimeout,
		IdleTimeout:       f.idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// deadlines moves the connection's write deadline with every write: a
// stream may last minutes, but a client that stops reading blocks one
// write for at most writeTimeout, which fails the request and frees its
// session.
//
// The read deadline (ReadTimeout) needs no help: net/http clears it when
// the body is read and its background read starts, so it bounds how long
// a client takes to send a request, never how long the answer streams
// (TestReadTimeoutSparesLongStreams holds it to that).
func deadlines(h http.Handler, writeTimeout time.Duration) http.Handler {
	if writeTimeout <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		h.ServeHTTP(&writeDeadline{ResponseWriter: w, rc: rc, d: writeTimeout}, r)
	})
}

// writeDeadline extends the connection's write deadline before each write
// and flush.
type writeDeadline struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *writeDeadline) Write(p []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

func (w *writeDeadline) Flush() {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *writeDeadline) Unwrap() http.ResponseWriter { return w.ResponseWriter }
