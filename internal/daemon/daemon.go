// Package daemon wires the coordinator and worker daemons: flags (with
// PHALANX_* fallbacks), logging, etcd (embedded or external), the gRPC
// servers with health and reflection. cmd/coordinator, cmd/worker and
// `phalanx up` are thin callers of Coordinator and Worker.
package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"

	"github.com/phalanx-llm/phalanx/internal/cliflag"
	"github.com/phalanx-llm/phalanx/internal/console"
	"github.com/phalanx-llm/phalanx/internal/observe"
	"github.com/phalanx-llm/phalanx/internal/openai"
	"github.com/phalanx-llm/phalanx/internal/tlsutil"
	"github.com/phalanx-llm/phalanx/internal/zapslog"
	"github.com/phalanx-llm/phalanx/pipeline/api"
	"github.com/phalanx-llm/phalanx/pipeline/controlplane"
	"github.com/phalanx-llm/phalanx/pipeline/stage"
	"github.com/phalanx-llm/phalanx/pipeline/weights"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
	"github.com/phalanx-llm/phalanx/shard/registry"
)

// Version is stamped at build time (-ldflags "-X …/internal/daemon.Version=…").
var Version = "dev"

// ErrUsage marks a command-line mistake.
var ErrUsage = errors.New("usage")

func newLogger(w io.Writer, level, component, id string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q", ErrUsage, level)
	}
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("component", component, "id", id)
	slog.SetDefault(log) // libraries (the registry) log through the default logger
	return log, nil
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := cliflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	return nil
}

func endpoints(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		out = append(out, e)
	}
	return out
}

func etcdClient(eps []string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	if tlsCfg != nil {
		for i, e := range eps {
			eps[i] = strings.Replace(e, "http://", "https://", 1)
		}
	}
	cfg := registry.ClientConfig(eps)
	cfg.Logger = zap.NewNop()
	cfg.TLS = tlsCfg
	return clientv3.New(cfg)
}

// startEmbeddedEtcd runs a single-member etcd in this process, serving
// clients at clientAddr (host:port) with its data in dir, until stop.
func startEmbeddedEtcd(dir, clientAddr string, tlsFiles tlsutil.Files, log *slog.Logger) (stop func(), err error) {
	scheme := "http://"
	if tlsFiles.Enabled() {
		scheme = "https://"
	}
	cu, err := url.Parse(scheme + clientAddr)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(clientAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: --etcd %q: %v", ErrUsage, clientAddr, err)
	}
	// The single member's peer port is only ever used by itself: take a
	// free one. Another process can bind it between our look and etcd's
	// listen; then etcd fails on that port and another one is tried.
	var e *embed.Etcd
	level := zap.NewAtomicLevelAt(zapslog.Level(log))
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		peer := l.Addr().String()
		l.Close()
		pu, _ := url.Parse("http://" + peer)
		cfg := embed.NewConfig()
		cfg.Name = "phalanx"
		cfg.Dir = dir
		cfg.ListenClientUrls = []url.URL{*cu}
		cfg.AdvertiseClientUrls = []url.URL{*cu}
		cfg.ListenPeerUrls = []url.URL{*pu}
		cfg.AdvertisePeerUrls = []url.URL{*pu}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		// etcd's own warnings and fatal exits (it calls Fatal when it cannot
		// purge snapshot files, out of file descriptors) go to the daemon's log;
		// while it stops, only panics and fatal exits (it reports its closing
		// listeners as errors).
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapslog.New(log.With("from", "etcd"), level, "embedded etcd"))
		if tlsFiles.Enabled() {
			cfg.ClientTLSInfo = transport.TLSInfo{CertFile: tlsFiles.Cert, KeyFile: tlsFiles.Key, TrustedCAFile: tlsFiles.CA, ClientCertAuth: true}
		}
		e, err = embed.StartEtcd(cfg)
		if err == nil {
			break
		}
		if attempt < 5 && errors.Is(err, syscall.EADDRINUSE) && strings.Contains(err.Error(), peer) {
			log.Warn("embedded etcd: its peer port was taken meanwhile; trying another", "port", peer)
			continue
		}
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd: not ready after 60 s")
	}
	log.Info("embedded etcd serving", "client", cu.String(), "data", dir)
	return func() {
		level.SetLevel(zap.DPanicLevel)
		e.Close()
		<-e.Server.StopNotify()
	}, nil
}

// notStepStream keeps the long-lived step stream out of otelgrpc's
// per-RPC spans: steps carry their own trace context and spans.
func notStepStream(info *stats.RPCTagInfo) bool {
	return !strings.HasSuffix(info.FullMethodName, "/Process")
}

