#!/bin/sh
# Packs the filter as the single layer of Istio's "compat" Wasm image: a tar+gzip archive holding one
# file named plugin.wasm (istio/istio pkg/wasm/imagefetcher.go, extractOCIStandardImage). Push it with
# the OCI layer media type, e.g. from the repository root:
#   sh envoy/images/wasm-layer.sh
#   (cd build && oras push ghcr.io/ORG/endpoint-picker-filter:0.1.0 \
#      plugin.tar.gz:application/vnd.oci.image.layer.v1.tar+gzip)
# Usage: wasm-layer.sh [filter.wasm] [out.tar.gz]   (defaults: build/filter.wasm build/plugin.tar.gz)
set -eu
wasm=${1:-build/filter.wasm}
out=${2:-build/plugin.tar.gz}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$wasm" "$tmp/plugin.wasm"
tar -C "$tmp" -czf "$tmp/layer.tar.gz" plugin.wasm
mv "$tmp/layer.tar.gz" "$out"
