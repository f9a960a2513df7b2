package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/phalanx-llm/phalanx/engine"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// certsFor issues certificates valid for localhost and 127.0.0.1: a
// coordinator certificate for the node named "coordinator", worker
// certificates for the others.
func certsFor(t *testing.T, dir string, nodes ...string) {
	t.Helper()
	certsForHosts(t, dir, "localhost,127.0.0.1", nodes...)
}

func certsForHosts(t *testing.T, dir, hosts string, nodes ...string) {
	t.Helper()
	var coords, workers []string
	for _, n := range nodes {
		if n == "coordinator" {
			coords = append(coords, n)
		} else {
			workers = append(workers, n)
		}
	}
	args := []string{"certs", "--out", dir, "--coordinators", strings.Join(coords, ","), "--workers", strings.Join(workers, ","), "--hosts", hosts}
	if out, err := exec.Command(bin.phalanx, args...).CombinedOutput(); err != nil {
		t.Fatalf("phalanx certs: %v\n%s", err, out)
	}
}

// refusedIn reports whether the coordinator's log says it refused worker.
func refusedIn(log, worker string) bool {
	b, _ := os.ReadFile(log)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"worker":"`+worker+`"`) && strings.Contains(line, "not usable") {
			return true
		}
	}
	return false
}

func tlsArgs(dir, node string) []string {
	return []string{"--tls-cert", filepath.Join(dir, node+".pem"), "--tls-key", filepath.Join(dir, node+"-key.pem"), "--tls-ca", filepath.Join(dir, "ca.pem")}
}

// etcdTLSArgs uses the good CA's coordinator certificate for etcd (the
// embedded etcd's server certificate, and every client's).
func etcdTLSArgs(dir string) []string {
	return []string{"--etcd-cert", filepath.Join(dir, "coordinator.pem"), "--etcd-key", filepath.Join(dir, "coordinator-key.pem"), "--etcd-ca", filepath.Join(dir, "ca.pem")}
}

func tlsConn(t *testing.T, addr, dir, node string) *grpc.ClientConn {
	t.Helper()
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool}
	if node != "" {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, node+".pem"), filepath.Join(dir, node+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// With mutual TLS (and TLS with client certificates to etcd) the cluster
// serves the real nodes; refuses an impostor worker and an impostor
// coordinator (certificates from another CA), a worker whose certificate
// (from the right CA) does not name the IP address it advertises, and a
// worker certificate used to send steps; and picks up renewed certificates
// without a restart.
func TestMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	binaries(t)
	good, evil := t.TempDir(), t.TempDir()
	certsFor(t, good, "coordinator", "w1", "w2")
	certsFor(t, evil, "coordinator", "w3")
	certsForHosts(t, good, "10.9.8.7,elsewhere.example", "w4")
	fx := fixture(t, "phi-tiny-f32")
	local := localModel(t, fx)
	dir := t.TempDir()
	coordAddr, etcdAddr := freeAddr(t), freeAddr(t)
	clusterName := "tls"
	coord := startProc(t, dir, "coordinator", bin.coordinator, append([]string{"--model", fx, "--listen", coordAddr,
		"--etcd", etcdAddr, "--embedded-etcd", filepath.Join(dir, "etcd"), "--cluster", clusterName, "--min-workers", "2", "--threads", "1"},
		append(tlsArgs(good, "coordinator"), etcdTLSArgs(good)...)...)...)
	worker := func(name, certDir string) (*proc, string) {
		addr := freeAddr(t)
		p := startProc(t, dir, name, bin.worker, append([]string{"--model", fx, "--listen", addr, "--etcd", etcdAddr,
			"--cluster", clusterName, "--name", name, "--threads", "1", "--speed", "100", "--lease-ttl", "2s"}, append(tlsArgs(certDir, name), etcdTLSArgs(good)...)...)...)
		return p, addr
	}
	_, w1Addr := worker("w1", good)
	worker("w2", good)
	client := phalanxpb.NewInferenceClient(tlsConn(t, coordAddr, good, ""))
	c := &cluster{t: t, client: client, coord: coord}
	// Impostor workers join too: w3's certificate is not the CA's; w4's is,
	// but names another address than the 127.0.0.1 it advertises.
	worker("w3", evil)
	worker("w4", good)
	prompt := []int{3, 1, 4}
	want, _ := engine.Greedy(local, prompt, 12)
	deadline := time.Now().Add(40 * time.Second)
	var toks []int
	var err error
	for time.Now().Before(deadline) {
		if toks, _, _, err = c.generate(context.Background(), tokenRequest(prompt, 12)); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || !slices.Equal(toks, want) {
		t.Fatalf("over mTLS: %v %v, want %v", err, toks, want)
	}
	st, err := client.ClusterStatus(context.Background(), &phalanxpb.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.GetStages() {
		if s.GetWorkerId() == "w3" || s.GetWorkerId() == "w4" {
			t.Fatalf("an impostor worker was given layers: %v", st.GetStages())
		}
	}
	time.Sleep(time.Second)
	for _, w := range []string{"w3", "w4"} {
		if !refusedIn(coord.log, w) {
			t.Errorf("the coordinator did not report refusing %s", w)
		}
	}

	// An impostor coordinator cannot send steps to a real worker, even if it
	// trusts any server: the worker checks the client certificate.
	evilPair, err := tls.LoadX509KeyPair(filepath.Join(evil, "coordinator.pem"), filepath.Join(evil, "coordinator-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	evilConn, err := grpc.NewClient(w1Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		InsecureSkipVerify: true, Certificates: []tls.Certificate{evilPair}})))
	if err != nil {
		t.Fatal(err)
	}
	defer evilConn.Close()
	stage := phalanxpb.NewStageClient(evilConn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := stage.Info(ctx, &phalanxpb.InfoRequest{}); err == nil {
		t.Fatal("a worker answered a coordinator whose certificate another CA signed")
	} else {
		t.Logf("impostor coordinator refused: %v", err)
	}
	// Nor can a client without a certificate; the real coordinator's certificate works.
	if _, err := phalanxpb.NewStageClient(tlsConn(t, w1Addr, good, "")).Info(ctx, &phalanxpb.InfoRequest{}); err == nil {
		t.Fatal("a worker answered a client without a certificate")
	}
	// Nor can a worker's certificate, though the CA signed it.
	if _, err := phalanxpb.NewStageClient(tlsConn(t, w1Addr, good, "w2")).Info(ctx, &phalanxpb.InfoRequest{}); err == nil {
		t.Fatal("a worker answered a client with a worker's certificate")
	}
	if _, err := phalanxpb.NewStageClient(tlsConn(t, w1Addr, good, "coordinator")).Info(ctx, &phalanxpb.InfoRequest{}); err != nil {
		t.Fatalf("the real coordinator's certificate was refused: %v", err)
	}

	// Renew w1's certificate in place: it is served without a restart.
	peerSerial := func() string {
		pair, _ := tls.LoadX509KeyPair(filepath.Join(good, "coordinator.pem"), filepath.Join(good, "coordinator-key.pem"))
		conn, err := tls.Dial("tcp", w1Addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{pair}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := peerSerial()
	certsFor(t, good, "w1") // same CA, new certificate and key for w1
	deadline = time.Now().Add(10 * time.Second)
	for peerSerial() == before {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not picked up within 10 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if toks, _, _, err = c.generate(context.Background(), tokenRequest(prompt, 12)); err != nil || !slices.Equal(toks, want) {
		t.Fatalf("after the renewal: %v %v", err, toks)
	}
}
