package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/phalanx-llm/phalanx/engine/sample"
	"github.com/phalanx-llm/phalanx/engine/textgen"
	"github.com/phalanx-llm/phalanx/proto/phalanxpb"
	"github.com/phalanx-llm/phalanx/proto/wire"
)

// dial connects to a coordinator: plaintext, or TLS when $PHALANX_TLS_CA
// names the CA (with $PHALANX_TLS_CERT and $PHALANX_TLS_KEY as the client
// certificate, if set).
func dial(addr string) (*grpc.ClientConn, error) {
	ca := os.Getenv("PHALANX_TLS_CA")
	if ca == "" {
		return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	pemBytes, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s holds no PEM certificate", ca)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert, key := os.Getenv("PHALANX_TLS_CERT"), os.Getenv("PHALANX_TLS_KEY"); cert != "" && key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
}

// withKey adds the API key ($PHALANX_API_KEY) to an outgoing call.
func withKey(ctx context.Context) context.Context {
	if key := os.Getenv("PHALANX_API_KEY"); key != "" {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	return ctx
}

// streamRemote runs one generation on a coordinator, calling onMsg for
// every streamed message, and returns the final one.
func streamRemote(ctx context.Context, addr string, preq *phalanxpb.GenerateRequest, onMsg func(*phalanxpb.GenerateResponse)) (*phalanxpb.GenerateResponse, error) {
	conn, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stream, err := phalanxpb.NewInferenceClient(conn).Generate(withKey(ctx), preq)
	if err != nil {
		return nil, err
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return nil, errNoFinal
		}
		if err != nil {
			return nil, err
		}
		onMsg(msg)
		if msg.GetDone() {
			return msg, nil
		}
	}
}

// generateRemoteText streams one generation's text to onText.
func generateRemoteText(ctx context.Context, addr string, req textgen.Request, onText func(string)) error {
	_, err := streamRemote(ctx, addr, toProto(req, "raw"), func(msg *phalanxpb.GenerateResponse) {
		if t := msg.GetText(); t != "" {
			onText(t)
		}
	})
	return err
}

// toProto converts a generation request for the Inference API.
func toProto(req textgen.Request, tmpl string) *phalanxpb.GenerateRequest {
	seed := req.Sampling.Seed
	sp := &phalanxpb.SamplingParams{
		Temperature: req.Sampling.Temperature, TopK: int32(req.Sampling.TopK), TopP: req.Sampling.TopP, MinP: req.Sampling.MinP,
		RepetitionPenalty: req.Sampling.RepetitionPenalty, RepeatLastN: int32(req.Sampling.RepeatLastN),
		PresencePenalty: req.Sampling.PresencePenalty, FrequencyPenalty: req.Sampling.FrequencyPenalty, Seed: &seed,
	}
	if len(req.Sampling.LogitBias) > 0 {
		sp.LogitBias = map[int32]float32{}
		for k, v := range req.Sampling.LogitBias {
			sp.LogitBias[int32(k)] = v
		}
	}
	preq := &phalanxpb.GenerateRequest{Template: tmpl, MaxTokens: int32(req.MaxTokens), Sampling: sp, Stop: req.Stop,
		IgnoreEos: req.IgnoreEOS, NoDefaultStops: req.NoDefaultStops}
	if req.Tokens != nil {
		ids := make([]int32, len(req.Tokens))
		for i, t := range req.Tokens {
			ids[i] = int32(t)
		}
		preq.Input = &phalanxpb.GenerateRequest_Tokens{Tokens: &phalanxpb.TokenIds{Ids: ids}}
	} else {
		preq.Input = &phalanxpb.GenerateRequest_Prompt{Prompt: req.Prompt}
	}
	return preq
}

// generateRemote runs a generation on a coordinator, streaming its text.
func generateRemote(ctx context.Context, addr string, req textgen.Request, tmpl string, asJSON bool, stdout, stderr io.Writer) error {
	var tokens []int
	var text strings.Builder
	msg, err := streamRemote(ctx, addr, toProto(req, tmpl), func(msg *phalanxpb.GenerateResponse) {
		for _, t := range msg.GetTokens() {
			tokens = append(tokens, int(t))
		}
		text.WriteString(msg.GetText())
		if !asJSON && msg.GetText() != "" {
			io.WriteString(stdout, msg.GetText())
		}
	})
	if err != nil {
		return err
	}
	tm := msg.GetTimings()
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"tokens": nonNil(tokens), "text": text.String(), "finish_reason": sample.FinishReason(msg.GetFinishReason()),
			"usage": map[string]int32{"prompt_tokens": msg.GetUsage().GetPromptTokens(), "completion_tokens": msg.GetUsage().GetCompletionTokens()},
			"timings": map[string]float64{"time_to_first_token_ms": tm.GetTimeToFirstTokenMs(),
				"prefill_tokens_per_second": tm.GetPrefillTokensPerSecond(), "decode_tokens_per_second": tm.GetDecodeTokensPerSecond()},
		})
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stderr, "\n%d prompt tokens, %d generated (%s); first token %.0f ms, prefill %.1f tok/s, decode %.2f tok/s\n",
		msg.GetUsage().GetPromptTokens(), msg.GetUsage().GetCompletionTokens(), msg.GetFinishReason(),
		tm.GetTimeToFirstTokenMs(), tm.GetPrefillTokensPerSecond(), tm.GetDecodeTokensPerSecond())
	return nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	addr := fs.String("coordinator", "127.0.0.1:7070", "coordinator host:port")
	asJSON := fs.Bool("json", false, "print the raw status as JSON")
	wait := fs.Duration("wait", 0, "first wait up to this long for the cluster to serve (every stage ready), e.g. 5m")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *wait > 0 {
		if err := waitHealthy(ctx, *addr, "phalanx.v1.Inference", *wait); err != nil {
			return fmt.Errorf("the cluster does not serve: %w", err)
		}
	}
	conn, err := dial(*addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := phalanxpb.NewInferenceClient(conn).ClusterStatus(withKey(ctx), &phalanxpb.ClusterStatusRequest{})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	printStatus(stdout, st)
	return nil
}

