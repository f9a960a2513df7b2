// Package tests holds the tests that cross process boundaries: clusters of
// real coordinator and worker processes on loopback, with real etcd
// (embedded in the coordinator, or Debian's etcd-server when installed),
// talking real gRPC over real sockets.
package tests
