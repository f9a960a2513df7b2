// Package observe sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables for the daemons.
//
// Exporter: OTEL_TRACES_EXPORTER = otlp | none (default: otlp when an OTLP
// endpoint is configured with OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, none otherwise). Protocol:
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL = grpc |
// http/protobuf (default http/protobuf, as the specification says). The
// exporters read the rest (endpoint, headers, timeout, TLS) themselves; the
// SDK reads OTEL_TRACES_SAMPLER / _ARG and OTEL_BSP_*; OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES override the resource.
package observe

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// SetupTracing installs the global tracer provider and W3C propagation. It
// returns a shutdown function that flushes spans.
func SetupTracing(ctx context.Context, service, instance, version string, log *slog.Logger) (func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	exp := os.Getenv("OTEL_TRACES_EXPORTER")
	if exp == "" {
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
			exp = "otlp"
		} else {
			exp = "none"
		}
	}
	noop := func(context.Context) error { return nil }
	switch exp {
	case "none":
		return noop, nil
	case "otlp":
	default:
		return noop, fmt.Errorf("OTEL_TRACES_EXPORTER %q is not supported (otlp or none)", exp)
	}
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var client otlptrace.Client
	switch proto {
	case "", "http/protobuf":
		client = otlptracehttp.NewClient()
	case "grpc":
		client = otlptracegrpc.NewClient()
	default:
		return noop, fmt.Errorf("OTLP protocol %q is not supported (grpc or http/protobuf)", proto)
	}
	exporter, err := otlptrace.New(ctx, client)
	if err != nil {
		return noop, fmt.Errorf("otlp exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(service), semconv.ServiceInstanceID(instance), semconv.ServiceVersion(version)))
	if err != nil {
		res = resource.Default()
	}
	if envRes, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, envRes); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	log.Info("tracing to OTLP", "protocol", proto, "service", service)
	return tp.Shutdown, nil
}

// LatencyBuckets are the histogram buckets (seconds) of every latency
// metric Phalanx exports, so dashboards can compare them.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