func grpcServer(opts ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	s := grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(stage.MaxMessageBytes), grpc.MaxSendMsgSize(stage.MaxMessageBytes),
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithFilter(notStepStream))),
		grpc.ConnectionTimeout(grpcHandshakeTimeout),
	}, opts...)...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return s, hs
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "node"
	}
	return h
}

// Coordinator runs the coordinator daemon until ctx ends.
func Coordinator(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "model: a Hugging Face directory or a .gguf file; the coordinator holds the embedding, final norm, lm_head and tokenizer")
	listen := fs.String("listen", "127.0.0.1:7070", "host:port of the Inference gRPC API")
	etcdEps := fs.String("etcd", "127.0.0.1:2379", "etcd endpoints, comma-separated (with --embedded-etcd: the address to serve etcd clients on)")
	embedded := fs.String("embedded-etcd", "", "run etcd inside the coordinator with its data in this directory")
	cluster := fs.String("cluster", "default", "cluster name: the etcd key prefix /phalanx/NAME/")
	minWorkers := fs.Int("min-workers", 1, "do not plan until this many workers have joined")
	id := fs.String("id", "", "coordinator id for leader election (default: hostname-listen)")
	threads := fs.Int("threads", 0, "kernel threads for the embedding and head (0: one per CPU)")
	wireDT := fs.String("wire", "f32", "activation dtype between stages: f32 (exact), f16 (half the bytes) or q8 (block-quantized int8, 27 % of f32's bytes)")
	kvCache := fs.String("kv-cache", "f32", "how the workers keep the sessions' keys and values: f32 (exact) or f16 (half the memory and of what attention reads, each value rounded to 11 significant bits)")
	stageTimeout := fs.Duration("stage-timeout", 30*time.Second, "a stage with steps in flight that sends nothing this long (no answer, no heartbeat) counts as failed")
	replanTimeout := fs.Duration("replan-timeout", 60*time.Second, "how long a request waits for a working pipeline before UNAVAILABLE")
	maxSessions := fs.Int("max-sessions", 0, "generations running at once (0: derived from the workers' KV cache budgets)")
	maxQueue := fs.Int("max-queue", 0, "requests waiting for a session; past it they get 429 / RESOURCE_EXHAUSTED at once (0: 2 × max-sessions)")
	queueTimeout := fs.Duration("queue-timeout", 30*time.Second, "how long a request waits for a session before 429 / RESOURCE_EXHAUSTED")
	microBatches := fs.Int("micro-batches", 0, "micro-batches in flight at most (0: one per stage that can compute while the others do: every stage on a machine of its own, and of the stages sharing a machine as many as their workers' --threads fit its CPUs)")
	leaderTTL := fs.Duration("leader-ttl", 5*time.Second, "etcd session of the leadership: a standby takes over this long after the leader dies")
	probeInterval := fs.Duration("probe-interval", 5*time.Second, "how often an unreachable registered worker is tried again")
	prefillChunk := fs.Int("prefill-chunk", 512, "prompt tokens of one session per step: longer prompts go in chunks, interleaved with other sessions' decode steps")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	httpAddr := fs.String("http", "", "host:port of the OpenAI-compatible HTTP API (off when empty)")
	metricsAddr := fs.String("metrics", "", "host:port for Prometheus /metrics (also served on --http)")
	allowedHosts := fs.String("allowed-hosts", "", "comma-separated host names (or *.domain) the HTTP API answers besides IP addresses and localhost, when it listens on loopback or has no --api-key-file ('*': any)")
	tf := addTLSFlags(fs)
	keyFile := fs.String("api-key-file", "", "file of API keys, one per line: requests need 'Authorization: Bearer KEY' (HTTP and gRPC); health and metrics stay open")
	sf := addServeFlags(fs, true)
	wf := addCoordinatorWeightsFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("%w: --model is required", ErrUsage)
	}
	var keys *openai.Keys
	if *keyFile != "" {
		var err error
		if keys, err = openai.LoadKeys(*keyFile, os.ReadFile); err != nil {
			return err
		}
	}
	if *id == "" {
		*id = hostname() + "-" + *listen
	}
	log, err := newLogger(stderr, *logLevel, "coordinator", *id)
	if err != nil {
		return err
	}
	wdt, err := wire.ParseName(*wireDT)
	if err != nil {
		return fmt.Errorf("%w: --wire %v", ErrUsage, err)
	}
	kvdt, err := wire.ParseName(*kvCache, phalanxpb.DType_DTYPE_F32, phalanxpb.DType_DTYPE_F16)
	if err != nil {
		return fmt.Errorf("%w: --kv-cache %v", ErrUsage, err)
	}
	eps := endpoints(*etcdEps)
	if *embedded != "" {
		if len(eps) != 1 {
			return fmt.Errorf("%w: --embedded-etcd serves one address; --etcd has %d", ErrUsage, len(eps))
		}
		u, _ := url.Parse(eps[0])
		stopEtcd, err := startEmbeddedEtcd(*embedded, u.Host, tf.etcd, log)
		if err != nil {
			return err
		}
		defer stopEtcd()
	}
	etcdTLS, err := tf.etcdTLS(ctx, log)
	if err != nil {
		return err
	}
	cli, err := etcdClient(eps, etcdTLS)
	if err != nil {
		return err
	}
	defer cli.Close()
	tf.node.Role = tlsutil.Coordinator
	nodeTLS, err := tf.nodeTLS(ctx, log)
	if err != nil {
		return err
	}
	stopTracing, err := startTracing(ctx, "phalanx-coordinator", *id, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	weightsAddr := ""
	if wf.serve {
		weightsAddr = cmp.Or(wf.advertise, lis.Addr().String())
	}
	reg := newRegistry()
	coord, err := controlplane.NewCoordinator(controlplane.CoordinatorConfig{
		ID: *id, Model: *model, Cluster: *cluster, Etcd: cli, MinWorkers: *minWorkers, Threads: *threads,
		Wire: wdt, KVCache: kvdt, StageTimeout: *stageTimeout, ReplanTimeout: *replanTimeout, Logger: log,
		MaxSessions: *maxSessions, MaxQueue: *maxQueue, QueueTimeout: *queueTimeout, PrefillChunk: *prefillChunk, MicroBatches: *microBatches,
		LeaderTTL: *leaderTTL, ProbeInterval: *probeInterval,
		DialOptions: stageDialOptions(nodeTLS), Registerer: reg, WeightsAddress: weightsAddr,
	})
	if err != nil {
		return err
	}
	defer coord.Close()
	if *metricsAddr != "" {
		ms, err := serveMetrics(*metricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer ms.Close()
	}
	// The public API takes small requests; Stage traffic needs MaxMessageBytes.
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(api.MaxRequestBytes)}
	if nodeTLS != nil {
		// Clients of the public API authenticate with API keys; a client
		// certificate is checked against the CA when one is presented.
		opts = append(opts, grpc.Creds(credentials.NewTLS(nodeTLS.ServerConfig(""))))
		opts = append(opts, roleInterceptors(coordinatorRoles)...)
	}
	if keys != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(apiKeyUnary(keys)), grpc.ChainStreamInterceptor(apiKeyStream(keys)))
	}
	listeners := 1
	if *httpAddr != "" {
		listeners = 2
	}
	srv, hs := grpcServer(opts...)
	phalanxpb.RegisterInferenceServer(srv, api.NewInferenceServer(coord))
	wf.register(srv, coord.Catalog())
	go srv.Serve(sf.limit(lis, "grpc", listeners, log))
	defer srv.Stop()
	if *httpAddr != "" {
		hl, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return err
		}
		api := openai.New(coord, keys, log)
		api.RestrictHosts(hl.Addr().String(), strings.Split(*allowedHosts, ","))
		api.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		console.Register(api, coord.Status) // the web console at "/" and GET /api/cluster, no key
		hsrv := sf.httpServer(api, log)
		go hsrv.Serve(sf.limit(hl, "http", listeners, log))
		defer hsrv.Close()
		log.Info("OpenAI-compatible HTTP API serving", "http", hl.Addr().String(), "api_keys", keys != nil)
	}
	log.Info("coordinator serving", "listen", lis.Addr().String(), "model", coord.ModelID(), "etcd", eps, "version", Version)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // health follows readiness
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			st := healthpb.HealthCheckResponse_NOT_SERVING
			if coord.Ready() {
				st = healthpb.HealthCheckResponse_SERVING
			}
			hs.SetServingStatus("phalanx.v1.Inference", st)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	err = coord.Run(ctx)
	hs.Shutdown()
	return err
}

