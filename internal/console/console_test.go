package console

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phalanx-llm/phalanx/internal/openai"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
)

func fakeStatus(context.Context) *phalanxpb.ClusterStatusResponse {
	return &phalanxpb.ClusterStatusResponse{
		Epoch: 7, Leader: "coord-1", Model: "tiny@abc", NumLayers: 4, TokensPerSecond: 12.5, ActiveSessions: 1, QueueDepth: 2,
		PlanExplanation: "w1: layers 0-2\nw2: layers 2-4",
		Workers: []*phalanxpb.WorkerStatus{
			{Id: "w1", Address: "127.0.0.1:1", MemoryTotalBytes: 1 << 30, MemoryFreeBytes: 1 << 29, Speed: 100, ReadyEpoch: 7, Healthy: true, LayerStart: 0, LayerEnd: 2},
			{Id: "w2", Address: "127.0.0.1:2", MemoryTotalBytes: 1 << 30, Healthy: false, LayerStart: 2, LayerEnd: 4},
			{Id: "w3", Address: "127.0.0.1:3", Healthy: true},
		},
		Stages: []*phalanxpb.StageStatus{
			{WorkerId: "w1", Address: "127.0.0.1:1", LayerStart: 0, LayerEnd: 2, Ready: true, LastStepLatencyMs: 1.5},
			{WorkerId: "w2", Address: "127.0.0.1:2", LayerStart: 2, LayerEnd: 4},
		},
	}
}

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

func TestClusterJSON(t *testing.T) {
	mux := http.NewServeMux()
	Register(mux, fakeStatus)
	before := time.Now().Add(-time.Second)
	rec := get(t, mux, "/api/cluster")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content type %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var got struct {
		ServerTime      time.Time
		Epoch           string // uint64: a string in protojson
		Leader, Model   string
		NumLayers       int
		TokensPerSecond float64
		ActiveSessions  int
		QueueDepth      int
		PlanExplanation string
		Workers         []struct {
			ID                                string
			Address                           string
			MemoryTotalBytes, MemoryFreeBytes string
			Speed                             float64
			Healthy                           *bool
			LayerStart, LayerEnd              *int
			KvCacheBytes                      string
			Sessions                          *int
		}
		Stages []struct {
			WorkerID             string
			Address              string
			LayerStart, LayerEnd *int
			Ready                *bool
			LastStepLatencyMs    *float64
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if got.ServerTime.Before(before) || got.ServerTime.After(time.Now().Add(time.Second)) {
		t.Errorf("serverTime %v", got.ServerTime)
	}
	if got.Epoch != "7" || got.Leader != "coord-1" || got.Model != "tiny@abc" || got.NumLayers != 4 || got.TokensPerSecond != 12.5 ||
		got.ActiveSessions != 1 || got.QueueDepth != 2 || !strings.Contains(got.PlanExplanation, "w2") {
		t.Errorf("top level: %s", rec.Body)
	}
	if len(got.Workers) != 3 || len(got.Stages) != 2 {
		t.Fatalf("workers/stages: %s", rec.Body)
	}
	// Every field is present, zero or not: the page relies on it.
	w2, w3, s2 := got.Workers[1], got.Workers[2], got.Stages[1]
	if w2.Healthy == nil || *w2.Healthy || w3.LayerStart == nil || w3.LayerEnd == nil || w3.Sessions == nil || w3.KvCacheBytes != "0" {
		t.Errorf("unpopulated worker fields missing: %s", rec.Body)
	}
	if got.Workers[0].MemoryTotalBytes != "1073741824" || got.Workers[0].MemoryFreeBytes != "536870912" || got.Workers[0].ID != "w1" {
		t.Errorf("worker 1: %+v", got.Workers[0])
	}
	if s2.Ready == nil || *s2.Ready || s2.LastStepLatencyMs == nil || s2.LayerStart == nil || *s2.LayerStart != 2 || *s2.LayerEnd != 4 || s2.WorkerID != "w2" {
		t.Errorf("stage 2: %s", rec.Body)
	}
	if *got.Stages[0].LastStepLatencyMs != 1.5 {
		t.Errorf("latency %v", *got.Stages[0].LastStepLatencyMs)
	}
}

func TestNilStatus(t *testing.T) {
	b, err := Render(nil, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["serverTime"] != "1970-01-01T00:00:00Z" || m["epoch"] != "0" {
		t.Errorf("%v %s", err, b)
	}
}

// The page and its assets are embedded and served, next to the OpenAI API,
// without a key.
func TestPageOnAPIServer(t *testing.T) {
	keys, err := openai.LoadKeys("keys", func(string) ([]byte, error) { return []byte("sk-1\n"), nil })
	if err != nil {
		t.Fatal(err)
	}
	api := openai.New(nil, keys, nil)
	Register(api, fakeStatus)
	for path, want := range map[string]string{
		"/":                  `id="stages"`,
		"/console/app.js":    "/api/cluster",
		"/console/style.css": "@media",
		"/api/cluster":       `"serverTime"`,
		"/console/":          `aria-live="polite"`,
	} {
		rec := get(t, api, path)
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, missing %q", path, rec.Code, want)
		}
	}
	if rec := get(t, api, "/v1/models"); rec.Code != 401 {
		t.Errorf("GET /v1/models without a key: %d, want 401", rec.Code)
	}
	if rec := get(t, api, "/nope"); rec.Code != 404 {
		t.Errorf("GET /nope: %d", rec.Code)
	}
}
