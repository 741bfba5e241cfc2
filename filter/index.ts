// Entry point of the filter module: the runtime's exports (proxy_on_*, malloc) and our root context.
export * from "@solo-io/proxy-runtime/assembly/proxy";
import { registerRootContext } from "@solo-io/proxy-runtime/assembly";
import { PickerRoot, ROOT_ID } from "./picker";

registerRootContext((context_id: u32) => new PickerRoot(context_id), ROOT_ID);
