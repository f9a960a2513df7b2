#!/bin/sh
# check.sh fails when the committed generated code in proto/phalanxpb/ is not
# what proto/gen.sh produces from the .proto files today. CI runs it.
set -eu

proto_dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

"$proto_dir/gen.sh" "$tmp"

# Compare only generated files: hand-written tests live beside them.
status=0
for f in "$proto_dir"/phalanxpb/*.pb.go "$tmp"/proto/phalanxpb/*.pb.go; do
	[ -e "$f" ] || continue
	name=$(basename "$f")
	if ! diff -u "$proto_dir/phalanxpb/$name" "$tmp/proto/phalanxpb/$name"; then
		status=1
	fi
done 2>&1
if [ "$status" -ne 0 ]; then
	echo "proto/check.sh: generated code is stale; run: go generate ./proto/..." >&2
	exit 1
fi
echo "proto/check.sh: generated code is up to date"
