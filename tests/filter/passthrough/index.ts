// A filter that does nothing, on the same runtime as the picker: the baseline of the filter benchmark
// (what any proxy-wasm filter costs per request under this host).
export * from "@solo-io/proxy-runtime/assembly/proxy";
import { RootContext, Context, registerRootContext } from "@solo-io/proxy-runtime/assembly";

class PassThroughRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Context(context_id, this);
  }
}

registerRootContext((context_id: u32) => new PassThroughRoot(context_id), "endpoint-picker");
