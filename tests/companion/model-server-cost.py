#!/usr/bin/python3
"""What one scrape costs the model server: CPU per /metrics request in Python's prometheus_client (what vLLM and
SGLang serve their pages with), for the full page and for the page restricted with ?name[]=... to the families
the companion reads. Run with Debian's python3-prometheus-client (/usr/bin/python3); make bench installs it.

The registry is shaped like vLLM V1's with 2 data-parallel engines and LoRA enabled: the families, label sets
and histogram bounds of tests/companion/fixtures/pages.ts vllmPage({version: "v1"}), plus the process, platform
and GC collectors and prometheus_fastapi_instrumentator's HTTP metrics that share vLLM's registry.

Served through prometheus_client's own WSGI app (make_wsgi_app), which honours name[] in every version. vLLM
mounts make_asgi_app instead, whose query parsing ignored name[] before prometheus_client 0.23.0 (it looked
for a str key among bytes keys); the WSGI app shares _bake_output with it, so the rendering cost is the same.

  model-server-cost.py [--family NAME ...]   measure; prints one JSON object
  model-server-cost.py --check [--family NAME ...] [--query NAME,NAME ...]
                                             no timing; prints the full page and the restricted pages (one for
                                             the families, one per --query) as JSON

--family names SAMPLE names, as prometheus_client's restricted registry matches them: a gauge's own name, a
counter's NAME_total, a histogram's NAME_bucket / NAME_count / NAME_sum. Default: the vllm engine's families.
"""

import argparse
import json
import math
import platform
import random
import sys
import time
from urllib.parse import urlencode

try:
    import prometheus_client
    from prometheus_client import (
        CollectorRegistry,
        Counter,
        GCCollector,
        Gauge,
        Histogram,
        PlatformCollector,
        ProcessCollector,
        Summary,
        generate_latest,
        make_wsgi_app,
    )
    from prometheus_client.exposition import choose_encoder
except ImportError as e:  # the caller reports this as the reason the figure is skipped
    print(json.dumps({"missing": f"prometheus_client is not importable by {sys.executable}: {e}"}))
    sys.exit(3)

# companion/engines.ts familiesOf() for the built-in vllm engine (the V1 KV gauge with its V0 fallback).
DEFAULT_FAMILIES = [
    "vllm:num_requests_waiting",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:lora_requests_info",
    "vllm:cache_config_info",
]
# The Accept header the companion sends (companion/scraper.ts ACCEPT). prometheus_client picks OpenMetrics
# whenever it is listed, whatever its q, so this is the format the companion is served.
COMPANION_ACCEPT = "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
ENGINES = 2
HANDLERS = ["/v1/completions", "/v1/chat/completions", "/metrics", "/health", "/v1/models"]


def one_two_five(limit):
    """vLLM's build_1_2_5_buckets(max_model_len)."""
    out, e = [], 1
    while True:
        for m in (1, 2, 5):
            if m * e > limit:
                return out
            out.append(m * e)
        e *= 10


TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
        80.0, 160.0, 640.0, 2560.0]
TPOT = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
REQUEST_LATENCY = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                   240.0, 480.0, 960.0, 1920.0, 7680.0]
ITERATION_TOKENS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
LENGTHS = one_two_five(8192)
HIGHR = [0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60]

CACHE_CONFIG = {
    "block_size": "16",
    "cache_dtype": "auto",
    "calculate_kv_scales": "False",
    "cpu_offload_gb": "0",
    "enable_prefix_caching": "True",
    "gpu_memory_utilization": "0.9",
    "is_attention_free": "False",
    "num_cpu_blocks": "2048",
    "num_gpu_blocks": "9000",
    "num_gpu_blocks_override": "None",
    "prefix_caching_hash_algo": "builtin",
    "sliding_window": "None",
    "swap_space": "4",
    "swap_space_bytes": "4294967296",
}


def observe_spread(child, bounds, n, rand):
    """n observations log-uniform from the first bound to 1.5x the last, so every bucket holds some."""
    lo, hi = math.log(bounds[0]), math.log(bounds[-1] * 1.5)
    for _ in range(n):
        child.observe(math.exp(rand.uniform(lo, hi)))


