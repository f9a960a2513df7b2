package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/phalanx-llm/phalanx/internal/tlsutil"
)

// runCerts makes a development CA and node certificates for mutual TLS.
func runCerts(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("certs", stderr)
	dir := fs.String("out", "certs", "directory to write ca.pem, ca-key.pem and NODE.pem / NODE-key.pem")
	nodes := fs.String("nodes", "coordinator,worker", "comma-separated node names to issue certificates for")
	hosts := fs.String("hosts", "localhost,127.0.0.1", "comma-separated DNS names and IPs every node certificate is valid for (the addresses peers dial)")
	days := fs.Int("days", 365, "validity in days")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *days < 1 || *days > 3650 {
		return usagef("--days %d outside [1, 3650]", *days)
	}
	validity := time.Duration(*days) * 24 * time.Hour
	if _, err := os.Stat(filepath.Join(*dir, "ca.pem")); err == nil {
		fmt.Fprintf(stderr, "using the existing CA in %s\n", *dir)
	} else if err := tlsutil.NewCA(*dir, "Phalanx development CA", validity); err != nil {
		return err
	}
	hostList := strings.Split(*hosts, ",")
	for _, n := range strings.Split(*nodes, ",") {
		n = strings.TrimSpace(n)
		if n == "" || strings.ContainsAny(n, "/\\") || n == "ca" {
			return usagef("bad node name %q", n)
		}
		if err := tlsutil.NewNode(*dir, *dir, n, append([]string{n}, hostList...), validity); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: --tls-cert %s --tls-key %s --tls-ca %s\n", n,
			filepath.Join(*dir, n+".pem"), filepath.Join(*dir, n+"-key.pem"), filepath.Join(*dir, "ca.pem"))
	}
	return nil
}
