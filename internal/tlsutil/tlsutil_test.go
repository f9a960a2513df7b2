package tlsutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pki is a CA in a temporary directory issuing node certificates.
type pki struct {
	t   *testing.T
	dir string
}

func newPKI(t *testing.T) *pki {
	dir := t.TempDir()
	if err := NewCA(dir, "test CA", time.Hour); err != nil {
		t.Fatal(err)
	}
	return &pki{t, dir}
}

func (p *pki) files(name string) Files {
	return Files{Cert: filepath.Join(p.dir, name+".pem"), Key: filepath.Join(p.dir, name+"-key.pem"), CA: filepath.Join(p.dir, "ca.pem")}
}

// node issues a certificate and loads it.
func (p *pki) node(name string, role Role, hosts ...string) *Reloader {
	p.t.Helper()
	if err := NewNode(p.dir, p.dir, name, role, hosts, time.Hour); err != nil {
		p.t.Fatal(err)
	}
	r, err := Load(p.files(name), nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return r
}

// legacy issues a certificate as `phalanx certs` did before roles: client
// and server usage, no role.
func (p *pki) legacy(name string, hosts ...string) *Reloader {
	p.t.Helper()
	caCert, caKey, err := loadCA(p.dir)
	if err != nil {
		p.t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := writePair(p.dir, name, der, key); err != nil {
		p.t.Fatal(err)
	}
	r, err := Load(p.files(name), nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return r
}

// serve runs a gRPC health server with the TLS configuration on a real
// socket at 127.0.0.1 and returns its port.
func serve(t *testing.T, creds credentials.TransportCredentials) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(creds))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	return port
}

// call makes one health check at addr.
func call(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// The coordinator's dial checks the dialled address against the worker's
// certificate: its IP SANs for an IP address (crypto/tls sends no server
// name for one, so nothing was checked before), its DNS SANs for a name.
func TestDialChecksWorkerAddress(t *testing.T) {
	p := newPKI(t)
	coord := p.node("coordinator", Coordinator, "localhost", "127.0.0.1")
	for _, tc := range []struct {
		name  string
		hosts []string
		dial  string // host dialled
		ok    bool
	}{
		{"ip-match", []string{"127.0.0.1"}, "127.0.0.1", true},
		{"other-ip", []string{"10.9.8.7", "localhost"}, "127.0.0.1", false},
		{"name-only", []string{"worker.example"}, "127.0.0.1", false},
		{"dns-match", []string{"localhost"}, "localhost", true},
		{"other-name", []string{"127.0.0.1", "worker.example"}, "localhost", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := p.node("w-"+tc.name, Worker, tc.hosts...)
			port := serve(t, credentials.NewTLS(w.ServerConfig(Coordinator)))
			err := call(t, net.JoinHostPort(tc.dial, port), coord.ClientCredentials(Worker))
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("a certificate for %v was accepted at %s", tc.hosts, tc.dial)
			}
		})
	}
}

// A worker's Stage server takes clients with coordinator certificates only:
// a worker certificate (no client usage, worker role), a legacy certificate
// (client usage, no role) and a coordinator certificate served as a worker's
// are refused, each for its reason.
func TestRolesAreEnforced(t *testing.T) {
	p := newPKI(t)
	coord := p.node("coordinator", Coordinator, "localhost", "127.0.0.1")
	w1 := p.node("w1", Worker, "localhost", "127.0.0.1")
	w2 := p.node("w2", Worker, "localhost", "127.0.0.1")
	old := p.legacy("old", "localhost", "127.0.0.1")
	stage := "127.0.0.1:" + serve(t, credentials.NewTLS(w1.ServerConfig(Coordinator)))

	if err := call(t, stage, coord.ClientCredentials(Worker)); err != nil {
		t.Fatalf("the coordinator was refused: %v", err)
	}
	// The refusals are the server's: these clients trust any server.
	for name, client := range map[string]*Reloader{"worker": w2, "legacy": old} {
		cfg := client.clientConfig("", "")
		cfg.VerifyConnection = nil
		if err := call(t, stage, credentials.NewTLS(cfg)); err == nil {
			t.Errorf("a %s certificate sent steps to a worker", name)
		}
	}
	// Why, as the worker sees it.
	for _, tc := range []struct {
		r    *Reloader
		want string
	}{{w2, "a coordinator certificate is required"}, {old, "carries no Phalanx role"}} {
		c, _ := tc.r.current()
		err := w1.verifyChain([]*x509.Certificate{c.Leaf}, x509.ExtKeyUsageClientAuth, "", Coordinator)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", c.Leaf.Subject.CommonName, err, tc.want)
		}
	}

	// A coordinator's certificate cannot pose as a worker.
	fake := "127.0.0.1:" + serve(t, credentials.NewTLS(coord.ServerConfig(Coordinator)))
	if err := call(t, fake, coord.ClientCredentials(Worker)); err == nil || !strings.Contains(err.Error(), "coordinator certificate") {
		t.Errorf("a coordinator certificate served as a worker: %v", err)
	}
}

// A node refuses to start with a certificate of the wrong role or none,
// saying how to issue the right one.
func TestLoadChecksOwnRole(t *testing.T) {
	p := newPKI(t)
	p.node("w", Worker, "localhost")
	p.legacy("old", "localhost")
	f := p.files("w")
	f.Role = Coordinator
	if _, err := Load(f, nil); err == nil || !strings.Contains(err.Error(), "is a worker certificate") {
		t.Errorf("a worker certificate loaded as a coordinator's: %v", err)
	}
	f = p.files("old")
	f.Role = Worker
	if _, err := Load(f, nil); err == nil || !strings.Contains(err.Error(), "phalanx certs") {
		t.Errorf("a certificate without a role loaded: %v", err)
	}
	f.Role = ""
	if _, err := Load(f, nil); err != nil {
		t.Errorf("without a role to check (etcd): %v", err)
	}
	// The issued certificates' usages.
	for name, want := range map[string][]x509.ExtKeyUsage{
		"c": {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		"w": {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	} {
		role := Worker
		if name == "c" {
			role = Coordinator
		}
		c, _ := p.node(name, role, "localhost").current()
		if got := c.Leaf.ExtKeyUsage; !slices.Equal(got, want) {
			t.Errorf("%s: usages %v, want %v", name, got, want)
		}
		if RoleOf(c.Leaf) != role {
			t.Errorf("%s: role %q, want %q", name, RoleOf(c.Leaf), role)
		}
	}
}
