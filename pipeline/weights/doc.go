// Package weights ships a model's layers to workers that hold no model
// files, and keeps them in a content-addressed cache on the worker's disk.
//
// The coordinator serves the Weights gRPC service from its model files
// (Catalog): Manifest lists a layer range's tensors under their Hugging
// Face names (engine.LayerTensors, the same table the engine loads a layer
// from) with dtype, shape, size and SHA-256; Read streams one tensor's bytes
// from an offset. Matrices travel in their stored dtype (F32, F16, BF16,
// or a GGUF block-quantized type, the rows of a fused attn_qkv part);
// vectors as F32, which the engine widens them to anyway.
//
// A worker keeps what it received in a Cache: one file per tensor named by
// its digest (DIR/sha256/<hex>), written as <hex>.part while it arrives, so
// an interrupted transfer resumes from the bytes already on disk, and
// checked against the digest when complete and again before every load
// (unless this process checked the same file — same size and modification
// time — already) — a corrupted file is deleted and fetched again. A restart, or a re-plan to
// an overlapping range, fetches only the tensors missing. The Cache serves
// Read as well, so a worker that holds a tensor is a source for its peers.
//
// # Usage
//
// Coordinator side:
//
//	cat, _ := weights.NewCatalog(mf)             // mf from engine.Open
//	phalanxpb.RegisterWeightsServer(srv, weights.NewServer(cat, cat))
//
// Worker side:
//
//	cache, _ := weights.OpenCache(dir)
//	man, _ := weights.GetManifest(ctx, client, planModel, layers)
//	f := &weights.Fetcher{Cache: cache, Sources: sources, Rate: limiter}
//	_ = f.Ensure(ctx, man)                       // fetch what is missing
//	src, _ := cache.Source(man)                  // an engine.TensorSource
//	m, _ := engine.LoadFrom(man.Config, src, engine.Options{Layers: layers})
//
// The package never decides which worker holds which layers: the control
// plane asks it for a range.
package weights
