// A fake Kubernetes API server for tests: a real HTTP server on loopback that speaks the list/watch wire
// protocol the way kube-apiserver does, so the real @kubernetes/client-node (pointed at it by a kubeconfig)
// runs unmodified against it.
//
//   list   GET /api/v1/namespaces/NS/pods?labelSelector=..&fieldSelector=..
//          -> {"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"N"},"items":[...]}
//   watch  GET ...?watch=true&resourceVersion=N  -> 200, chunked, one JSON event per line:
//          {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}
//          no resourceVersion: ADDED for every current object first; N older than the compaction point:
//          an ERROR event with a 410 Status, then the stream ends (or HTTP 410, see `goneMode`).
//   Label selectors: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b). Field selectors: metadata.name,
//   metadata.namespace (= and !=). An object that starts or stops matching a watch's selector is sent to
//   it as ADDED / DELETED, as the apiserver's watch cache does.
//
// Faults for tests: dropWatches() (connections reset mid-stream), closeWatches() (clean end, like the
// server-side timeout), compact() (older resourceVersions become 410 Gone), failNext() (error answers),
// uninstall() (the CRD is not there: 404).
import http from "node:http";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo, Socket } from "node:net";

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

interface HistoryEvent {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: KubeObject;
  previous: KubeObject | null;
}

interface Resource {
  group: string; // "" for the core group
  version: string;
  plural: string;
  kind: string;
}

interface ActiveWatch {
  resource: Resource;
  namespace: string | null;
  labels: Matcher;
  fields: Matcher;
  bookmarks: boolean;
  res: http.ServerResponse;
  socket: Socket;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  watch: boolean;
}

type Matcher = (obj: KubeObject) => boolean;

export interface FakeKubeOptions {
  /** Bearer token the kubeconfig carries and the server requires (default: a random one). */
  token?: string;
  /** Namespace of the kubeconfig's context. */
  namespace?: string;
  /** How a watch from a compacted resourceVersion is refused: an ERROR event in a 200 stream (as the apiserver) or HTTP 410. */
  goneMode?: "event" | "status";
}

const DEFAULT_RESOURCES: Resource[] = [
  { group: "", version: "v1", plural: "pods", kind: "Pod" },
  { group: "inference.networking.k8s.io", version: "v1", plural: "inferencepools", kind: "InferencePool" },
  { group: "inference.networking.x-k8s.io", version: "v1alpha2", plural: "inferencepools", kind: "InferencePool" },
  { group: "llm-d.ai", version: "v1alpha2", plural: "inferenceobjectives", kind: "InferenceObjective" },
  {
    group: "inference.networking.x-k8s.io",
    version: "v1alpha2",
    plural: "inferenceobjectives",
    kind: "InferenceObjective",
  },
  { group: "llm-d.ai", version: "v1alpha2", plural: "inferencemodelrewrites", kind: "InferenceModelRewrite" },
  {
    group: "inference.networking.x-k8s.io",
    version: "v1alpha2",
    plural: "inferencemodelrewrites",
    kind: "InferenceModelRewrite",
  },
];

const apiVersionOf = (r: Resource): string => (r.group ? `${r.group}/${r.version}` : r.version);
const isOf = (o: KubeObject, r: Resource): boolean => o.apiVersion === apiVersionOf(r) && o.kind === r.kind;

function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}

/** Parses a label selector into a predicate on labels; throws on syntax it does not know. */
export function parseLabelSelector(text: string): (labels: Record<string, string>) => boolean {
  const terms: Array<(l: Record<string, string>) => boolean> = [];
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0,
    start = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    if (c === ")") depth--;
    if ((c === "," && depth === 0) || i === text.length) {
      if (text.slice(start, i).trim()) parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  for (const part of parts) {
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(part))) {
      const [, k, op, v] = m;
      terms.push(op === "!=" ? (l) => l[k] !== v : (l) => l[k] === v);
    } else if ((m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part))) {
      const [, k, op, list] = m;
      const values = list.split(",").map((s) => s.trim());
      terms.push(op === "in" ? (l) => k in l && values.includes(l[k]) : (l) => !(k in l) || !values.includes(l[k]));
    } else if ((m = /^(!?)([\w./-]+)$/.exec(part))) {
      const [, not, k] = m;
      terms.push(not ? (l) => !(k in l) : (l) => k in l);
    } else {
      throw new Error(`unsupported label selector term "${part}"`);
    }
  }
  return (labels) => terms.every((t) => t(labels));
}

