{{/*
The API token of this release (inferenceExtension.apiToken): the same value wherever it is rendered (the
Secret, the filter configuration). Generated: read back from the Secret RELEASE-epp-token when it exists
(upgrades keep the token), else 48 random letters and digits. existingSecret: read from that Secret, which
must exist (lookup runs at install time; `helm template` and --dry-run see no cluster and fail here).
The value is kept in .Values, which every template of the chart shares, because each call of randAlphaNum
gives a new value.
*/}}
{{- define "endpoint-picker.apiToken" -}}
{{- $t := .Values.inferenceExtension.apiToken -}}
{{- if not (hasKey $t "_resolved") -}}
{{- $value := "" -}}
{{- if $t.existingSecret -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace $t.existingSecret -}}
{{- if $s -}}
{{- if $s.data -}}
{{- $value = index $s.data $t.existingSecretKey | b64dec -}}
{{- end -}}
{{- end -}}
{{- if not $value -}}
{{- fail (printf "inferenceExtension.apiToken.existingSecret: no key %s in a Secret %s in namespace %s (create it before helm install; helm template cannot read Secrets)" $t.existingSecretKey $t.existingSecret .Release.Namespace) -}}
{{- end -}}
{{- else -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace (printf "%s-epp-token" .Release.Name) -}}
{{- if $s -}}
{{- if $s.data -}}
{{- $value = index $s.data "token" | b64dec -}}
{{- end -}}
{{- end -}}
{{- if not $value -}}
{{- $value = randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- $_ := set $t "_resolved" $value -}}
{{- end -}}
{{- index $t "_resolved" -}}
{{- end -}}

{{/*
The Secret holding the token, and its key, for the companion's $COMPANION_API_TOKEN.
*/}}
{{- define "endpoint-picker.apiTokenSecret" -}}
{{- .Values.inferenceExtension.apiToken.existingSecret | default (printf "%s-epp-token" .Release.Name) -}}
{{- end -}}
{{- define "endpoint-picker.apiTokenKey" -}}
{{- if .Values.inferenceExtension.apiToken.existingSecret -}}
{{- .Values.inferenceExtension.apiToken.existingSecretKey -}}
{{- else -}}
token
{{- end -}}
{{- end -}}

{{/*
The filter configuration (docs/FILTER.md) as JSON, for the ECDS EnvoyFilter and the WasmPlugin alike.
pollTimeoutMs and stalenessLimitMs stay at the filter's defaults (2500 and 5000 ms), which fit the
companion's --long-poll-timeout default (1000 ms): docs/DEPLOY.md, "Companion failover".
*/}}
{{- define "endpoint-picker.filterConfig" -}}
{{- $c := dict "companionCluster" (printf "outbound|%v||%s-epp.%s.svc.cluster.local" .Values.inferenceExtension.port .Release.Name .Release.Namespace) "companionAuthority" (printf "%s-epp.%s.svc.cluster.local" .Release.Name .Release.Namespace) "failureMode" .Values.wasmPlugin.failureMode -}}
{{- if .Values.inferenceExtension.apiToken.enabled -}}
{{- $_ := set $c "apiToken" (include "endpoint-picker.apiToken" .) -}}
{{- end -}}
{{- if .Values.wasmPlugin.servedHeader -}}
{{- $_ := set $c "servedHeader" .Values.wasmPlugin.servedHeader -}}
{{- end -}}
{{- toJson $c -}}
{{- end -}}

{{/*
Host name of the Service over the pool's pods that the VirtualService routes to (istio.fallback.service,
else the chart's RELEASE-fallback).
*/}}
{{- define "endpoint-picker.poolService" -}}
{{- if .Values.istio.fallback.service -}}
{{- .Values.istio.fallback.service -}}
{{- else -}}
{{- printf "%s-fallback.%s.svc.cluster.local" .Release.Name .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/*
Whether the override_host EnvoyFilter is rendered: istio.overrideHost, or the deprecated istio.originalDst
when it is set (true or false).
*/}}
{{- define "endpoint-picker.overrideHost" -}}
{{- $on := .Values.istio.overrideHost -}}
{{- if kindIs "bool" .Values.istio.originalDst -}}
{{- $on = .Values.istio.originalDst -}}
{{- end -}}
{{- if $on }}true{{ end -}}
{{- end -}}
