// The host functions that Envoy's proxy-wasm host (proxy-wasm-cpp-host) offers a module for ABI 0.2.x,
// with their wasm32 signatures. A module importing anything else is refused by Envoy at load time.
// Signature letters: i = i32 (a Word), I = i64; the part after ":" is the result ("" for none).

const PROXY_FUNCTIONS: Record<string, string> = {
  log: "iii:i",
  get_status: "iii:i",
  set_property: "iiii:i",
  get_property: "iiii:i",
  send_local_response: "iiiiiiii:i",
  get_shared_data: "iiiii:i",
  set_shared_data: "iiiii:i",
  register_shared_queue: "iii:i",
  resolve_shared_queue: "iiiii:i",
  dequeue_shared_queue: "iii:i",
  enqueue_shared_queue: "iii:i",
  get_header_map_value: "iiiii:i",
  add_header_map_value: "iiiii:i",
  replace_header_map_value: "iiiii:i",
  remove_header_map_value: "iii:i",
  get_header_map_pairs: "iii:i",
  set_header_map_pairs: "iii:i",
  get_header_map_size: "ii:i",
  get_buffer_status: "iii:i",
  get_buffer_bytes: "iiiii:i",
  set_buffer_bytes: "iiiii:i",
  http_call: "iiiiiiiiii:i",
  grpc_call: "iiiiiiiiiiii:i",
  grpc_stream: "iiiiiiiii:i",
  grpc_close: "i:i",
  grpc_cancel: "i:i",
  grpc_send: "iiii:i",
  set_tick_period_milliseconds: "i:i",
  get_current_time_nanoseconds: "i:i",
  define_metric: "iiii:i",
  increment_metric: "iI:i",
  record_metric: "iI:i",
  get_metric: "ii:i",
  set_effective_context: "i:i",
  done: ":i",
  call_foreign_function: "iiiiii:i",
  // ABI 0.2.0 and 0.2.1
  continue_stream: "i:i",
  close_stream: "i:i",
};

/** Only registered for ABI 0.2.1. */
const PROXY_FUNCTIONS_0_2_1: Record<string, string> = { get_log_level: "i:i" };

const WASI_FUNCTIONS: Record<string, string> = {
  fd_write: "iiii:i",
  fd_read: "iiii:i",
  fd_seek: "iIii:i",
  fd_close: "i:i",
  fd_fdstat_get: "ii:i",
  fd_fdstat_set_flags: "ii:i",
  fd_fdstat_set_rights: "iII:i",
  environ_get: "ii:i",
  environ_sizes_get: "ii:i",
  args_get: "ii:i",
  args_sizes_get: "ii:i",
  clock_time_get: "iIi:i",
  clock_res_get: "ii:i",
  fd_advise: "iIIi:i",
  fd_allocate: "iII:i",
  fd_datasync: "i:i",
  fd_filestat_set_size: "iI:i",
  fd_filestat_set_times: "iIIi:i",
  fd_pread: "iiiIi:i",
  fd_pwrite: "iiiIi:i",
  fd_readdir: "iiiIi:i",
  fd_renumber: "ii:i",
  fd_sync: "i:i",
  fd_tell: "ii:i",
  path_create_directory: "iii:i",
  path_filestat_set_times: "iiiiIIi:i",
  path_link: "iiiiii:i",
  path_readlink: "iiiiii:i",
  path_remove_directory: "iii:i",
  path_rename: "iiiiii:i",
  path_symlink: "iiii:i",
  path_unlink_file: "iii:i",
  sock_accept: "iii:i",
  sock_recv: "iiiiii:i",
  sock_send: "iiiii:i",
  sock_shutdown: "ii:i",
  random_get: "ii:i",
  sched_yield: ":i",
  poll_oneoff: "iiii:i",
  proc_exit: "i:",
  path_open: "iiiiiIIii:i",
  fd_prestat_get: "ii:i",
  fd_prestat_dir_name: "iii:i",
  path_filestat_get: "iiiii:i",
  fd_filestat_get: "ii:i",
};

/** Emscripten helpers cpp-host registers in `env` as well. */
const ENV_EXTRAS: Record<string, string> = { pthread_equal: "ii:i", emscripten_notify_memory_growth: "i:" };

export type AbiVersion = "0.2.0" | "0.2.1";

/** The WASI functions cpp-host registers (under both wasi_unstable and wasi_snapshot_preview1). */
export function wasiFunctionNames(): string[] {
  return Object.keys(WASI_FUNCTIONS);
}

/** Every import Envoy resolves for a module of this ABI version, as "module.name" -> signature. */
export function hostImports(abi: AbiVersion): Map<string, string> {
  const out = new Map<string, string>();
  for (const [n, sig] of Object.entries(PROXY_FUNCTIONS)) out.set(`env.proxy_${n}`, sig);
  if (abi === "0.2.1") for (const [n, sig] of Object.entries(PROXY_FUNCTIONS_0_2_1)) out.set(`env.proxy_${n}`, sig);
  for (const [n, sig] of Object.entries(ENV_EXTRAS)) out.set(`env.${n}`, sig);
  for (const [n, sig] of Object.entries(WASI_FUNCTIONS)) {
    out.set(`wasi_unstable.${n}`, sig);
    out.set(`wasi_snapshot_preview1.${n}`, sig);
  }
  return out;
}

/**
 * The ABI version a module declares, taken as cpp-host's BytecodeUtil::getAbiVersion takes it: the first
 * function export, in export-section order, named proxy_abi_version_0_1_0, _0_2_0 or _0_2_1 (a module
 * exporting two of them gets the first one's ABI). null when there is none.
 */
export function abiVersionExport(module: WebAssembly.Module): "0.1.0" | AbiVersion | null {
  for (const e of WebAssembly.Module.exports(module)) {
    if (e.kind !== "function") continue;
    if (e.name === "proxy_abi_version_0_1_0") return "0.1.0";
    if (e.name === "proxy_abi_version_0_2_0") return "0.2.0";
    if (e.name === "proxy_abi_version_0_2_1") return "0.2.1";
  }
  return null;
}

/** The ABI 0.2.x version a module declares (see abiVersionExport), or null (none, or 0.1.0). */
export function declaredAbi(module: WebAssembly.Module): AbiVersion | null {
  const v = abiVersionExport(module);
  return v === "0.1.0" ? null : v;
}

/** Imports of `module` that Envoy would refuse; empty when the module links. */
export function unresolvedImports(module: WebAssembly.Module): string[] {
  const abi = declaredAbi(module) ?? "0.2.1";
  const allowed = hostImports(abi);
  return WebAssembly.Module.imports(module)
    .filter((i) => i.kind !== "function" || !allowed.has(`${i.module}.${i.name}`))
    .map((i) => `${i.module}.${i.name}`);
}