def vllm_registry(observations):
    reg = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    rand = random.Random(7)
    per_engine = ["model_name", "engine"]
    engines = [(MODEL, str(i)) for i in range(ENGINES)]

    cache = Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                  [*CACHE_CONFIG, "engine"], registry=reg)
    for _, engine in engines:
        cache.labels(*CACHE_CONFIG.values(), engine).set(1)
    running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.", per_engine,
                    registry=reg)
    waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", per_engine,
                    registry=reg)
    lora = Gauge("vllm:lora_requests_info", "Running stats on lora requests.",
                 ["max_lora", "waiting_lora_adapters", "running_lora_adapters"], registry=reg)
    lora.labels("4", "", "a").set(1718309100)
    lora.labels("4", "c", "a,b").set(1718309200)
    gpu_kv = Gauge("vllm:gpu_cache_usage_perc",
                   "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
                   per_engine, registry=reg)
    counters = [
        Counter("vllm:gpu_prefix_cache_queries", "GPU prefix cache queries, in terms of number of queried tokens. "
                "DEPRECATED: Use vllm:prefix_cache_queries instead.", per_engine, registry=reg),
        Counter("vllm:gpu_prefix_cache_hits", "GPU prefix cache hits, in terms of number of cached tokens. "
                "DEPRECATED: Use vllm:prefix_cache_hits instead.", per_engine, registry=reg),
    ]
    kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", per_engine, registry=reg)
    counters += [
        Counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                per_engine, registry=reg),
        Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", per_engine,
                registry=reg),
        Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", per_engine,
                registry=reg),
        Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", per_engine, registry=reg),
        Counter("vllm:generation_tokens", "Number of generation tokens processed.", per_engine, registry=reg),
    ]
    success = Counter("vllm:request_success", "Count of successfully processed requests.",
                      [*per_engine, "finished_reason"], registry=reg)
    for i, labels in enumerate(engines):
        running.labels(*labels).set(7 - 2 * i)
        waiting.labels(*labels).set(3 - 2 * i)
        gpu_kv.labels(*labels).set((0.4, 0.6)[i % 2])
        kv.labels(*labels).set((0.4, 0.6)[i % 2])
        for c in counters:
            c.labels(*labels).inc(rand.randrange(1, 10**8))
        for reason in ("stop", "length", "abort"):
            success.labels(*labels, reason).inc(rand.randrange(1, 10**5))

    histograms = [
        ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", LENGTHS),
        ("vllm:request_generation_tokens", "Number of generation tokens processed.", LENGTHS),
        ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", ITERATION_TOKENS),
        ("vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.",
         LENGTHS),
        ("vllm:request_params_n", "Histogram of the n request parameter.", [1, 2, 5, 10, 20]),
        ("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", LENGTHS),
        ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT),
        ("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", TPOT),
        ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", REQUEST_LATENCY),
        ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
         REQUEST_LATENCY),
        ("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.",
         REQUEST_LATENCY),
        ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.",
         REQUEST_LATENCY),
        ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.",
         REQUEST_LATENCY),
    ]
    for name, help_text, bounds in histograms:
        h = Histogram(name, help_text, per_engine, buckets=bounds, registry=reg)
        for labels in engines:
            observe_spread(h.labels(*labels), bounds, observations, rand)

    # prometheus_fastapi_instrumentator's defaults, in the same registry as vLLM's metrics.
    http_requests = Counter("http_requests", "Total number of requests by method, status and handler.",
                            ["handler", "method", "status"], registry=reg)
    req_size = Summary("http_request_size_bytes", "Content length of incoming requests by handler. Only value of "
                       "header is respected. Otherwise ignored. No percentile calculated. ", ["handler"],
                       registry=reg)
    resp_size = Summary("http_response_size_bytes", "Content length of outgoing responses by handler. Only value "
                        "of header is respected. Otherwise ignored. No percentile calculated. ", ["handler"],
                        registry=reg)
    highr = Histogram("http_request_duration_highr_seconds", "Latency with many buckets but no API specific labels. "
                      "Made for more accurate percentile calculations. ", buckets=HIGHR, registry=reg)
    duration = Histogram("http_request_duration_seconds", "Latency with only few buckets by handler. Made to be "
                         "only used if aggregation by handler is important. ", ["handler", "method"],
                         buckets=[0.1, 0.5, 1], registry=reg)
    observe_spread(highr, HIGHR, observations, rand)
    for handler in HANDLERS:
        method = "GET" if handler in ("/metrics", "/health") else "POST"
        for status in ("2xx", "4xx"):
            http_requests.labels(handler, method, status).inc(rand.randrange(1, 50000))
        for summary in (req_size, resp_size):
            for _ in range(20):
                summary.labels(handler).observe(rand.randrange(100, 100000))
        observe_spread(duration.labels(handler, "POST"), [0.1, 0.5, 1], observations // 10, rand)
    return reg


class Scrape:
    """One scrape through make_wsgi_app, as a WSGI server would drive it."""

    def __init__(self, registry, families):
        self.app = make_wsgi_app(registry)
        self.environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/metrics",
            "QUERY_STRING": urlencode([("name[]", f) for f in families]) if families else "",
            "HTTP_ACCEPT": COMPANION_ACCEPT,
        }
        self.status = None
        self.headers = None

    def _start_response(self, status, headers):
        self.status, self.headers = status, headers

    def __call__(self):
        return b"".join(self.app(self.environ, self._start_response))


