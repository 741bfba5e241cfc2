# Istio's Wasm image, "compat" variant: one layer holding plugin.wasm (istio/istio pkg/wasm/imagefetcher.go
# reads the last layer, application/vnd.docker.image.rootfs.diff.tar.gzip or
# application/vnd.oci.image.layer.v1.tar+gzip, and takes the file named plugin.wasm from it).
#   make build/filter.wasm
#   docker buildx build --provenance=false --sbom=false -f envoy/images/wasm.Dockerfile \
#     -t ghcr.io/example/endpoint-picker-filter:0.1.0 --push .
# (--provenance/--sbom=false: attestations would turn the push into an image index.)
# Without Docker: envoy/images/wasm-layer.sh packs the same layer to push with oras. A lone
# application/vnd.module.wasm.content.layer.v1+wasm layer is NOT accepted: Istio's OCI-artifact variant
# needs exactly two layers.
FROM scratch
COPY build/filter.wasm ./plugin.wasm
