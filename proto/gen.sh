#!/bin/sh
# gen.sh regenerates the Go code of the wire contract from phalanx/v1/*.proto.
#
#   proto/gen.sh [OUT_ROOT]
#
# OUT_ROOT is the directory standing for the module root (default: the
# repository); the code lands in OUT_ROOT/proto/phalanxpb/. check.sh passes a
# temporary directory to compare a fresh generation with the committed one.
#
# protoc needs plugin executables, so the two plugins pinned by go.mod's tool
# block are built into a temporary directory first (from the module cache, so
# the versions are exactly the ones in go.sum). protoc itself comes from the
# system (Debian: apt-get install protobuf-compiler); its version is written
# into the generated header, so CI must use the same package.
set -eu

proto_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$proto_dir/.." && pwd)
out=${1:-$root}
mkdir -p "$out"
out=$(cd "$out" && pwd)

command -v protoc >/dev/null 2>&1 || {
	echo "gen.sh: protoc not found (apt-get install protobuf-compiler)" >&2
	exit 1
}

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT INT TERM

cd "$root"
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc

# module= strips the module path from go_package, so the files land in
# OUT_ROOT/proto/phalanxpb/ while the descriptors keep their import path
# phalanx/v1/phalanx.proto (what reflection and other .proto files see).
# The file list is sorted so the invocation is the same on every machine.
cd "$proto_dir"
protoc \
	--proto_path=. \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" \
	--plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
	--go_out="$out" \
	--go_opt=module=github.com/phalanx-llm/phalanx \
	--go-grpc_out="$out" \
	--go-grpc_opt=module=github.com/phalanx-llm/phalanx \
	$(find phalanx -name '*.proto' | LC_ALL=C sort)