function parseFieldSelector(text: string): Matcher {
  const terms: Matcher[] = [];
  for (const part of text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw new Error(`unsupported field selector term "${part}"`);
    const [, field, op, v] = m;
    const get = (o: KubeObject) => (field === "metadata.name" ? o.metadata.name : (o.metadata.namespace ?? ""));
    terms.push(op === "!=" ? (o) => get(o) !== v : (o) => get(o) === v);
  }
  return (o) => terms.every((t) => t(o));
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

export class FakeKube {
  readonly requests: RequestRecord[] = [];
  private readonly server: http.Server;
  private resources = [...DEFAULT_RESOURCES];
  private objects = new Map<string, KubeObject>();
  private history: HistoryEvent[] = [];
  private rv = 1000;
  private compactedRv = 0;
  private watches = new Set<ActiveWatch>();
  private failures: Array<{ match: RegExp; status: number; remaining: number }> = [];
  private readonly dir: string;
  readonly token: string;
  readonly kubeconfigPath: string;
  url = "";
  goneMode: "event" | "status";

  private constructor(private readonly opts: FakeKubeOptions) {
    this.token = opts.token ?? `fake-${Math.random().toString(36).slice(2)}`;
    this.goneMode = opts.goneMode ?? "event";
    this.dir = mkdtempSync(join(tmpdir(), "fake-kube-"));
    this.kubeconfigPath = join(this.dir, "kubeconfig.yaml");
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  static async start(opts: FakeKubeOptions = {}): Promise<FakeKube> {
    const fake = new FakeKube(opts);
    await new Promise<void>((resolve) => fake.server.listen(0, "127.0.0.1", resolve));
    fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    writeFileSync(fake.kubeconfigPath, fake.kubeconfigYaml());
    return fake;
  }

  /** A kubeconfig for this server (what `kubeconfigPath` holds); `user` replaces the token lines of its user. */
  kubeconfigYaml(user: string[] = [`    token: ${this.token}`]): string {
    return [
      "apiVersion: v1",
      "kind: Config",
      "current-context: fake",
      // client-node 1.4 refuses plain http:// servers unless TLS verification is explicitly off.
      "clusters:",
      "- name: fake",
      "  cluster:",
      `    server: ${this.url}`,
      "    insecure-skip-tls-verify: true",
      "users:",
      "- name: fake",
      "  user:",
      ...user,
      "contexts:",
      "- name: fake",
      "  context:",
      "    cluster: fake",
      "    user: fake",
      `    namespace: ${this.opts.namespace ?? "default"}`,
      "",
    ].join("\n");
  }

  /**
   * Writes a kubeconfig whose user gets its credentials from an exec plugin (client.authentication.k8s.io/v1beta1):
   * `command args...` must print an ExecCredential (see `execCredential`). Returns its path (removed by close()).
   */
  writeExecKubeconfig(command: string, args: string[] = []): string {
    const path = join(this.dir, `kubeconfig-exec-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      path,
      this.kubeconfigYaml([
        "    exec:",
        "      apiVersion: client.authentication.k8s.io/v1beta1",
        `      command: ${JSON.stringify(command)}`,
        `      args: ${JSON.stringify(args)}`,
        "      interactiveMode: Never",
      ]),
    );
    return path;
  }

  /** The ExecCredential JSON an exec plugin prints to authenticate to this server. */
  execCredential(): string {
    return JSON.stringify({
      apiVersion: "client.authentication.k8s.io/v1beta1",
      kind: "ExecCredential",
      status: { token: this.token },
    });
  }

  /** The current resourceVersion (etcd revision). */
  get resourceVersion(): number {
    return this.rv;
  }

  /** Open watch streams. */
  get watchCount(): number {
    return this.watches.size;
  }

  private resourceOf(obj: Pick<KubeObject, "apiVersion" | "kind">): Resource {
    const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
    const r = this.resources.find((x) => x.group === group && x.version === version && x.kind === obj.kind);
    if (!r) throw new Error(`fake-kube: ${obj.apiVersion} ${obj.kind} is not installed`);
    return r;
  }

  private key(r: Resource, namespace: string | undefined, name: string): string {
    return `${r.group}/${r.version}/${r.plural}/${namespace ?? ""}/${name}`;
  }

  /** Creates or replaces an object (ADDED or MODIFIED); returns the stored copy with its resourceVersion. */
  put(input: KubeObject): KubeObject {
    const r = this.resourceOf(input);
    const k = this.key(r, input.metadata.namespace, input.metadata.name);
    const previous = this.objects.get(k) ?? null;
    const obj = clone(input);
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    obj.metadata.uid = (previous?.metadata.uid as string | undefined) ?? `uid-${this.rv}`;
    // Kept across updates. A new object takes the one its input carries, if any (the apiserver would set
    // its own; tests of precedence by age set theirs), else now.
    obj.metadata.creationTimestamp =
      (previous?.metadata.creationTimestamp as string | undefined) ??
      (input.metadata.creationTimestamp as string | undefined) ??
      new Date().toISOString();
    this.objects.set(k, obj);
    this.record({ rv: this.rv, type: previous ? "MODIFIED" : "ADDED", object: obj, previous });
    return clone(obj);
  }

  /** Applies `change` to a copy of the stored object and puts the result. */
  update(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    change: (obj: KubeObject) => void,
  ): KubeObject {
    const current = this.get(apiVersion, kind, namespace, name);
    if (!current) throw new Error(`fake-kube: no ${kind} ${namespace}/${name}`);
    change(current);
    return this.put(current);
  }

  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.objects.get(this.key(this.resourceOf({ apiVersion, kind }), namespace, name));
    return o ? clone(o) : undefined;
  }

  /** Deletes an object (DELETED); false when there was none. */
  delete(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean {
    const k = this.key(this.resourceOf({ apiVersion, kind }), namespace, name);
    const previous = this.objects.get(k);
    if (!previous) return false;
    this.objects.delete(k);
    this.rv++;
    const obj = clone(previous);
    obj.metadata.resourceVersion = String(this.rv);
    this.record({ rv: this.rv, type: "DELETED", object: obj, previous });
    return true;
  }

  private record(event: HistoryEvent): void {
    this.history.push(event);
    for (const w of this.watches) this.deliver(w, event);
  }

  /** What a watch sees of an event, given its selectors (transitions become ADDED / DELETED). */
  private translate(
    w: Pick<ActiveWatch, "resource" | "namespace" | "labels" | "fields">,
    e: HistoryEvent,
  ): { type: WatchEventType; object: KubeObject } | null {
    if (!isOf(e.object, w.resource)) return null;
    if (w.namespace !== null && e.object.metadata.namespace !== w.namespace) return null;
    const matches = (o: KubeObject | null) => o !== null && w.labels(o) && w.fields(o);
    const now = e.type !== "DELETED" && matches(e.object);
    const before = e.type !== "ADDED" && matches(e.previous);
    if (e.type === "DELETED") return before ? { type: "DELETED", object: e.object } : null;
    if (now && before) return { type: "MODIFIED", object: e.object };
    if (now) return { type: "ADDED", object: e.object };
    if (before) return { type: "DELETED", object: e.object };
    return null;
  }

  private deliver(w: ActiveWatch, e: HistoryEvent): void {
    const out = this.translate(w, e);
    if (out) w.res.write(JSON.stringify(out) + "\n");
  }

  /**
   * Drops the event history: a watch resuming from a resourceVersion older than the current one gets 410
   * Gone (a watch from the current one is still fine, as with etcd compaction).
   */
  compact(): void {
    this.compactedRv = this.rv;
  }

  /** Ends every open watch with `end`; returns how many there were. */
  private endWatches(end: (w: ActiveWatch) => void): number {
    const open = [...this.watches];
    this.watches.clear();
    for (const w of open) end(w);
    return open.length;
  }

  /** Resets every open watch connection abruptly (no end of the chunked body). Returns how many. */
  dropWatches(): number {
    return this.endWatches((w) => w.socket.destroy());
  }

  /** Ends every open watch cleanly, as the apiserver does when a watch's timeout passes. */
  closeWatches(): number {
    return this.endWatches((w) => w.res.end());
  }

  /** Sends an ERROR event (410 Gone, "too old resource version") to every open watch and ends them. */
  expireWatches(): number {
    return this.endWatches((w) =>
      w.res.end(JSON.stringify({ type: "ERROR", object: status(410, "Expired", "too old resource version") }) + "\n"),
    );
  }

  /** Sends a BOOKMARK with the current resourceVersion to watches that asked for bookmarks. */
  bookmark(): void {
    for (const w of this.watches) {
      if (!w.bookmarks) continue;
      w.res.write(
        JSON.stringify({
          type: "BOOKMARK",
          object: {
            kind: w.resource.kind,
            apiVersion: apiVersionOf(w.resource),
            metadata: { resourceVersion: String(this.rv) },
          },
        }) + "\n",
      );
    }
  }

  /** The next `count` requests whose path (with query) matches answer `statusCode` with a Status body. */
  failNext(match: RegExp, statusCode: number, count = 1): void {
    this.failures.push({ match, status: statusCode, remaining: count });
  }

  /** Removes a resource type (its CRD is "not installed": 404). */
  uninstall(apiVersion: string, kind: string): void {
    const r = this.resourceOf({ apiVersion, kind });
    this.resources = this.resources.filter((x) => x !== r);
  }

  async close(): Promise<void> {
    for (const w of this.watches) w.socket.destroy();
    this.watches.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    rmSync(this.dir, { recursive: true, force: true });
  }

  private route(path: string): { resource: Resource; namespace: string | null; name: string | null } | null {
    const parts = path.split("/").filter(Boolean);
    let group = "",
      version: string,
      rest: string[];
    if (parts[0] === "api") {
      version = parts[1];
      rest = parts.slice(2);
    } else if (parts[0] === "apis") {
      group = parts[1];
      version = parts[2];
      rest = parts.slice(3);
    } else return null;
    let namespace: string | null = null;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const resource = this.resources.find((r) => r.group === group && r.version === version && r.plural === rest[0]);
    if (!resource || rest.length > 2) return null;
    return { resource, namespace, name: rest[1] ?? null };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", this.url);
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === "true" || query.watch === "1";
    this.requests.push({ method: req.method ?? "GET", path: url.pathname, query, watch });
    const json = (code: number, body: unknown): void =>
      void res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.headers.authorization !== `Bearer ${this.token}`)
      return json(401, status(401, "Unauthorized", "Unauthorized"));
    const failure = this.failures.find((f) => f.remaining > 0 && f.match.test(url.pathname + url.search));
    if (failure) {
      failure.remaining--;
      return json(failure.status, status(failure.status, "InternalError", `injected failure ${failure.status}`));
    }
    if (req.method !== "GET") return json(405, status(405, "MethodNotAllowed", "only GET"));
    const route = this.route(url.pathname);
    if (!route)
      return json(404, status(404, "NotFound", `the server could not find the requested resource (${url.pathname})`));
    let labels: Matcher, fields: Matcher;
    try {
      const l = query.labelSelector ? parseLabelSelector(query.labelSelector) : () => true;
      labels = (o) => l(o.metadata.labels ?? {});
      fields = query.fieldSelector ? parseFieldSelector(query.fieldSelector) : () => true;
    } catch (e) {
      return json(400, status(400, "BadRequest", (e as Error).message));
    }
    const scope = { resource: route.resource, namespace: route.namespace, labels, fields };
    const current = () =>
      [...this.objects.values()].filter(
        (o) =>
          isOf(o, route.resource) &&
          (route.namespace === null || o.metadata.namespace === route.namespace) &&
          labels(o) &&
          fields(o),
      );

    if (route.name !== null) {
      const obj = current().find((o) => o.metadata.name === route.name);
      return obj
        ? json(200, obj)
        : json(404, status(404, "NotFound", `${route.resource.plural} "${route.name}" not found`));
    }
    if (!watch) {
      const r = route.resource;
      return json(200, {
        kind: `${r.kind}List`,
        apiVersion: apiVersionOf(r),
        metadata: { resourceVersion: String(this.rv) },
        items: current(),
      });
    }

    const rvText = query.resourceVersion ?? "";
    const from = rvText === "" || rvText === "0" ? null : Number(rvText);
    if (from !== null && (!Number.isInteger(from) || from < this.compactedRv)) {
      const gone = status(410, "Expired", `too old resource version: ${rvText} (${this.compactedRv})`);
      if (this.goneMode === "status") return json(410, gone);
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(JSON.stringify({ type: "ERROR", object: gone }) + "\n");
    }
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    const w: ActiveWatch = { ...scope, bookmarks: query.allowWatchBookmarks === "true", res, socket: req.socket };
    if (from === null) {
      for (const o of current()) res.write(JSON.stringify({ type: "ADDED", object: o }) + "\n");
    } else {
      for (const e of this.history)
        if (e.rv > from) {
          const out = this.translate(w, e);
          if (out) res.write(JSON.stringify(out) + "\n");
        }
    }
    this.watches.add(w);
    const timeout = Number(query.timeoutSeconds);
    const timer =
      Number.isFinite(timeout) && timeout > 0
        ? setTimeout(() => {
            if (this.watches.delete(w)) res.end();
          }, timeout * 1000)
        : null;
    res.on("close", () => {
      this.watches.delete(w);
      if (timer) clearTimeout(timer);
    });
  }
}

// Builders for the objects tests put into the fake.

export interface PodSpec {
  name: string;
  namespace?: string;
  ip?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ready?: boolean;
  /** Marks the pod as terminating (deletionTimestamp set). */
  terminating?: boolean;
}

export function pod(p: PodSpec): KubeObject {
  const ready = p.ready ?? true;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: p.name,
      namespace: p.namespace ?? "default",
      labels: p.labels ?? {},
      ...(p.annotations ? { annotations: p.annotations } : {}),
      ...(p.terminating ? { deletionTimestamp: new Date().toISOString() } : {}),
    },
    spec: { containers: [{ name: "server", image: "model-server:latest" }] },
    status: {
      phase: "Running",
      ...(p.ip ? { podIP: p.ip, podIPs: [{ ip: p.ip }] } : {}),
      conditions: [
        { type: "PodScheduled", status: "True" },
        { type: "Initialized", status: "True" },
        { type: "ContainersReady", status: ready ? "True" : "False" },
        { type: "Ready", status: ready ? "True" : "False" },
      ],
    },
  };
}

/** An InferencePool of `inference.networking.k8s.io/v1`. */
export function inferencePoolV1(p: {
  name: string;
  namespace?: string;
  matchLabels: Record<string, string>;
  ports: number[];
}): KubeObject {
  return {
    apiVersion: "inference.networking.k8s.io/v1",
    kind: "InferencePool",
    metadata: { name: p.name, namespace: p.namespace ?? "default" },
    spec: {
      selector: { matchLabels: p.matchLabels },
      targetPorts: p.ports.map((number) => ({ number })),
      endpointPickerRef: { name: `${p.name}-epp`, port: { number: 9002 } },
    },
  };
}

/** An InferencePool of `inference.networking.x-k8s.io/v1alpha2`. */
export function inferencePoolV1alpha2(p: {
  name: string;
  namespace?: string;
  selector: Record<string, string>;
  port: number;
}): KubeObject {
  return {
    apiVersion: "inference.networking.x-k8s.io/v1alpha2",
    kind: "InferencePool",
    metadata: { name: p.name, namespace: p.namespace ?? "default" },
    spec: { selector: p.selector, targetPortNumber: p.port, extensionRef: { name: `${p.name}-epp` } },
  };
}