// Worker runs the worker daemon until ctx ends.
func Worker(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "the worker's own copy of the model: a Hugging Face directory or a .gguf file (only its planned layers are read); without it, the worker fetches its layers into --cache")
	listen := fs.String("listen", "127.0.0.1:7071", "host:port of the Stage gRPC service")
	advertise := fs.String("advertise", "", "host:port the coordinator dials (default: --listen's)")
	etcdEps := fs.String("etcd", "127.0.0.1:2379", "etcd endpoints, comma-separated")
	cluster := fs.String("cluster", "default", "cluster name")
	name := fs.String("name", "", "worker id (default: hostname-port)")
	threads := fs.Int("threads", 0, "kernel threads (0: one per CPU)")
	memory := fs.Uint64("memory", 0, "bytes offered for layers and KV caches (0: the machine's available memory)")
	speed := fs.Float64("speed", 0, "layer-steps per second to report (0: measure at start)")
	leaseTTL := fs.Duration("lease-ttl", 5*time.Second, "etcd lease: a worker silent this long leaves the cluster")
	hostID := fs.String("host-id", "", "the machine this worker runs on, as the coordinator counts machines: stages on one machine compute at the same time only as far as their workers' threads fit its CPUs (default: /etc/machine-id, else the host name)")
	idle := fs.Duration("session-idle-timeout", 10*time.Minute, "free a session's KV cache after this long unused")
	reserve := fs.Uint64("reserve", controlplane.DefaultWorkerReserve, "bytes of --memory kept outside layers and KV caches (runtime, buffers, activations)")
	kvWarm := fs.Uint64("kv-warm", 256<<20, "bytes of KV cache memory faulted in when layers load and kept mapped (at most the KV budget), so the first sessions' caches grow without page faults mid-step (0: off)")
	heartbeat := fs.Duration("heartbeat", time.Second, "while a step computes, tell the coordinator this often that the worker is alive (keep well under the coordinator's --stage-timeout)")
	maxStepRows := fs.Int("max-step-rows", 8192, "rows (tokens) one step may carry; published, so the coordinator cuts steps and replays to fit")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	stepDelay := fs.Duration("debug-step-delay", 0, "testing aid: sleep this long before every step")
	replyDelay := fs.Duration("debug-reply-delay", 0, "testing aid: hold every answer and heartbeat this long before sending it, like a network of that round-trip time (the worker keeps computing queued steps meanwhile)")
	metricsAddr := fs.String("metrics", "", "host:port for Prometheus /metrics (off when empty)")
	tf := addTLSFlags(fs)
	sf := addServeFlags(fs, false)
	wf := addWorkerWeightsFlags(fs)
	fs.Lookup("etcd-cert").Usage = "client certificate for etcd (PEM)" // a worker runs no embedded etcd
	if err := parse(fs, args); err != nil {
		return err
	}
	var cache *weights.Cache
	switch {
	case *model == "" && wf.cache == "":
		return fmt.Errorf("%w: --model (the worker's copy of the model) or --cache (a directory for the layers it fetches) is required", ErrUsage)
	case *model == "":
		var err error
		if cache, err = weights.OpenCache(wf.cache); err != nil {
			return err
		}
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	addr := *advertise
	if addr == "" {
		addr = lis.Addr().String()
	}
	if *name == "" {
		_, port, _ := net.SplitHostPort(lis.Addr().String())
		*name = hostname() + "-" + port
	}
	log, err := newLogger(stderr, *logLevel, "worker", *name)
	if err != nil {
		return err
	}
	if host, _, _ := net.SplitHostPort(addr); net.ParseIP(host).IsUnspecified() {
		log.Warn("advertising an unspecified address that no other machine can dial: pass --advertise HOST:PORT", "advertise", addr)
	}
	ctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	etcdTLS, err := tf.etcdTLS(ctx, log)
	if err != nil {
		return err
	}
	cli, err := etcdClient(endpoints(*etcdEps), etcdTLS)
	if err != nil {
		return err
	}
	defer cli.Close()
	tf.node.Role = tlsutil.Worker
	nodeTLS, err := tf.nodeTLS(ctx, log)
	if err != nil {
		return err
	}
	mem := *memory
	// The KV cache budget is set when layers load: what they leave of --memory.
	stopTracing, err := startTracing(ctx, "phalanx-worker", *name, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	reg := newRegistry()
	stageSrv := stage.NewServer(stage.Config{WorkerID: *name, Version: Version, IdleTimeout: *idle, StepDelay: *stepDelay,
		ReplyDelay: *replyDelay, MaxStepRows: *maxStepRows, Heartbeat: *heartbeat, Logger: log, Registerer: reg})
	defer stageSrv.Close()
	if *metricsAddr != "" {
		ms, err := serveMetrics(*metricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer ms.Close()
	}
	var sopts []grpc.ServerOption
	switch {
	case nodeTLS != nil && cache != nil:
		// Coordinators send steps; peers and coordinators fetch weights.
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(nodeTLS.ServerConfigAnyRole(tlsutil.Coordinator, tlsutil.Worker))))
		sopts = append(sopts, roleInterceptors(workerRoles)...)
	case nodeTLS != nil:
		// Only a coordinator certificate the CA signed may send steps.
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(nodeTLS.ServerConfig(tlsutil.Coordinator))))
	}
	srv, hs := grpcServer(sopts...)
	phalanxpb.RegisterStageServer(srv, stageSrv)
	if cache != nil { // peers fetch the tensors it holds
		ws := weights.NewServer(cache, nil)
		ws.LimitRate(float64(wf.serveRate))
		phalanxpb.RegisterWeightsServer(srv, ws)
	}
	hs.SetServingStatus("phalanx.v1.Stage", healthpb.HealthCheckResponse_SERVING)
	go srv.Serve(sf.limit(lis, "grpc", 1, log))
	defer srv.Stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go stageSrv.Run(ctx)
	log.Info("worker serving", "listen", lis.Addr().String(), "advertise", addr, "version", Version)
	return controlplane.RunWorker(ctx, controlplane.WorkerConfig{
		ID: *name, Address: addr, Version: Version, Model: *model, Cluster: *cluster, Threads: *threads,
		MemoryFree: mem, Reserve: *reserve, KVWarm: *kvWarm, Speed: *speed, Host: *hostID, LeaseTTL: *leaseTTL, Etcd: cli, Stage: stageSrv, Logger: log,
		Cache: cache, TransferRate: float64(wf.rate), PruneAfter: wf.pruneAfter, WeightsDial: weightsDial(nodeTLS),
	})
}

