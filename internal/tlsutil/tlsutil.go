// Package tlsutil builds the mutual-TLS configurations of Phalanx's
// daemons from PEM files — a certificate, its key and the CA that signs
// every node — and reloads them when the files change, without a restart.
//
// Both ends verify the other against the CA: a worker refuses a
// coordinator whose certificate the CA did not sign, and the coordinator
// refuses such a worker. Hostnames are checked on the client side as usual
// (the certificate must name the address the peer is dialled at).
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of a node.
type Files struct{ Cert, Key, CA string }

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

// verifyChain checks a peer's chain against the current CA pool.
func (r *Reloader) verifyChain(certs []*x509.Certificate, usage x509.ExtKeyUsage, host string) error {
	if len(certs) == 0 {
		return errors.New("tls: the peer sent no certificate")
	}
	_, pool := r.current()
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return fmt.Errorf("tls: peer certificate %q refused: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

// ServerConfig requires and verifies a client certificate signed by the CA
// (optional with requireClient false: verified when given).
func (r *Reloader) ServerConfig(requireClient bool) *tls.Config {
	auth := tls.RequireAnyClientCert
	if !requireClient {
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
			if len(raw) == 0 && !requireClient {
				return nil
			}
			certs, err := parse(raw)
			if err != nil {
				return err
			}
			return r.verifyChain(certs, x509.ExtKeyUsageClientAuth, "")
		},
	}
}

// ClientConfig presents this node's certificate and verifies the server's
// against the CA and the dialled host name.
func (r *Reloader) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, _ := r.current()
			return c, nil
		},
		// Verification happens in VerifyConnection against the current
		// (reloadable) pool, with the host name checked there.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return r.verifyChain(cs.PeerCertificates, x509.ExtKeyUsageServerAuth, cs.ServerName)
		},
	}
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
