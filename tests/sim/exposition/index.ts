// The /metrics renderer for an engine kind.
import type { Engine } from "../engine";
import type { Exposition, ExpositionOptions } from "./exposition";
import { SglangExposition } from "./sglang";
import { TritonExposition } from "./triton";
import { TrtllmServeExposition } from "./trtllm-serve";
import { VllmExposition } from "./vllm";

export type { Exposition } from "./exposition";

export function createExposition(engine: Engine, opts: ExpositionOptions): Exposition {
  switch (engine.kind) {
    case "vllm-v1":
      return new VllmExposition(engine, opts, "v1");
    case "vllm-v0":
      return new VllmExposition(engine, opts, "v0");
    case "sglang":
      return new SglangExposition(engine, opts);
    case "triton-trtllm":
      return new TritonExposition(engine, opts);
    case "trtllm-serve":
      return new TrtllmServeExposition(engine, opts);
  }
}
