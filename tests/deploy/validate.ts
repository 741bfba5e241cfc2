// Validates Kubernetes/Istio/InferencePool/KEDA manifests against their schemas (kubernetes-models, ajv), and,
// when ../shared/upstream-schemas is beside the checkout, against the upstream definitions too
// (upstream-schemas.ts: Istio's and GIE's CRDs with their CEL rules, Kubernetes' OpenAPI, Envoy's protos
// for EnvoyFilter patch values).
import { Deployment } from "kubernetes-models/apps/v1";
import { ConfigMap, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1";
import { DestinationRule, EnvoyFilter, ServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1alpha3";
import {
  DestinationRule as DestinationRuleB,
  Gateway,
  ServiceEntry as ServiceEntryB,
  VirtualService,
} from "@kubernetes-models/istio/networking.istio.io/v1beta1";
import { Ajv } from "ajv";
import { readFileSync } from "node:fs";
import { parseAllDocuments, stringify } from "yaml";
import { loadPickerConfig } from "../../companion/picker-config";
import { upstreamAvailable, validateUpstream } from "./upstream-schemas";

type Obj = Record<string, unknown>;
export const WASM_FAIL_STRATEGIES = ["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"];
const models: Record<string, new (o: Obj) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment as never,
  "v1/ConfigMap": ConfigMap as never,
  "v1/Secret": Secret as never,
  "v1/Service": Service as never,
  "v1/ServiceAccount": ServiceAccount as never,
  "rbac.authorization.k8s.io/v1/Role": Role as never,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding as never,
  "extensions.istio.io/v1alpha1/WasmPlugin": WasmPlugin as never,
  "networking.istio.io/v1alpha3/EnvoyFilter": EnvoyFilter as never,
  "networking.istio.io/v1alpha3/DestinationRule": DestinationRule as never,
  "networking.istio.io/v1alpha3/ServiceEntry": ServiceEntry as never,
  "networking.istio.io/v1beta1/DestinationRule": DestinationRuleB as never,
  "networking.istio.io/v1beta1/ServiceEntry": ServiceEntryB as never,
  "networking.istio.io/v1beta1/VirtualService": VirtualService as never,
  "networking.istio.io/v1beta1/Gateway": Gateway as never,
};

const ajv = new Ajv({ allErrors: true, strict: false });
const inferencePool = ajv.compile(
  JSON.parse(readFileSync("tests/deploy/fixtures/inferencepool-v1.schema.json", "utf8")),
);
// KEDA's CRD is not among ../shared/upstream-schemas: a hand-written closed subset of its spec.
const scaledObject = ajv.compile(
  JSON.parse(readFileSync("tests/deploy/fixtures/keda-scaledobject-v1alpha1.schema.json", "utf8")),
);

export function parseManifests(text: string, source: string): Obj[] {
  return parseAllDocuments(text)
    .map((d, i) => {
      if (d.errors.length) throw new Error(`${source} doc ${i}: ${d.errors[0].message}`);
      return d.toJS() as Obj;
    })
    .filter((o) => o !== null && o !== undefined);
}

/** Throws with the kind, name and schema error if `obj` is not a valid manifest of a known kind. */
export function validateManifest(obj: Obj): void {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const name = (obj.metadata as Obj | undefined)?.name;
  // The companion's own loader is the schema of an EndpointPickerConfig (it refuses unknown fields and types).
  if (obj.kind === "EndpointPickerConfig") {
    loadPickerConfig(stringify(obj));
    return;
  }
  if (key === "keda.sh/v1alpha1/ScaledObject") {
    if (!scaledObject(obj)) throw new Error(`${key} ${name}: ${ajv.errorsText(scaledObject.errors)}`);
    return;
  }
  if (upstreamAvailable()) validateUpstream(obj);
  if (key === "inference.networking.k8s.io/v1/InferencePool") {
    if (!inferencePool(obj)) throw new Error(`${key} ${name}: ${ajv.errorsText(inferencePool.errors)}`);
    return;
  }
  // The 2.3.0 WasmPlugin model predates failStrategy (Istio 1.20+); check it here so it cannot be misspelt.
  // Values: istio/api extensions/v1alpha1/wasm.proto FailStrategy.
  if (obj.kind === "WasmPlugin") {
    const fs = (obj.spec as Obj | undefined)?.failStrategy;
    if (fs !== undefined && !WASM_FAIL_STRATEGIES.includes(fs as string)) {
      throw new Error(`WasmPlugin ${name}: failStrategy ${String(fs)} is not ${WASM_FAIL_STRATEGIES.join("|")}`);
    }
  }
  const Model = models[key];
  if (!Model) throw new Error(`no schema for ${key} (${name})`);
  new Model(obj).validate();
}
