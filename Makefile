# Everything a newcomer needs: `make demo` and `make test` install what is missing (npm ci) themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := build
NODE ?= node
BIN := node_modules/.bin
ESBUILD_NODE := $(BIN)/esbuild --bundle --platform=node --format=esm --target=node20 --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"

FILTER_SRC := $(shell find filter -name '*.ts') asconfig.json
TS_SRC := $(shell find companion envoy tests -name '*.ts' -not -path 'tests/filter/*' 2>/dev/null)
NODE_TESTS := $(shell find tests -name '*.test.ts' | sort)
BENCHES := $(shell find tests -name '*.bench.ts' | sort)

.PHONY: build test test-filter test-node demo bench clean lint format deps

deps: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: deps build/filter.wasm build/filter.debug.wasm build/companion.mjs build/emulator.mjs build/sim.mjs build/tests/.stamp build/emulator-test-module.wasm build/passthrough.wasm

# The emulator's own AssemblyScript test module (drives every host function in tests/emulator).
build/emulator-test-module.wasm: tests/emulator/module/index.ts tests/emulator/asconfig.json node_modules/.package-lock.json
	$(BIN)/asc --config tests/emulator/asconfig.json --target release

# A do-nothing filter on the same runtime: the baseline of the filter benchmark.
build/passthrough.wasm: tests/filter/passthrough/index.ts tests/filter/passthrough/asconfig.json node_modules/.package-lock.json
	$(BIN)/asc --config tests/filter/passthrough/asconfig.json --target release

build/filter.wasm: $(FILTER_SRC) node_modules/.package-lock.json
	$(BIN)/asc --config asconfig.json --target release

build/filter.debug.wasm: $(FILTER_SRC) node_modules/.package-lock.json
	$(BIN)/asc --config asconfig.json --target debug

build/companion.mjs: $(TS_SRC) node_modules/.package-lock.json
	$(ESBUILD_NODE) companion/main.ts --outfile=$@

build/emulator.mjs: $(TS_SRC) node_modules/.package-lock.json
	$(ESBUILD_NODE) envoy/emulator/cli.ts --outfile=$@

# Simulated model-server pods (docs/SIMULATOR.md): node build/sim.mjs --pods N --engines vllm-v1,sglang ...
build/sim.mjs: $(TS_SRC) node_modules/.package-lock.json
	$(ESBUILD_NODE) tests/sim/cli.ts --outfile=$@

# Node tests and benchmarks are TypeScript, bundled per file (npm packages stay external).
build/tests/.stamp: $(TS_SRC) node_modules/.package-lock.json
	$(BIN)/esbuild $(NODE_TESTS) $(BENCHES) --bundle --platform=node --format=esm --target=node20 --packages=external \
	  --outbase=tests --outdir=build/tests --out-extension:.js=.mjs --log-level=warning
	@touch $@

test: build lint test-filter test-node

test-filter: deps
	$(BIN)/asp --config tests/filter/as-pect.config.js --as-config tests/filter/as-pect.asconfig.json --summary

test-node: build
	$(NODE) --test --test-concurrency=2 $$(find build/tests -name '*.test.mjs' | sort)

lint: deps
	$(BIN)/prettier --check --log-level=warn .
	$(BIN)/tsc -p tsconfig.json

# Formats the tree with prettier (prettier.config.mjs, .prettierignore). Twice: prettier does not always
# reach its fixed point in one pass (a long return type in tests/e2e/stack.ts needs two).
format: deps
	$(BIN)/prettier --write --log-level=warn .
	$(BIN)/prettier --write --log-level=warn .

bench: build bench-python
	@for b in $$(find build/tests -name '*.bench.mjs' | sort); do echo "== $$b"; $(NODE) $$b || exit 1; done

# The model-server cost figure (tests/companion/model-server-cost.py) runs Debian's /usr/bin/python3 with
# python3-prometheus-client: installed here when missing and we are root; otherwise the figure is skipped.
.PHONY: bench-python
bench-python:
	@if /usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  dpkg -s python3-prometheus-client >/dev/null 2>&1 || (apt-get install -y python3-prometheus-client || (apt-get update && apt-get install -y python3-prometheus-client)) \
	    || echo "bench: could not install python3-prometheus-client; modelServerCost will be skipped"; \
	elif [ ! -x /usr/bin/python3 ]; then \
	  echo "bench: no /usr/bin/python3 (and not root with apt-get to install python3-prometheus-client); modelServerCost will be skipped"; \
	else \
	  echo "bench: /usr/bin/python3 lacks prometheus_client and we are not root with apt-get (apt-get install python3-prometheus-client); modelServerCost will be skipped"; \
	fi

build/demo.mjs: $(TS_SRC) node_modules/.package-lock.json
	$(ESBUILD_NODE) tests/demo/demo.ts --outfile=$@

demo: build build/demo.mjs
	$(NODE) build/demo.mjs

clean:
	rm -rf build