// Exit turns a daemon's error into an exit status, printing it.
func Exit(err error, name string) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	return 1
}

// newRegistry is a Prometheus registry with the Go runtime and process
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveMetrics serves /metrics and /healthz on addr until the returned
// server is closed.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (*http.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	log.Info("metrics serving", "address", l.Addr().String())
	return srv, nil
}

// tlsFlags registers the mTLS and etcd TLS flags shared by both daemons.
type tlsFlags struct {
	node, etcd tlsutil.Files
}

func addTLSFlags(fs *flag.FlagSet) *tlsFlags {
	f := &tlsFlags{}
	fs.StringVar(&f.node.Cert, "tls-cert", "", "this node's certificate (PEM) for mutual TLS between coordinator and workers")
	fs.StringVar(&f.node.Key, "tls-key", "", "its private key (PEM)")
	fs.StringVar(&f.node.CA, "tls-ca", "", "the CA that signs every node's certificate (PEM); peers it did not sign are refused")
	fs.StringVar(&f.etcd.Cert, "etcd-cert", "", "client certificate for etcd (PEM); with --embedded-etcd also its server certificate")
	fs.StringVar(&f.etcd.Key, "etcd-key", "", "its private key (PEM)")
	fs.StringVar(&f.etcd.CA, "etcd-ca", "", "CA of etcd's certificates (PEM)")
	return f
}

