import { parseConfig, FAIL_OPEN, FAIL_CLOSE } from "../../filter/config";
import { jsonSyntaxError } from "../../filter/json-check";

describe("plugin configuration", () => {
  it("uses the defaults for an empty configuration", () => {
    const r = parseConfig("  ");
    expect(r.config).not.toBeNull();
    const c = r.config!;
    expect(c.destinationHeader).toBe("x-gateway-destination-endpoint");
    expect(c.fallbackHeader).toBe("x-gateway-destination-endpoint-fallback");
    expect(c.servedHeader).toBe("");
    expect(c.failureMode).toBe(FAIL_CLOSE);
    expect(c.stalenessLimitMs).toBe(5000);
    expect(c.pollTimeoutMs).toBe(2500);
    expect(c.fetchSnapshots).toBe(true);
    expect(c.objectiveHeaders.length).toBe(2);
    expect(c.objectiveHeaders[0]).toBe("x-llm-d-inference-objective");
    expect(c.objectiveHeaders[1]).toBe("x-gateway-inference-objective");
    expect(c.consecutive5xx).toBe(5);
    expect(c.consecutiveGatewayFailure).toBe(3);
    expect(c.baseEjectionTimeMs).toBe(10000);
    expect(c.maxEjectionTimeMs).toBe(30000);
    expect(c.maxEjectionPercent).toBe(50);
  });

  it("reads outlier detection and the objective header, and names their errors", () => {
    const r = parseConfig(
      '{"objectiveHeader":"X-Trusted-Objective","outlierDetection":{"consecutive5xx":2,"consecutiveGatewayFailure":1,' +
        '"baseEjectionTimeMs":500,"maxEjectionTimeMs":4000,"maxEjectionPercent":0}}',
    );
    expect(r.error).toBe("");
    const c = r.config!;
    expect(c.objectiveHeaders.length).toBe(1);
    expect(c.objectiveHeaders[0]).toBe("x-trusted-objective");
    expect(c.consecutive5xx).toBe(2);
    expect(c.consecutiveGatewayFailure).toBe(1);
    expect(c.baseEjectionTimeMs).toBe(500);
    expect(c.maxEjectionTimeMs).toBe(4000);
    expect(c.maxEjectionPercent).toBe(0);
    expect(parseConfig('{"objectiveHeader":""}').config!.objectiveHeaders.length).toBe(0);
    expect(parseConfig('{"objectiveHeader":[]}').config!.objectiveHeaders.length).toBe(0);
    expect(parseConfig('{"objectiveHeader":["A-One","x-two"]}').config!.objectiveHeaders[0]).toBe("a-one");
    expect(parseConfig('{"objectiveHeader":[1]}').error).toBe("configuration.objectiveHeader[0]: must be a string");
    expect(parseConfig('{"objectiveHeader":"bad header"}').error).toBe(
      'configuration.objectiveHeader: "bad header" is not a valid header name',
    );
    expect(parseConfig('{"outlierDetection":{"interval":1}}').error).toBe(
      "configuration.outlierDetection.interval: unknown field",
    );
    expect(parseConfig('{"outlierDetection":{"maxEjectionPercent":101}}').error).toBe(
      "configuration.outlierDetection.maxEjectionPercent: 101 is outside 0..100",
    );
    expect(parseConfig('{"outlierDetection":{"baseEjectionTimeMs":5000,"maxEjectionTimeMs":1000}}').error).toBe(
      "configuration.outlierDetection.maxEjectionTimeMs: must not be below baseEjectionTimeMs",
    );
    expect(parseConfig('{"outlierDetection":true}').error).toBe("configuration.outlierDetection: must be an object");
  });

  it("reads every field it knows", () => {
    const r = parseConfig(
      '{"companionCluster":"epp","companionAuthority":"epp.ns","snapshotPath":"/snap","pollTimeoutMs":2500,' +
        '"apiToken":"t0k","destinationHeader":"X-Dest","fallbackHeader":"x-fb","servedHeader":"","failureMode":"FailOpen",' +
        '"stalenessLimitMs":900,"maxBodyBytes":1024,"fetchSnapshots":false,"objectivePriorities":{"batch":-1,"chat":10}}',
    );
    expect(r.error).toBe("");
    const c = r.config!;
    expect(c.companionCluster).toBe("epp");
    expect(c.companionAuthority).toBe("epp.ns");
    expect(c.snapshotPath).toBe("/snap");
    expect(c.pollTimeoutMs).toBe(2500);
    expect(c.apiToken).toBe("t0k");
    expect(c.destinationHeader).toBe("x-dest");
    expect(c.fallbackHeader).toBe("x-fb");
    expect(c.servedHeader).toBe("");
    expect(c.failureMode).toBe(FAIL_OPEN);
    expect(c.stalenessLimitMs).toBe(900);
    expect(c.maxBodyBytes).toBe(1024);
    expect(c.fetchSnapshots).toBe(false);
    expect(c.priorityOf("batch")).toBe(-1);
    expect(c.priorityOf("chat")).toBe(10);
    expect(c.priorityOf("unknown")).toBe(0);
  });

  it("names the field of every error", () => {
    expect(parseConfig('{"pollTimeoutMs":"soon"}').error).toBe("configuration.pollTimeoutMs: must be an integer");
    expect(parseConfig('{"pollTimeoutMs":5}').error).toBe("configuration.pollTimeoutMs: 5 is outside 100..600000");
    expect(parseConfig('{"companionClustr":"x"}').error).toBe("configuration.companionClustr: unknown field");
    expect(parseConfig("[1,2]").error).toBe("configuration: must be a JSON object");
    expect(parseConfig('{"failureMode":"FailSoft"}').error).toBe(
      'configuration.failureMode: "FailSoft" is not FailClose or FailOpen',
    );
    expect(parseConfig('{"destinationHeader":"bad header"}').error).toBe(
      'configuration.destinationHeader: "bad header" is not a valid header name',
    );
    expect(parseConfig('{"snapshotPath":"v1/snapshot"}').error).toBe(
      'configuration.snapshotPath: "v1/snapshot" must be a path starting with / and without a query',
    );
    expect(parseConfig('{"fetchSnapshots":1}').error).toBe("configuration.fetchSnapshots: must be true or false");
    expect(parseConfig('{"objectivePriorities":{"batch":"low"}}').error).toBe(
      "configuration.objectivePriorities.batch: must be an integer",
    );
    expect(parseConfig('{"fallbackHeader":"x-gateway-destination-endpoint"}').error).toBe(
      "configuration.fallbackHeader: must differ from destinationHeader",
    );
    expect(parseConfig('{"maxBodyBytes":-1}').error).toBe("configuration.maxBodyBytes: -1 is outside 0..16777216");
  });

  it("turns malformed JSON into an error message instead of a trap", () => {
    expect(parseConfig('{"pollTimeoutMs": }').error).toBe("configuration: not valid JSON: expected a value at byte 18");
    expect(parseConfig('{"a": tru}').error).toBe("configuration: not valid JSON: invalid literal at byte 9");
    expect(parseConfig('{"a": 1').error).toBe("configuration: not valid JSON: unexpected end of JSON");
    expect(parseConfig('{"a": "x\\q"}').error).toBe("configuration: not valid JSON: bad escape at byte 9");
  });
});

describe("JSON syntax check", () => {
  it("accepts what RFC 8259 allows", () => {
    expect(jsonSyntaxError('{"a":[1,-0.5e+3,true,false,null,"\\u00e9\\n"],"b":{}}')).toBe("");
    expect(jsonSyntaxError(" 12 ")).toBe("");
  });
  it("refuses what it does not", () => {
    expect(jsonSyntaxError("{a:1}")).toBe("expected a key at byte 1");
    expect(jsonSyntaxError("[1,]")).toBe("expected a value at byte 3");
    expect(jsonSyntaxError("01")).toBe("unexpected text after the value at byte 1");
    expect(jsonSyntaxError("1.")).toBe("unexpected end of JSON");
    expect(jsonSyntaxError('{"a":1}}')).toBe("unexpected text after the value at byte 7");
    let deep = "";
    for (let i = 0; i < 100; i++) deep += "[";
    expect(jsonSyntaxError(deep)).toBe("nesting too deep at byte 65");
  });
});
