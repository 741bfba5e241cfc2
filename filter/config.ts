// Plugin configuration: the JSON in Envoy's `configuration` (or Istio's `pluginConfig`).
import { JSON } from "assemblyscript-json/assembly";

export class PluginConfig {
  companionCluster: string = "endpoint-picker-companion";
  companionAuthority: string = "endpoint-picker-companion";
  snapshotPath: string = "/v1/snapshot";
  pollTimeoutMs: u32 = 5000;
  destinationHeader: string = "x-gateway-destination-endpoint";
}

export class ConfigResult {
  config: PluginConfig | null = null;
  error: string = "";
}

function fail(message: string): ConfigResult {
  const r = new ConfigResult();
  r.error = message;
  return r;
}

/** Parses the plugin configuration; an empty configuration means all defaults. */
export function parseConfig(text: string): ConfigResult {
  const cfg = new PluginConfig();
  const ok = new ConfigResult();
  ok.config = cfg;
  if (text.trim().length == 0) return ok;
  let value: JSON.Value | null = null;
  // assemblyscript-json aborts on malformed input; check the outer shape first so a typo is an error, not a trap.
  const trimmed = text.trim();
  if (!trimmed.startsWith("{") || !trimmed.endsWith("}")) return fail("configuration: must be a JSON object");
  value = JSON.parse(trimmed);
  if (value == null || !value.isObj) return fail("configuration: must be a JSON object");
  const obj = <JSON.Obj>value;
  const keys = obj.keys;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const v = obj.get(key);
    if (v == null) continue;
    if (key == "companionCluster" || key == "companionAuthority" || key == "snapshotPath" || key == "destinationHeader") {
      if (!v.isString) return fail("configuration." + key + ": must be a string");
      const s = (<JSON.Str>v).valueOf();
      if (s.length == 0) return fail("configuration." + key + ": must not be empty");
      if (key == "companionCluster") cfg.companionCluster = s;
      else if (key == "companionAuthority") cfg.companionAuthority = s;
      else if (key == "snapshotPath") cfg.snapshotPath = s;
      else cfg.destinationHeader = s.toLowerCase();
    } else if (key == "pollTimeoutMs") {
      if (!v.isInteger) return fail("configuration.pollTimeoutMs: must be an integer");
      const n = (<JSON.Integer>v).valueOf();
      if (n < 100 || n > 600000) return fail("configuration.pollTimeoutMs: " + n.toString() + " is outside 100..600000");
      cfg.pollTimeoutMs = <u32>n;
    } else {
      return fail("configuration." + key + ": unknown field");
    }
  }
  return ok;
}
