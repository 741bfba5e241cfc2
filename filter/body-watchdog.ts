// The filter must never hang a request. It holds a request's headers until the body shows its model and
// prompt, which Envoy delivers to a filter holding the headers only with allow_on_headers_stop_iteration.
// The watchdog decides held requests whose body has not come within BODY_WATCHDOG_MS by load alone; when no
// held request of this VM ever saw its body, the host is running without that setting, and the VM decides
// in the headers callback from then on (with a probe now and then, since slow uploads look the same).
import { setEffectiveContext, logWarn } from "./host";
import { PickerStream } from "./picker";

/**
 * A request held in the headers callback whose body has not reached the filter after this long is decided
 * without its body.
 */
const BODY_WATCHDOG_MS: u64 = 500;
/** How many such streams it takes (one slow client is not a misconfigured Envoy). */
const BODILESS_HOLDS_TO_SWITCH: i32 = 3;
/** While deciding in the headers callback, one request this often is still held as a probe. */
const HEADERS_ONLY_PROBE_MS: u64 = 10000;

export class BodyWatchdog {
  /** Streams held in their headers callback, waiting for their first body callback. */
  private held: PickerStream[] = [];
  /** A held stream has received a body callback: the host delivers bodies to paused filters. */
  private bodiesArrive: bool = false;
  /** Learnt: the host never delivers the body while headers are held, so decide in the headers callback. */
  headersOnly: bool = false;
  /** Held streams decided here while no held stream of this VM ever got its body. */
  private bodilessHolds: i32 = 0;
  /** Proxy-clock ms of the last probe held while deciding in the headers callback. */
  private lastProbeMs: u64 = 0;

  get heldCount(): i32 {
    return this.held.length;
  }

  hold(s: PickerStream, nowMs: u64): void {
    s.heldAtMs = nowMs;
    s.heldIndex = this.held.length;
    this.held.push(s);
  }

  /** Stops watching a stream (its body came, it was decided, or it ended): swap-remove, O(1). */
  release(s: PickerStream): void {
    const i = s.heldIndex;
    if (i < 0) return;
    const last = this.held.pop();
    if (last !== s) {
      unchecked((this.held[i] = last));
      last.heldIndex = i;
    }
    s.heldIndex = -1;
  }

  /** A held stream got its body: the host delivers bodies to paused filters (again, after a switch). */
  bodyArrived(): void {
    this.bodiesArrive = true;
    this.bodilessHolds = 0;
    if (this.headersOnly) {
      this.headersOnly = false;
      logWarn("request bodies reach the filter while it holds the headers again; picking by model and prompt.");
    }
  }

  /** In headers-only mode: whether this request should be held anyway, as the probe of its period. */
  probeDue(nowMs: u64): bool {
    if (nowMs < this.lastProbeMs || nowMs - this.lastProbeMs < HEADERS_ONLY_PROBE_MS) return false;
    this.lastProbeMs = nowMs;
    return true;
  }

  /** On the tick: decides held streams whose body never came. */
  watch(now: u64): void {
    for (let k = this.held.length - 1; k >= 0; k--) {
      if (k >= this.held.length) continue; // deciding may release several
      const s = unchecked(this.held[k]);
      if (now <= s.heldAtMs || now - s.heldAtMs < BODY_WATCHDOG_MS) continue;
      if (!this.bodiesArrive && ++this.bodilessHolds >= BODILESS_HOLDS_TO_SWITCH && !this.headersOnly) {
        this.headersOnly = true;
        this.lastProbeMs = now;
        logWarn(
          "request bodies do not reach the filter while it holds the headers; " +
            "set allow_on_headers_stop_iteration: true (Envoy >= 1.36) to pick by model and prompt. Picking by load only.",
        );
      }
      this.release(s);
      setEffectiveContext(s.context_id);
      s.decideWithoutBody();
    }
  }
}
