// Package tlsutil builds the mutual-TLS configurations of Phalanx's
// daemons from PEM files — a certificate, its key and the CA that signs
// every node — and reloads them when the files change, without a restart.
//
// Both ends verify the other against the CA, and each node certificate
// carries a role (see Role): a worker accepts steps only from a client
// certificate of the coordinator role with client-auth usage, and the
// coordinator dials only server certificates of the worker role that name
// the dialled address — a DNS name against the DNS SANs, an IP address
// against the IP SANs.
package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Role is what a node certificate allows its holder to be, carried as a
// URI SAN spiffe://phalanx/ROLE.
type Role string

// The roles of node certificates.
const (
	// Coordinator certificates have client-auth usage (the coordinator
	// dials workers) and server-auth usage (it serves the public API).
	Coordinator Role = "coordinator"
	// Worker certificates have server-auth usage only: a worker serves
	// the Stage service and dials nothing with its node certificate.
	Worker Role = "worker"
)

// URI is the SAN that marks a certificate with the role.
func (r Role) URI() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: "phalanx", Path: "/" + string(r)}
}

// RoleOf is the Phalanx role a certificate carries, or "" for none.
func RoleOf(c *x509.Certificate) Role {
	for _, u := range c.URIs {
		for _, r := range []Role{Coordinator, Worker} {
			if *u == *r.URI() {
				return r
			}
		}
	}
	return ""
}

// checkRole reports a certificate without the role want, saying how to fix
// it when the certificate carries no role at all.
func checkRole(c *x509.Certificate, want Role) error {
	switch got := RoleOf(c); got {
	case want:
		return nil
	case "":
		return fmt.Errorf("tls: certificate %q carries no Phalanx role (no URI SAN %s; made by a `phalanx certs` older than roles?): "+
			"issue a %s certificate, e.g. `phalanx certs --out DIR --coordinators NAME --workers NAME`", c.Subject.CommonName, want.URI(), want)
	default:
		return fmt.Errorf("tls: certificate %q is a %s certificate; a %s certificate is required here", c.Subject.CommonName, got, want)
	}
}

// Files names the PEM files of a node and the role its certificate must
// carry (empty: not checked, as for etcd's certificates).
type Files struct {
	Cert, Key, CA string
	Role          Role
}

// Enabled reports whether TLS is configured; partial configurations are an
// error from Load.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// Reloader holds the current certificate and CA pool and reloads them when
// a file's modification time or size changes.
type Reloader struct {
	files Files
	log   *slog.Logger

	mu    sync.RWMutex
	cert  *tls.Certificate
	pool  *x509.CertPool
	stamp string
}

// Load reads the files once; Watch keeps them fresh.
func Load(f Files, log *slog.Logger) (*Reloader, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return nil, errors.New("tls: --tls-cert, --tls-key and --tls-ca go together")
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Reloader{files: f, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) fileStamp() string {
	s := ""
	for _, p := range []string{r.files.Cert, r.files.Key, r.files.CA} {
		if st, err := os.Stat(p); err == nil {
			s += fmt.Sprintf("%s:%d:%d;", p, st.ModTime().UnixNano(), st.Size())
		}
	}
	return s
}

func (r *Reloader) reload() error {
	stamp := r.fileStamp()
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	caPEM, err := os.ReadFile(r.files.CA)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("tls: %s holds no PEM certificate", r.files.CA)
	}
	if r.files.Role != "" {
		if err := checkRole(cert.Leaf, r.files.Role); err != nil {
			return fmt.Errorf("%s: %w", r.files.Cert, err)
		}
	}
	r.mu.Lock()
	r.cert, r.pool, r.stamp = &cert, pool, stamp
	r.mu.Unlock()
	return nil
}

// Watch polls the files every interval until stop is closed, reloading
// them when they change; a broken new file keeps the old credentials.
func (r *Reloader) Watch(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		r.mu.RLock()
		old := r.stamp
		r.mu.RUnlock()
		if r.fileStamp() == old {
			continue
		}
		if err := r.reload(); err != nil {
			r.log.Error("certificate files changed but cannot be loaded; keeping the previous ones", "err", err)
			continue
		}
		r.log.Info("certificates reloaded", "cert", r.files.Cert, "ca", r.files.CA)
	}
}

func (r *Reloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert, r.pool
}

