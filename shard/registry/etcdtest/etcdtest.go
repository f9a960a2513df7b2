// Package etcdtest runs a real, single-member etcd server inside a test
// process, on 127.0.0.1 with free ports and a t.TempDir() data directory.
//
// It exists so that the registry can be tested against the etcd it will
// meet in production, including an etcd that stops and comes back:
// Restart stops the server and starts it again on the same data directory
// and the same ports, so clients reconnect to the same endpoints and find
// the same data (leases included).
//
// # Usage
//
//	srv := etcdtest.New(t)          // stopped automatically at cleanup
//	cli := srv.Client(t)            // closed automatically at cleanup
//	...
//	srv.Restart(t, 2*time.Second)   // down for two seconds, then back
//
// The server ticks faster than etcd's defaults (20 ms heartbeat, 200 ms
// election timeout) so that it starts and restarts quickly; its minimum
// lease TTL is then well under a second. It logs nothing.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Server is an embedded etcd server.
type Server struct {
	dir     string
	client  url.URL
	peer    url.URL
	mu      sync.Mutex
	running *embed.Etcd
}

// New starts a server and registers its shutdown with t.Cleanup.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		dir:    t.TempDir(),
		client: url.URL{Scheme: "http", Host: freeAddr(t)},
		peer:   url.URL{Scheme: "http", Host: freeAddr(t)},
	}
	s.Start(t)
	t.Cleanup(s.Stop)
	return s
}

// freeAddr finds a port nobody listens on. Another process could take it
// before etcd does; on a test machine that is rare enough.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Endpoints are the client URLs to give clientv3.
func (s *Server) Endpoints() []string { return []string{s.client.String()} }

// Start starts the server if it is stopped; it fails the test if the
// server does not become ready within 30 seconds.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		return
	}
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.client}
	cfg.AdvertiseClientUrls = []url.URL{s.client}
	cfg.ListenPeerUrls = []url.URL{s.peer}
	cfg.AdvertisePeerUrls = []url.URL{s.peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs = 20
	cfg.ElectionMs = 200
	// Even at level "error" a clean Close logs errors about closed
	// listeners; StartEtcd reports real failures anyway.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("etcdtest: start: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		t.Fatalf("etcdtest: start: %v", err)
	case <-time.After(30 * time.Second):
		e.Close()
		t.Fatal("etcdtest: server not ready after 30s")
	}
	s.running = e
}

// Stop stops the server, keeping its data directory. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return
	}
	s.running.Close()
	<-s.running.Server.StopNotify()
	s.running = nil
}

// Restart stops the server, waits for down, and starts it again on the
// same data directory and ports.
func (s *Server) Restart(t testing.TB, down time.Duration) {
	t.Helper()
	s.Stop()
	time.Sleep(down)
	s.Start(t)
}

// ClientConfig is a client configuration for this server with a short
// reconnect backoff, so that a client notices a restarted server within
// about a second.
func (s *Server) ClientConfig() clientv3.Config {
	return clientv3.Config{
		Endpoints:   s.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	}
}

// Client returns a new client for this server, closed at t's cleanup.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(s.ClientConfig())
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "health"); err != nil {
		t.Fatalf("etcdtest: client cannot reach %s: %v", s.client.String(), err)
	}
	return cli
}

// String names the server for test logs.
func (s *Server) String() string {
	return fmt.Sprintf("etcd at %s (data %s)", s.client.String(), s.dir)
}
