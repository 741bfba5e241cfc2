// llm-d-router's P/D EndpointPickerConfig (its deploy/config/pd-epp-config.yaml: prefix 2 + queue 1 behind each
// stage's role filter, disagg-profile-handler with prefix-based-pd-decider), with the decider's threshold
// given; `extraPlugins` (YAML list items) go first in `plugins:`.
const stage = (name: string, filter: string): string =>
  `- name: ${name}
  plugins:
  - pluginRef: ${filter}
  - pluginRef: max-score-picker
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: queue-scorer
    weight: 1
`;

/** The P/D plugin list items: disagg-profile-handler and its prefix-based-pd-decider. */
export function pdPlugins(nonCachedTokens: number, promptTokens?: number): string {
  return `- type: disagg-profile-handler
  parameters:
    deciders:
      prefill: prefix-based-pd-decider
- type: prefix-based-pd-decider
  parameters:
    nonCachedTokens: ${nonCachedTokens}
${promptTokens === undefined ? "" : `    promptTokens: ${promptTokens}\n`}`;
}

export function llmdPdConfig(nonCachedTokens: number, extraPlugins = ""): string {
  return `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
${extraPlugins}- type: prefix-cache-scorer
- type: queue-scorer
- type: prefill-filter
- type: decode-filter
- type: max-score-picker
${pdPlugins(nonCachedTokens)}schedulingProfiles:
${stage("prefill", "prefill-filter")}${stage("decode", "decode-filter")}`;
}
