package daemon

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/phalanx-llm/phalanx/internal/tlsutil"
	"github.com/phalanx-llm/phalanx/pipeline/weights"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

// byteRate is a flag of bytes per second: a number with an optional
// decimal unit (k, M, G: 1000-based; "100M" is 100 MB/s).
type byteRate float64

func (b *byteRate) String() string { return strconv.FormatFloat(float64(*b), 'g', -1, 64) }

func (b *byteRate) Set(s string) error {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "/s"), "B")
	mult := 1.0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult, t = 1e3, t[:n-1]
		case 'M':
			mult, t = 1e6, t[:n-1]
		case 'G':
			mult, t = 1e9, t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a rate in bytes per second (100M, 1.5G, 0 for no limit)", s)
	}
	*b = byteRate(v * mult)
	return nil
}

// coordinatorWeights are the coordinator's flags for serving the model's
// layers to workers without model files.
type coordinatorWeights struct {
	serve     bool
	advertise string
	rate      byteRate
}

func addCoordinatorWeightsFlags(fs *flag.FlagSet) *coordinatorWeights {
	f := &coordinatorWeights{}
	fs.BoolVar(&f.serve, "serve-weights", true, "serve the model's layers to workers started without --model (the Weights service on --listen; with mTLS, to worker certificates only)")
	fs.StringVar(&f.advertise, "advertise", "", "host:port workers dial for weights, published in etcd (default: --listen's)")
	fs.Var(&f.rate, "serve-weights-rate", "bytes per second the coordinator sends weights at most, all workers together, so steps keep their bandwidth (100M, 1.5G; 0: no limit)")
	return f
}

// register adds the Weights service to the coordinator's server.
func (f *coordinatorWeights) register(srv *grpc.Server, cat *weights.Catalog) {
	if f.serve {
		ws := weights.NewServer(cat, cat)
		ws.LimitRate(float64(f.rate))
		phalanxpb.RegisterWeightsServer(srv, ws)
	}
}

// coordinatorRoles: with mTLS, only nodes of the cluster fetch weights.
var coordinatorRoles = methodRoles{"/phalanx.v1.Weights/": {tlsutil.Worker, tlsutil.Coordinator}}

// workerRoles: a worker serving its cache takes steps from coordinators
// only and weights requests from peers and coordinators.
var workerRoles = methodRoles{
	"/phalanx.v1.Stage/":   {tlsutil.Coordinator},
	"/phalanx.v1.Weights/": {tlsutil.Worker, tlsutil.Coordinator},
}

// workerWeights are a worker's flags for fetching its layers.
type workerWeights struct {
	cache      string
	rate       byteRate
	serveRate  byteRate
	pruneAfter time.Duration
}

func addWorkerWeightsFlags(fs *flag.FlagSet) *workerWeights {
	f := &workerWeights{}
	fs.StringVar(&f.cache, "cache", "", "without --model: directory where the worker keeps the layers it fetches from the coordinator and its peers (content-addressed, resumed, checked)")
	fs.DurationVar(&f.pruneAfter, "cache-prune-after", 30*time.Second, "without --model: after loading a range, delete the cached layers outside it this long later (and once no peer has read from the cache for 10 s)")
	fs.Var(&f.rate, "transfer-rate", "without --model: bytes per second the worker fetches at most, so serving keeps its bandwidth (100M, 1.5G; 0: no limit)")
	fs.Var(&f.serveRate, "serve-weights-rate", "without --model: bytes per second the worker sends its cached layers to peers at most (100M, 1.5G; 0: no limit)")
	return f
}

// weightsDial returns the worker's dial options for a Weights service.
func weightsDial(nodeTLS *tlsutil.Reloader) func(role string) []grpc.DialOption {
	if nodeTLS == nil {
		return nil
	}
	return func(role string) []grpc.DialOption {
		return []grpc.DialOption{grpc.WithTransportCredentials(nodeTLS.ClientCredentials(tlsutil.Role(role)))}
	}
}
