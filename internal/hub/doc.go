// Package hub downloads models from a Hugging Face Hub (huggingface.co, a
// mirror, or a stand-in) into a local cache laid out as huggingface_hub
// lays it out, so the two share one cache. `phalanx pull` is its command.
//
// It never sends the token anywhere but the endpoint's own origin, never
// writes outside its cache directory whatever the server says, and never
// loads or runs what it downloads.
//
// # Usage
//
//	c, err := hub.FromEnv(os.Getenv) // HF_ENDPOINT, HF_TOKEN, cache directory
//	c.Progress = hub.NewTextProgress(os.Stderr, true)
//	snap, err := c.Pull(ctx, "microsoft/phi-2", hub.PullOptions{Revision: "main"})
//	mf, err := engine.Open(snap.Dir) // then mf.Load(…)
//
//	path, err := c.PullURL(ctx, "https://example.com/models/phi-2.Q8_0.gguf")
//
// Pull takes what running the model needs: config.json, tokenizer.json,
// tokenizer_config.json, special_tokens_map.json and generation_config.json
// when present, and model.safetensors, or model.safetensors.index.json and
// every shard its weight_map names. PullOptions.Include replaces that
// selection with glob patterns.
//
// # Endpoints
//
// Endpoint is HF_ENDPOINT, by default https://huggingface.co. The token
// (HF_TOKEN) goes as "Authorization: Bearer TOKEN".
//
//   - GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true: the
//     model info. Used: "sha" (the commit the revision resolves to) and
//     "siblings": [{"rfilename", "blobId", "size", "lfs": {"sha256",
//     "size", "pointerSize"}}]. "lfs" is present for Git LFS files only;
//     their blob id is the sha256, others' the git blob id.
//   - GET {endpoint}/{repo}/resolve/{commit}/{path}: a file, requested by
//     commit so that one pull is one commit even if the branch moves. A
//     regular file comes back 200 with "ETag: \"{git blob id}\""; an LFS
//     file as 302 to a signed CDN URL, with "X-Linked-Etag: \"{sha256}\"",
//     "X-Linked-Size" and "X-Repo-Commit". "Range: bytes=N-" is honoured
//     (206 Partial Content) by both the Hub and the CDN.
//   - HEAD of the same URL, without following the redirect, only when the
//     model info lacks blob ids: X-Linked-Etag or ETag names the blob.
//   - Errors carry "X-Error-Code" (RepoNotFound, RevisionNotFound,
//     EntryNotFound, GatedRepo) and "X-Error-Message". Without a token the
//     Hub answers 401 for private and for nonexistent repositories alike.
//
// The Client follows redirects itself: net/http would forward the
// Authorization header to subdomains (huggingface.co to
// cdn-lfs.huggingface.co), and the token must go to the endpoint's origin
// (scheme, host and port) only. Requests ask for "Accept-Encoding: identity"
// so that sizes and hashes are those of the file.
//
// # Cache layout
//
// The root is, in order: the Client's CacheDir (--cache), $PHALANX_CACHE,
// $HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub,
// ~/.cache/huggingface/hub.
//
//	models--{org}--{name}/
//	  blobs/{etag}                  file contents; LFS files are named by sha256
//	  blobs/{etag}.incomplete       a download in progress, resumed by the next pull
//	  refs/{revision}               the commit the branch or tag resolved to
//	  snapshots/{commit}/{path}     relative symlink to ../../blobs/{etag}
//	urls/{host}/{path}              a file pulled by a non-Hub URL
//
// A blob that exists is complete and verified: downloads go to
// {etag}.incomplete and are renamed only after their size (and, for LFS
// files, sha256) matched the model info. A pull whose files are all cached
// sends one request, the model info.
//
// # Failures
//
// Connection errors, 429, 5xx, a transfer cut short and a transfer that
// stalls for StallTimeout are retried (Attempts, 3 by default, with doubling
// Backoff), each attempt resuming with a Range request from the bytes on
// disk; a server answering 200 to a Range request is read from the start.
// Cancellation leaves the .incomplete file for the next pull. A sha256 or
// size mismatch deletes it and fails with ErrChecksum or ErrSize naming
// the file. A sibling path, revision, shard name or blob id that would
// leave the cache directory fails with ErrUnsafePath; JSON documents are
// capped at MaxMetadataBytes.
//
// Not implemented: parallel downloads, the Xet protocol (the Hub still
// serves Xet-backed files over resolve URLs), locking against a concurrent
// pull of the same blob, the token file written by `huggingface-cli login`,
// and HF_HUB_OFFLINE.
package hub
