// Live reload of --config-file. Kubernetes mounts a ConfigMap as symlinks into a `..data` directory that it
// swaps atomically, so a watch on the file itself goes deaf after the first update: we watch the file's
// directory, re-read the file by path (following the new symlink) on any event, and poll as a backstop.
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { Logger } from "./log";

export class ConfigFileWatcher {
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private reading = false;
  private again = false;

  constructor(
    private readonly path: string,
    private lastText: string,
    /** Called with the new text whenever the content differs from the last text seen. */
    private readonly onText: (text: string) => void,
    private readonly log: Logger,
    private readonly opts: { debounceMs?: number; pollMs?: number } = {},
  ) {}

  start(): void {
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, () => this.schedule());
      this.watcher.on("error", (e) => {
        this.log.warn("config directory watch failed; relying on polling", { file: this.path, error: e.message });
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (e) {
      this.log.warn("cannot watch the config directory; relying on polling", {
        file: this.path,
        error: (e as Error).message,
      });
    }
    this.poll = setInterval(() => void this.check(), this.opts.pollMs ?? 5000);
    this.poll.unref();
    this.log.debug("watching config file", { file: this.path, name: basename(this.path) });
  }

  private schedule(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.check();
    }, this.opts.debounceMs ?? 100);
    this.debounce.unref();
  }

  /** Reads the file; one read at a time, and one more if events arrived meanwhile. */
  async check(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      const text = await readFile(this.path, "utf8");
      if (text !== this.lastText) {
        this.lastText = text;
        this.onText(text);
      }
    } catch (e) {
      // Mid-swap the path can briefly dangle; the next event or poll reads the new file.
      this.log.warn("cannot read the config file; keeping the current config", {
        file: this.path,
        error: (e as Error).message,
      });
    } finally {
      this.reading = false;
      if (this.again) {
        this.again = false;
        void this.check();
      }
    }
  }

  stop(): void {
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
  }
}
