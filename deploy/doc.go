// Package deploy holds Phalanx's deployment artifacts and the tests that
// keep them honest: the Dockerfile at the repository root and the
// kustomize base and overlays under k8s/. It has no code; its tests build
// the binaries the way the Dockerfile does, render every overlay with the
// kustomize API, decode every object strictly into the Kubernetes API
// types, and check the manifests against the daemons' real flags, ports
// and health services. They need no cluster and no Docker engine.
package deploy
