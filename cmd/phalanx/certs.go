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

// runCerts makes a development CA and node certificates for mutual TLS,
// each carrying its role (tlsutil.Role).
func runCerts(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("certs", stderr)
	dir := fs.String("out", "certs", "directory to write ca.pem, ca-key.pem and NODE.pem / NODE-key.pem")
	coordinators := fs.String("coordinators", "coordinator", "comma-separated names to issue coordinator certificates for (client and server usage)")
	workers := fs.String("workers", "worker", "comma-separated names to issue worker certificates for (server usage only)")
	nodes := fs.String("nodes", "", "removed: certificates carry a role now; use --coordinators and --workers")
	hosts := fs.String("hosts", "localhost,127.0.0.1", "comma-separated DNS names and IPs every node certificate is valid for (the addresses peers dial)")
	days := fs.Int("days", 365, "validity in days")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *nodes != "" {
		return usagef("--nodes is gone: a certificate is a coordinator's or a worker's; use --coordinators NAMES --workers NAMES")
	}
	if *days < 1 || *days > 3650 {
		return usagef("--days %d outside [1, 3650]", *days)
	}
	type node struct {
		name string
		role tlsutil.Role
	}
	var list []node
	for _, g := range []struct {
		names string
		role  tlsutil.Role
	}{{*coordinators, tlsutil.Coordinator}, {*workers, tlsutil.Worker}} {
		for _, n := range strings.Split(g.names, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if strings.ContainsAny(n, "/\\") || n == "ca" {
				return usagef("bad node name %q", n)
			}
			list = append(list, node{n, g.role})
		}
	}
	if len(list) == 0 {
		return usagef("no node names: give --coordinators or --workers")
	}
	validity := time.Duration(*days) * 24 * time.Hour
	if _, err := os.Stat(filepath.Join(*dir, "ca.pem")); err == nil {
		fmt.Fprintf(stderr, "using the existing CA in %s\n", *dir)
	} else if err := tlsutil.NewCA(*dir, "Phalanx development CA", validity); err != nil {
		return err
	}
	hostList := strings.Split(*hosts, ",")
	for _, n := range list {
		if err := tlsutil.NewNode(*dir, *dir, n.name, n.role, append([]string{n.name}, hostList...), validity); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s (%s): --tls-cert %s --tls-key %s --tls-ca %s\n", n.name, n.role,
			filepath.Join(*dir, n.name+".pem"), filepath.Join(*dir, n.name+"-key.pem"), filepath.Join(*dir, "ca.pem"))
	}
	return nil
}
