package daemon

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A response streamed for longer than --http-read-timeout is not cut (the
// read deadline ends with the body), while a body that stalls is.
func TestReadTimeoutSparesLongStreams(t *testing.T) {
	const readTimeout = 200 * time.Millisecond
	f := &serveFlags{readTimeout: readTimeout, idleTimeout: time.Second, writeTimeout: time.Second}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		for i := 0; i < 8; i++ {
			select {
			case <-r.Context().Done():
				return // the stream was cut
			case <-time.After(readTimeout / 2):
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := f.httpServer(h, slog.New(slog.DiscardHandler))
	go srv.Serve(l)
	defer srv.Close()
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, "http://"+l.Addr().String()+"/", nil)
		if method == "POST" {
			req.Body, req.ContentLength = io.NopCloser(strings.NewReader(`{"x":1}`)), 7
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if n := strings.Count(string(b), "data:"); n != 8 {
			t.Errorf("%s: %d of 8 events in %v (read timeout %v): the stream was cut", method, n, time.Since(start), readTimeout)
		}
	}
	// A body that never completes: the connection is closed after the timeout.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, bufio.NewReader(c))
	if d := time.Since(start); d < readTimeout/2 || d > 2*time.Second {
		t.Errorf("a stalled body was held %v, read timeout %v", d, readTimeout)
	}
}

// A client that stops reading fails the response's writes after the write
// timeout instead of blocking its handler for ever.
func TestWriteTimeoutPerWrite(t *testing.T) {
	f := &serveFlags{readTimeout: time.Second, idleTimeout: time.Second, writeTimeout: 300 * time.Millisecond}
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				done <- err
				return
			}
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := f.httpServer(h, slog.New(slog.DiscardHandler))
	go srv.Serve(l)
	defer srv.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case err := <-done:
		if !strings.Contains(err.Error(), "timeout") {
			t.Errorf("write failed with %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a handler writing to a client that does not read was still blocked after 10 s")
	}
}

func TestDefaultMaxConnections(t *testing.T) {
	for _, c := range []struct {
		limit     uint64
		listeners int
		want      int
	}{{0, 2, 1024}, {1 << 20, 2, 1024}, {1024, 2, 384}, {1024, 1, 768}, {256, 2, 96}, {40, 2, 16}} {
		if got := defaultMaxConnections(c.limit, c.listeners); got != c.want {
			t.Errorf("limit %d, %d listeners: %d, want %d", c.limit, c.listeners, got, c.want)
		}
	}
}
