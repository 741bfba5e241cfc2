import { parseConfig } from "../../filter/config";

describe("plugin configuration", () => {
  it("uses the defaults for an empty configuration", () => {
    const r = parseConfig("");
    expect(r.config).not.toBeNull();
    expect(r.config!.destinationHeader).toBe("x-gateway-destination-endpoint");
  });

  it("reads the fields it knows", () => {
    const r = parseConfig('{"companionCluster":"epp","pollTimeoutMs":2500,"destinationHeader":"X-Dest"}');
    expect(r.error).toBe("");
    expect(r.config!.companionCluster).toBe("epp");
    expect(r.config!.pollTimeoutMs).toBe(2500);
    expect(r.config!.destinationHeader).toBe("x-dest");
  });

  it("names the field of every error", () => {
    expect(parseConfig('{"pollTimeoutMs":"soon"}').error).toBe("configuration.pollTimeoutMs: must be an integer");
    expect(parseConfig('{"pollTimeoutMs":5}').error).toBe("configuration.pollTimeoutMs: 5 is outside 100..600000");
    expect(parseConfig('{"companionClustr":"x"}').error).toBe("configuration.companionClustr: unknown field");
    expect(parseConfig('[1,2]').error).toBe("configuration: must be a JSON object");
  });
});