def cpu_us_per_call(fn, batch_cpu_s=0.08, batches=5):
    """Median CPU microseconds per call (time.process_time) over `batches` batches of about batch_cpu_s each."""
    t = time.process_time()
    while time.process_time() - t < 0.05:  # warm-up
        fn()
    n = 1
    while True:  # size a batch
        t = time.process_time()
        for _ in range(n):
            fn()
        if time.process_time() - t >= batch_cpu_s / 4:
            break
        n *= 2
    n *= 4
    per_call = []
    for _ in range(batches):
        t = time.process_time()
        for _ in range(n):
            fn()
        per_call.append((time.process_time() - t) / n * 1e6)
    per_call.sort()
    return per_call[len(per_call) // 2], n * batches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="print the pages instead of timing them")
    ap.add_argument("--family", action="append", help="a sample name to restrict to (repeatable)")
    ap.add_argument("--query", action="append", help="--check: one more restricted page, for NAME,NAME,...")
    ap.add_argument("--observations", type=int, default=5000, help="observations per histogram series")
    args = ap.parse_args()
    families = args.family or DEFAULT_FAMILIES
    registry = vllm_registry(args.observations if not args.check else 50)
    full, restricted = Scrape(registry, []), Scrape(registry, families)

    if args.check:
        queries = [families] + [q.split(",") for q in args.query or []]
        pages = []
        for q in queries:
            scrape = Scrape(registry, q)
            page = scrape().decode()
            pages.append({"families": q, "queryString": scrape.environ["QUERY_STRING"], "status": scrape.status,
                          "contentType": dict(scrape.headers)["Content-Type"], "page": page})
        print(json.dumps({"accept": COMPANION_ACCEPT, "fullPage": full().decode(), "restricted": pages}))
        return

    full_page, restricted_page = full(), restricted()
    encoder, content_type = choose_encoder(COMPANION_ACCEPT)
    result = {
        "prometheusClientVersion": prometheus_version(),
        "python": platform.python_version(),
        "served": "prometheus_client make_wsgi_app, the companion's Accept header, no gzip",
        "contentType": content_type,
        "families": families,
        "fullPageBytes": len(full_page),
        "restrictedPageBytes": len(restricted_page),
        "fullPageLines": full_page.count(b"\n"),
        "restrictedPageLines": restricted_page.count(b"\n"),
    }
    full_us, full_n = cpu_us_per_call(full)
    restricted_us, restricted_n = cpu_us_per_call(restricted)
    result.update(fullUs=round(full_us, 1), restrictedUs=round(restricted_us, 1),
                  ratio=round(full_us / restricted_us, 1))
    # The bare exposition call, without the WSGI app's query parsing and header handling.
    bare_full_us, bare_full_n = cpu_us_per_call(lambda: encoder(registry))
    bare_restricted_us, bare_restricted_n = cpu_us_per_call(
        lambda: encoder(registry.restricted_registry(families)))
    result["exposition"] = {"fullUs": round(bare_full_us, 1), "restrictedUs": round(bare_restricted_us, 1),
                            "ratio": round(bare_full_us / bare_restricted_us, 1)}
    # The same with the text format 0.0.4 (what a client sending no Accept header, or only text/plain, gets).
    text_full = generate_latest(registry)
    text_restricted = generate_latest(registry.restricted_registry(families))
    text_full_us, text_full_n = cpu_us_per_call(lambda: generate_latest(registry))
    text_restricted_us, text_restricted_n = cpu_us_per_call(
        lambda: generate_latest(registry.restricted_registry(families)))
    result["expositionText"] = {"fullPageBytes": len(text_full), "restrictedPageBytes": len(text_restricted),
                                "fullUs": round(text_full_us, 1), "restrictedUs": round(text_restricted_us, 1),
                                "ratio": round(text_full_us / text_restricted_us, 1)}
    result["iterations"] = {"full": full_n, "restricted": restricted_n, "expositionFull": bare_full_n,
                            "expositionRestricted": bare_restricted_n, "expositionTextFull": text_full_n,
                            "expositionTextRestricted": text_restricted_n}
    result["cpu"] = "time.process_time(), median of 5 batches after warm-up"
    print(json.dumps(result))


def prometheus_version():
    try:
        from importlib.metadata import version

        return version("prometheus_client")
    except Exception:
        return getattr(prometheus_client, "__version__", "unknown")


if __name__ == "__main__":
    main()
