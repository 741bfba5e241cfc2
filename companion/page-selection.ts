// Which part of its metrics page to ask an endpoint for. prometheus_client (vLLM, SGLang) renders only the
// series named by `?name[]=<sample name>` when asked, so the server formats a few lines instead of ~1,500.
// Not every server honours it (prometheus_client's ASGI app before 0.23 ignores it; its multiprocess
// collector before 0.25 answers nothing; Triton's C++ endpoint ignores query parameters), so each endpoint
// is checked against its own full page:
//   probe      - the first scrape reads the full page and notes which wanted families it has;
//   restricted - later scrapes ask for the wanted families only; an answer with other series (the
//                restriction was ignored), without a family the full page had, or that fails as a page
//                (error status, content type, parse) sends the endpoint to
//   full       - the full page, for as long as the endpoint stays in the pool.
import type { EngineMapping } from "./engines";
import { familiesOf } from "./engines";
import type { ParsedPage } from "./prom-parser";

export type PageMode = "probe" | "restricted" | "full";

interface Selection {
  mapping: EngineMapping;
  path: string;
  mode: PageMode;
  /** Wanted families the endpoint's full page had (and any its restricted pages added since). */
  present: Set<string>;
}

/** What to do with a restricted answer. */
export type RestrictedVerdict =
  | { ok: true }
  | { ok: false; why: "ignored"; others: number }
  | { ok: false; why: "missing"; families: string[] }
  | { ok: false; why: "failed"; error: string };

/** `path` with `name[]` for each family (percent-encoded, as a browser or Go's url.Values would send it). */
export function restrictedPath(path: string, families: readonly string[]): string {
  const query = families.map((f) => `name%5B%5D=${encodeURIComponent(f)}`).join("&");
  return path + (path.includes("?") ? "&" : "?") + query;
}

export class PageSelections {
  private readonly byAddress = new Map<string, Selection>();
  private readonly paths = new WeakMap<EngineMapping, Map<string, string>>();

  constructor(private readonly enabled: boolean) {}

  private selection(address: string, mapping: EngineMapping, path: string): Selection {
    let s = this.byAddress.get(address);
    // A new engine mapping (relabel, config reload) or path asks for other families: start over.
    if (!s || s.mapping !== mapping || s.path !== path) {
      s = { mapping, path, mode: this.enabled ? "probe" : "full", present: new Set() };
      this.byAddress.set(address, s);
    }
    return s;
  }

  mode(address: string, mapping: EngineMapping, path: string): PageMode {
    return this.selection(address, mapping, path).mode;
  }

  /** The path to GET in restricted mode (built once per mapping and base path). */
  restrictedPathFor(mapping: EngineMapping, path: string): string {
    let byPath = this.paths.get(mapping);
    if (!byPath) this.paths.set(mapping, (byPath = new Map()));
    let p = byPath.get(path);
    if (p === undefined) byPath.set(path, (p = restrictedPath(path, familiesOf(mapping))));
    return p;
  }

  /** A full page read and understood while probing: restricted scrapes from now on. */
  probed(address: string, mapping: EngineMapping, path: string, page: ParsedPage): void {
    const s = this.selection(address, mapping, path);
    if (s.mode !== "probe") return;
    for (const family of page.samples.keys()) s.present.add(family);
    s.mode = "restricted";
  }

  /** Checks a restricted answer; a failed check moves the endpoint to full pages. */
  checkRestricted(address: string, mapping: EngineMapping, path: string, page: ParsedPage): RestrictedVerdict {
    const s = this.selection(address, mapping, path);
    if (page.otherSamples > 0) {
      s.mode = "full";
      return { ok: false, why: "ignored", others: page.otherSamples };
    }
    const missing = [...s.present].filter((f) => !page.samples.has(f));
    if (missing.length > 0) {
      s.mode = "full";
      return { ok: false, why: "missing", families: missing };
    }
    for (const family of page.samples.keys()) s.present.add(family);
    return { ok: true };
  }

  /**
   * A restricted request the server answered with an error status, a wrong content type or an unreadable
   * page (a server or proxy that refuses query parameters): full pages from now on.
   */
  restrictedFailed(address: string, mapping: EngineMapping, path: string, error: string): RestrictedVerdict {
    this.selection(address, mapping, path).mode = "full";
    return { ok: false, why: "failed", error };
  }

  /** Forgets endpoints that left the pool. */
  retain(addresses: ReadonlySet<string>): void {
    for (const address of this.byAddress.keys()) if (!addresses.has(address)) this.byAddress.delete(address);
  }

  /** How many endpoints are in each mode (for the companion's own metrics). */
  counts(): Record<PageMode, number> {
    const counts: Record<PageMode, number> = { probe: 0, restricted: 0, full: 0 };
    for (const s of this.byAddress.values()) counts[s.mode]++;
    return counts;
  }
}
