// Entry point of the filter module: the runtime's exports (proxy_on_*), the allocator the host copies data
// in through, and our root context.
export * from "@solo-io/proxy-runtime/assembly/exports";
export { free } from "@solo-io/proxy-runtime/assembly/malloc";
export { malloc } from "./host";
import { registerRootContext } from "@solo-io/proxy-runtime/assembly";
import { PickerRoot, ROOT_ID } from "./picker";

registerRootContext((context_id: u32) => new PickerRoot(context_id), ROOT_ID);
