// One HTTP call to the companion cluster, as the fetcher and the gateway reporter make them: the
// configured cluster and authority, the media type wanted, the API token when one is set.
import { HeaderPair } from "@solo-io/proxy-runtime/assembly";
import { PluginConfig } from "./config";
import { httpCall, serializePairs, headerPair, encode } from "./host";

export class CompanionCall {
  private cluster: ArrayBuffer;

  constructor(private cfg: PluginConfig) {
    this.cluster = encode(cfg.companionCluster);
  }

  /** Starts the call; returns its token, or 0 when the host refused it. */
  start(
    method: string,
    path: string,
    accept: string,
    timeoutMs: u32,
    body: ArrayBuffer | null = null,
    contentType: string = "",
  ): u32 {
    const headers: HeaderPair[] = [
      headerPair(":method", method),
      headerPair(":path", path),
      headerPair(":authority", this.cfg.companionAuthority),
      headerPair("accept", accept),
    ];
    if (contentType.length > 0) headers.push(headerPair("content-type", contentType));
    if (this.cfg.apiToken.length > 0) headers.push(headerPair("authorization", "Bearer " + this.cfg.apiToken));
    return httpCall(this.cluster, serializePairs(headers), timeoutMs, body);
  }
}
