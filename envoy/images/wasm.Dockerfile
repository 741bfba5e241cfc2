# Istio's OCI wasm layout (compat variant): one layer holding plugin.wasm.
#   make build/filter.wasm
#   docker build -f envoy/images/wasm.Dockerfile -t ghcr.io/example/endpoint-picker-filter:0.1.0 . && docker push ...
# or without Docker:
#   oras push ghcr.io/example/endpoint-picker-filter:0.1.0 \
#     --artifact-type application/vnd.module.wasm.content.layer.v1+wasm \
#     build/filter.wasm:application/vnd.module.wasm.content.layer.v1+wasm
FROM scratch
COPY build/filter.wasm ./plugin.wasm