// nodeTLS loads the node's certificates and keeps them fresh until ctx ends;
// nil when TLS is not configured.
func (f *tlsFlags) nodeTLS(ctx context.Context, log *slog.Logger) (*tlsutil.Reloader, error) {
	if !f.node.Enabled() {
		return nil, nil
	}
	r, err := tlsutil.Load(f.node, log)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	go r.Watch(2*time.Second, ctx.Done())
	return r, nil
}

// etcdTLS is the client TLS configuration for etcd, nil without flags.
func (f *tlsFlags) etcdTLS(ctx context.Context, log *slog.Logger) (*tls.Config, error) {
	if !f.etcd.Enabled() {
		return nil, nil
	}
	r, err := tlsutil.Load(f.etcd, log)
	if err != nil {
		return nil, fmt.Errorf("%w: etcd: %v", ErrUsage, err)
	}
	go r.Watch(5*time.Second, ctx.Done())
	return r.ClientConfig(), nil
}

// stageDialOptions are the coordinator's options for dialing workers.
func stageDialOptions(nodeTLS *tlsutil.Reloader) []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithFilter(notStepStream)))}
	if nodeTLS != nil {
		opts = append(opts, grpc.WithTransportCredentials(nodeTLS.ClientCredentials(tlsutil.Worker)))
	}
	return opts
}

// startTracing sets up OpenTelemetry from OTEL_* and returns a function
// that flushes the spans (at most 5 s) on exit.
func startTracing(ctx context.Context, service, id string, log *slog.Logger) (func(), error) {
	shutdown, err := observe.SetupTracing(ctx, service, id, Version, log)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown(sctx)
	}, nil
}
