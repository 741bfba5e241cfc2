// Root and HTTP contexts of the endpoint picker.
import {
  RootContext, Context, BaseContext, Headers, HeaderPair, log, LogLevelValues, WasmResultValues,
  FilterHeadersStatusValues, stream_context, get_shared_data, set_shared_data,
  set_tick_period_milliseconds, get_buffer_bytes, BufferTypeValues,
} from "@solo-io/proxy-runtime/assembly";
import { PluginConfig, parseConfig } from "./config";
import { decodeSnapshot, peekVersion, Snapshot, FLAG_ERROR, lastError } from "./snapshot";

export const ROOT_ID = "endpoint-picker";
export const SNAPSHOT_KEY = "endpoint-picker.snapshot";

let current: Snapshot | null = null;

function loadSnapshot(): Snapshot | null {
  const got = get_shared_data(SNAPSHOT_KEY);
  if (got.result != WasmResultValues.Ok) return current;
  const version = peekVersion(got.value);
  if (current != null && current!.version == version) return current;
  const decoded = decodeSnapshot(got.value);
  if (decoded == null) {
    log(LogLevelValues.warn, "endpoint-picker: ignoring snapshot: " + lastError);
    return current;
  }
  current = decoded;
  return current;
}

export class PickerRoot extends RootContext {
  config: PluginConfig = new PluginConfig();

  onConfigure(configuration_size: u32): bool {
    super.onConfigure(configuration_size);
    const parsed = parseConfig(this.getConfiguration());
    if (parsed.config == null) {
      log(LogLevelValues.error, "endpoint-picker: " + parsed.error);
      return false;
    }
    this.config = parsed.config!;
    set_tick_period_milliseconds(200);
    return true;
  }

  onTick(): void {
    const headers: Headers = [
      new HeaderPair(String.UTF8.encode(":method"), String.UTF8.encode("GET")),
      new HeaderPair(String.UTF8.encode(":path"), String.UTF8.encode(this.config.snapshotPath)),
      new HeaderPair(String.UTF8.encode(":authority"), String.UTF8.encode(this.config.companionAuthority)),
    ];
    this.httpCall(this.config.companionCluster, headers, new ArrayBuffer(0), [], this.config.pollTimeoutMs, this,
      (_origin: BaseContext, _headers: u32, body_size: usize, _trailers: u32): void => {
        if (body_size == 0) return;
        const body = get_buffer_bytes(BufferTypeValues.HttpCallResponseBody, 0, <u32>body_size);
        if (decodeSnapshot(body) != null) set_shared_data(SNAPSHOT_KEY, body);
      });
  }

  createContext(context_id: u32): Context {
    return new PickerStream(context_id, this);
  }
}

class PickerStream extends Context {
  constructor(context_id: u32, public root: PickerRoot) {
    super(context_id, root);
  }

  onRequestHeaders(_headers: u32, _end_of_stream: bool): FilterHeadersStatusValues {
    const header = this.root.config.destinationHeader;
    // A client must never choose the upstream.
    stream_context.headers.request.remove(header);
    const snap = loadSnapshot();
    if (snap == null) return FilterHeadersStatusValues.Continue;
    for (let i = 0; i < snap.endpoints.length; i++) {
      const e = unchecked(snap.endpoints[i]);
      if (!e.has(FLAG_ERROR)) {
        stream_context.headers.request.replace(header, e.address);
        break;
      }
    }
    return FilterHeadersStatusValues.Continue;
  }
}
