#!/usr/bin/env bash
# A CI pipeline with strata, daemonless: build an image from a
# Dockerfile (examples/app, on a busybox base made here), test inside it,
# publish it to a registry, then check the published image from a clean
# store as a deploy job would. Each step is an ordinary strata command; a
# failing step fails the pipeline with that step's exit status.
#
#   REGISTRY=127.0.0.1:5000 bash examples/ci/pipeline.sh
#
# Environment:
#   REGISTRY   host:port of the registry to push to (required). localhost
#              and 127.0.0.0/8 speak plain HTTP, as with Docker; other
#              hosts need TLS or insecure_registries in strata.toml.
#   STRATA     the strata binary (default: strata on PATH)
#   BUILD_ID   the tag to publish (default: the time, as CI systems number)
#   TEST_CMD   the test step, run in the image (default: the smoke test below)
#   WORK       a scratch directory (default: a new temp dir, removed after)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${REGISTRY:?set REGISTRY=host:port}"
STRATA=${STRATA:-strata}
BUILD_ID=${BUILD_ID:-$(date +%Y%m%d%H%M%S)}
TEST_CMD=${TEST_CMD:-'test "$(cat /app/VERSION)" = "$BUILD_ID" && /app/hello | grep -q "hello from"'}
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d /tmp/strata-ci.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
fi
image="$REGISTRY/ci/hello:$BUILD_ID"
# Two stores: the build agent's and, later, a clean one for the deploy job.
build() { "$STRATA" --root "$WORK/build-store" "$@"; }
deploy() { "$STRATA" --root "$WORK/deploy-store" "$@"; }
step() { echo "--- $*"; }

step "base: busybox from Debian's busybox-static"
bash "$here/../../scripts/make-busybox-rootfs.sh" "$WORK/rootfs"
tar -C "$WORK/rootfs" -czf "$WORK/rootfs.tar.gz" .
build import "$WORK/rootfs.tar.gz" busybox >/dev/null

step "build: examples/app/Dockerfile"
build build --progress plain --build-arg VERSION="$BUILD_ID" -t "$image" "$here/../app"
build images --format json | jq -r '.[] | "\(.Names[0]) \(.Id[0:12]) \(.Size) bytes"'

step "test: in the image, no network"
# The exit status of the test step is the pipeline's.
build run --rm --network none -e BUILD_ID="$BUILD_ID" --entrypoint sh "$image" -c "$TEST_CMD"

step "publish: $image"
build push -q "$image"

step "deploy check: a clean store pulls and runs what was published"
id=$(deploy pull -q "$image")
out=$(deploy run --rm --network none --hostname deployed --entrypoint /app/hello "$image")
[ "$out" = "hello from deployed, version $BUILD_ID" ] || { echo "unexpected output: $out" >&2; exit 1; }
deploy save -o "$WORK/hello.tar" "$image"
echo "pipeline: ok ($image, image $id, artifact $(stat -c %s "$WORK/hello.tar") bytes)"
