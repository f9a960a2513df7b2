// Package console serves the coordinator's web console: one page (plain
// HTML, CSS and JavaScript embedded in the binary, no build step, no CDN)
// that draws the pipeline live from GET /api/cluster and talks to the model
// through the OpenAI-compatible API of the same HTTP server.
//
// The page and /api/cluster are served without an API key, like health and
// metrics; the chat requests the page sends carry the key the user typed.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

//go:embed static
var assets embed.FS

// StatusFunc returns the cluster's status, as (*controlplane.Coordinator).Status does.
type StatusFunc func(ctx context.Context) *phalanxpb.ClusterStatusResponse

// Mux is where the console's routes go: an http.ServeMux or the OpenAI
// API server's Handle (routes served without a key).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// statusTimeout bounds one /api/cluster request (Status asks every worker).
const statusTimeout = 5 * time.Second

// Register adds the console's routes to mux: the page at "/", its assets
// under "/console/", and the JSON status at "/api/cluster".
func Register(mux Mux, status StatusFunc) {
	static, err := fs.Sub(assets, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	mux.Handle("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(static, "index.html")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	}))
	mux.Handle("GET /console/", http.StripPrefix("/console/", noCache(http.FileServerFS(static))))
	mux.Handle("GET /api/cluster", ClusterHandler(status))
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// ClusterHandler serves the status as JSON: the ClusterStatusResponse in
// protojson's form (lowerCamelCase names, every field present, 64-bit
// integers as strings) plus "serverTime", the server's clock in RFC 3339.
func ClusterHandler(status StatusFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
		defer cancel()
		b, err := Render(status(ctx), time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	})
}

// Render is the /api/cluster body for st at now.
func Render(st *phalanxpb.ClusterStatusResponse, now time.Time) ([]byte, error) {
	if st == nil {
		st = &phalanxpb.ClusterStatusResponse{}
	}
	pb, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(st)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(pb, &fields); err != nil {
		return nil, err
	}
	t, _ := json.Marshal(now.UTC().Format(time.RFC3339Nano))
	fields["serverTime"] = t
	return json.Marshal(fields)
}