func gib(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

func printStatus(w io.Writer, st *phalanxpb.ClusterStatusResponse) {
	fmt.Fprintf(w, "model %s, %d layers, plan epoch %d, leader %s\n", st.GetModel(), st.GetNumLayers(), st.GetEpoch(), st.GetLeader())
	fmt.Fprintf(w, "%d of %d sessions running, %d steps waiting for a batch, %s in flight at most, %.1f tok/s\n",
		st.GetActiveSessions(), st.GetMaxSessions(), st.GetQueueDepth(), plural(int(st.GetMicroBatches()), "micro-batch"), st.GetTokensPerSecond())
	fmt.Fprintf(w, "admission queue %d of %d, %d requests refused (429 / RESOURCE_EXHAUSTED)\n", st.GetQueuedRequests(),
		st.GetMaxQueuedRequests(), st.GetRefusedRequests())
	fmt.Fprintf(w, "activations between stages %s, keys and values kept in %s\n\n", wire.Name(st.GetWire()), wire.Name(st.GetKvCache()))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tWORKER\tADDRESS\tLAYERS\tREADY\tLAST STEP")
	for i, s := range st.GetStages() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t[%d,%d)\t%v\t%.1f ms\n", i+1, s.GetWorkerId(), s.GetAddress(), s.GetLayerStart(), s.GetLayerEnd(), s.GetReady(), s.GetLastStepLatencyMs())
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tADDRESS\tHEALTH\tLAYERS\tWEIGHTS\tMEMORY FREE/TOTAL\tSPEED\tKV CACHE\tSESSIONS\tVERSION")
	for _, wk := range st.GetWorkers() {
		health := "healthy"
		if !wk.GetHealthy() {
			health = "UNREACHABLE"
		}
		layers := "spare"
		if wk.GetLayerEnd() > wk.GetLayerStart() {
			layers = fmt.Sprintf("[%d,%d)", wk.GetLayerStart(), wk.GetLayerEnd())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s / %s\t%.0f layer-steps/s\t%s\t%d\t%s\n", wk.GetId(), wk.GetAddress(), health, layers, transfer(wk),
			gib(wk.GetMemoryFreeBytes()), gib(wk.GetMemoryTotalBytes()), wk.GetSpeed(), gib(wk.GetKvCacheBytes()), wk.GetSessions(), wk.GetVersion())
	}
	tw.Flush()
	if e := st.GetPlanExplanation(); e != "" {
		fmt.Fprintf(w, "\nplan:\n%s\n", e)
	}
}

// transfer describes where a worker's weights come from: its own files, or
// fetched (with the progress of the transfer).
func transfer(wk *phalanxpb.WorkerStatus) string {
	total, done := wk.GetTransferTotalBytes(), wk.GetTransferDoneBytes()
	switch {
	case total == 0:
		return "files"
	case done >= total:
		return fmt.Sprintf("fetched %s (%s received)", mib(total), mib(wk.GetTransferReceivedBytes()))
	}
	return fmt.Sprintf("fetching %.0f%% of %s", 100*float64(done)/float64(total), mib(total))
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