// verifyChain checks a peer's chain against the current CA pool and the
// usage; then, when given, the host (a DNS name or an IP address) and the
// role.
func (r *Reloader) verifyChain(certs []*x509.Certificate, usage x509.ExtKeyUsage, host string, role Role) error {
	if len(certs) == 0 {
		return errors.New("tls: the peer sent no certificate")
	}
	_, pool := r.current()
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("tls: peer certificate %q refused: %w", leaf.Subject.CommonName, err)
	}
	// VerifyHostname compares an IP address with the IP SANs and a name
	// with the DNS SANs.
	if host != "" {
		if err := leaf.VerifyHostname(host); err != nil {
			return fmt.Errorf("tls: peer certificate %q refused: %w", leaf.Subject.CommonName, err)
		}
	}
	if role != "" {
		if err := checkRole(leaf, role); err != nil {
			r.log.Warn("peer certificate refused", "err", err)
			return err
		}
	}
	return nil
}

// ServerConfig verifies client certificates against the CA with client-auth
// usage. With a role, a client certificate of that role is required (the
// Stage service takes steps from coordinators only); without, a client
// certificate is optional and verified when given (the public API, whose
// clients authenticate with API keys).
func (r *Reloader) ServerConfig(client Role) *tls.Config {
	auth := tls.RequireAnyClientCert
	if client == "" {
		auth = tls.RequestClientCert
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: auth,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, _ := r.current()
			return c, nil
		},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 && client == "" {
				return nil
			}
			certs, err := parse(raw)
			if err != nil {
				return err
			}
			return r.verifyChain(certs, x509.ExtKeyUsageClientAuth, "", client)
		},
	}
}

// ClientConfig presents this node's certificate and verifies the server's
// against the CA and the TLS server name. crypto/tls sends no server name
// for an IP address, so with an IP the certificate's addresses go
// unchecked: gRPC dials between nodes use ClientCredentials, which check
// the dialled address itself.
func (r *Reloader) ClientConfig() *tls.Config { return r.clientConfig("", "") }

// clientConfig verifies the server's certificate against host (when empty,
// the TLS server name) and role (when given).
func (r *Reloader) clientConfig(host string, role Role) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: host,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, _ := r.current()
			return c, nil
		},
		// Verification happens in VerifyConnection against the current
		// (reloadable) pool, with the host checked there.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			h := host
			if h == "" {
				h = cs.ServerName
			}
			return r.verifyChain(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, h, role)
		},
	}
}

// ClientCredentials are gRPC transport credentials for dialling a node of
// the server role: its certificate must be signed by the CA, have
// server-auth usage, carry the role and name the dialled host — its DNS
// name, or its IP address.
func (r *Reloader) ClientCredentials(server Role) credentials.TransportCredentials {
	return &clientCredentials{TransportCredentials: credentials.NewTLS(r.clientConfig("", server)), r: r, role: server}
}

// clientCredentials builds each handshake's configuration for the dialled
// authority, which tls.ConnectionState does not carry for IP addresses.
type clientCredentials struct {
	credentials.TransportCredentials
	r    *Reloader
	role Role
}

func (c *clientCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	host, _, err := net.SplitHostPort(authority)
	if err != nil {
		host = authority
	}
	return credentials.NewTLS(c.r.clientConfig(host, c.role)).ClientHandshake(ctx, authority, conn)
}

func (c *clientCredentials) Clone() credentials.TransportCredentials {
	return &clientCredentials{TransportCredentials: c.TransportCredentials.Clone(), r: c.r, role: c.role}
}

func parse(raw [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(raw))
	for _, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ServerConfigAnyRole requires a client certificate the CA signed that
// carries one of roles: a worker's server takes steps from coordinators and
// weights requests from peers, and tells them apart per method with
// PeerRole.
func (r *Reloader) ServerConfigAnyRole(roles ...Role) *tls.Config {
	cfg := r.ServerConfig("")
	cfg.ClientAuth = tls.RequireAnyClientCert
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		certs, err := parse(raw)
		if err != nil {
			return err
		}
		if err := r.verifyChain(certs, x509.ExtKeyUsageClientAuth, "", ""); err != nil {
			return err
		}
		got := RoleOf(certs[0])
		for _, want := range roles {
			if got == want {
				return nil
			}
		}
		err = fmt.Errorf("tls: peer certificate %q has role %q, not one of %v", certs[0].Subject.CommonName, got, roles)
		r.log.Warn("peer certificate refused", "err", err)
		return err
	}
	return cfg
}

// PeerRole is the role of the verified client certificate of a gRPC call,
// "" without one (or without TLS).
func PeerRole(ctx context.Context) Role {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return ""
	}
	return RoleOf(info.State.PeerCertificates[0])
}
