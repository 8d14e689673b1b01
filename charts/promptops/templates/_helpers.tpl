{{/* Names and labels. */}}
{{- define "promptops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "promptops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "promptops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "promptops.labels" -}}
helm.sh/chart: {{ include "promptops.chart" . }}
app.kubernetes.io/name: {{ include "promptops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: promptops
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include "promptops.selectorLabels" (list . "gateway") */}}
{{- define "promptops.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "promptops.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "promptops.componentLabels" -}}
{{ include "promptops.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "promptops.gateway.fullname" -}}{{ include "promptops.fullname" . }}-gateway{{- end -}}
{{- define "promptops.triton.fullname" -}}{{ include "promptops.fullname" . }}-triton{{- end -}}
{{- define "promptops.modelRepository.name" -}}{{ include "promptops.fullname" . }}-model-repository{{- end -}}

{{/* Secrets: the chart's own, or the ones named in the values. */}}
{{- define "promptops.gateway.authSecret" -}}
{{- .Values.gateway.auth.existingSecret | default (printf "%s-auth" (include "promptops.gateway.fullname" .)) -}}
{{- end -}}
{{- define "promptops.gateway.gitSecret" -}}
{{- .Values.gateway.store.auth.existingSecret | default (printf "%s-git" (include "promptops.gateway.fullname" .)) -}}
{{- end -}}
{{- define "promptops.hfSecret" -}}
{{- .Values.huggingface.existingSecret | default (printf "%s-hf-token" (include "promptops.fullname" .)) -}}
{{- end -}}
{{- define "promptops.hfSecretKey" -}}
{{- if .Values.huggingface.existingSecret }}{{ .Values.huggingface.existingSecretKey }}{{ else }}HF_TOKEN{{ end -}}
{{- end -}}
{{- define "promptops.hasHfToken" -}}
{{- if or .Values.huggingface.token .Values.huggingface.existingSecret }}true{{ end -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is set (the tag is then documentation only). */}}
{{- define "promptops.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}
{{- define "promptops.gateway.image" -}}
{{- include "promptops.image" (dict "repository" .Values.gateway.image.repository "tag" (.Values.gateway.image.tag | default .Chart.AppVersion) "digest" .Values.gateway.image.digest) -}}
{{- end -}}
{{- define "promptops.triton.image" -}}
{{- include "promptops.image" .Values.triton.image -}}
{{- end -}}

{{/* Triton's gRPC address for the gateway: the Triton Service's gRPC port. */}}
{{- define "promptops.triton.grpcUrl" -}}
{{- printf "%s:%v" (include "promptops.triton.fullname" .) .Values.triton.ports.grpc -}}
{{- end -}}

{{/* A ConfigMap key for a model file: <model>__<path with "/" as "__"> (keys may not contain "/"). */}}
{{- define "promptops.modelFileKey" -}}
{{- printf "%s__%s" (index . 0) (index . 1 | replace "/" "__") -}}
{{- end -}}

{{/* The model repository volume (the same in Triton and the gateway). */}}
{{- define "promptops.modelRepository.volume" -}}
- name: model-repository
  configMap:
    name: {{ include "promptops.modelRepository.name" . }}
    items:
    {{- range $model, $files := .Values.triton.modelRepository.models }}
    {{- range $path, $_ := $files }}
      - key: {{ include "promptops.modelFileKey" (list $model $path) }}
        path: {{ printf "%s/%s" $model $path }}
    {{- end }}
    {{- end }}
{{- end -}}

{{/*
PROMPTOPS_ALLOWED_HOSTS: port-forward names, the pod's IP (kubelet probes and Prometheus connect by IP), every
name of the gateway's Services and the Ingress hosts. $(POD_IP) is expanded by the kubelet.
*/}}
{{- define "promptops.gateway.allowedHosts" -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts := list "localhost" "127.0.0.1" "$(POD_IP)" -}}
{{- range $svc := list (include "promptops.gateway.fullname" .) (printf "%s-peers" (include "promptops.gateway.fullname" .)) -}}
{{- $hosts = concat $hosts (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns $.Values.clusterDomain)) -}}
{{- end -}}
{{- if .Values.ingress.enabled -}}
{{- range .Values.ingress.hosts }}{{ $hosts = append $hosts .host }}{{ end -}}
{{- end -}}
{{- $hosts = concat $hosts .Values.gateway.extraAllowedHosts -}}
{{- join "," (uniq $hosts) -}}
{{- end -}}

{{/* PROMPTOPS_TRUSTED_ORIGINS: https://<host> for each Ingress TLS host (browsers there send that Origin). */}}
{{- define "promptops.gateway.trustedOrigins" -}}
{{- $origins := list -}}
{{- if .Values.ingress.enabled -}}
{{- range .Values.ingress.tls }}{{ range .hosts }}{{ $origins = append $origins (printf "https://%s" .) }}{{ end }}{{ end -}}
{{- end -}}
{{- $origins = concat $origins .Values.gateway.extraTrustedOrigins -}}
{{- join "," (uniq $origins) -}}
{{- end -}}

{{/* The KEDA/recording-rule ratio: queue time per unit of compute time; 0 when Triton computed nothing. */}}
{{- define "promptops.triton.queueComputeRatio" -}}
{{- $sel := "" -}}
{{- if .Values.keda.metricSelector }}{{ $sel = printf "{%s}" .Values.keda.metricSelector }}{{ end -}}
{{- printf "(sum(rate(nv_inference_queue_duration_us%s[1m])) / (sum(rate(nv_inference_compute_infer_duration_us%s[1m])) > 0)) or vector(0)" $sel $sel -}}
{{- end -}}

{{/* Checks that fail the render with a clear message. */}}
{{- define "promptops.validate" -}}
{{- if not .Values.gateway.store.url -}}
{{- fail "gateway.store.url is required: the git URL (or path) of the prompt repository the gateways serve, e.g. --set gateway.store.url=git@github.com:team/prompts.git" -}}
{{- end -}}
{{- if not (has .Values.gateway.defaultModel .Values.triton.loadModels) -}}
{{- fail (printf "gateway.defaultModel %q must be in triton.loadModels %v (the gateway is ready only when its default model is loaded)" .Values.gateway.defaultModel .Values.triton.loadModels) -}}
{{- end -}}
{{- range .Values.triton.loadModels -}}
{{- if not (hasKey $.Values.triton.modelRepository.models .) -}}
{{- fail (printf "triton.loadModels names %q, which is not in triton.modelRepository.models" .) -}}
{{- end -}}
{{- end -}}
{{- $auth := .Values.gateway.store.auth -}}
{{- if not (has $auth.type (list "none" "ssh" "https")) -}}
{{- fail (printf "gateway.store.auth.type must be none, ssh or https, not %q" $auth.type) -}}
{{- end -}}
{{- if and (eq $auth.type "ssh") (not $auth.existingSecret) (or (not $auth.sshPrivateKey) (not $auth.knownHosts)) -}}
{{- fail "gateway.store.auth.type=ssh needs sshPrivateKey and knownHosts (or existingSecret with ssh-privatekey and known_hosts)" -}}
{{- end -}}
{{- if and (eq $auth.type "https") (not $auth.existingSecret) (not $auth.httpsToken) -}}
{{- fail "gateway.store.auth.type=https needs httpsToken (or existingSecret with token)" -}}
{{- end -}}
{{- if and .Values.keda.enabled (lt (int .Values.keda.minReplicas) 1) -}}
{{- fail "keda.minReplicas must be at least 1: a GPU replica takes minutes to start" -}}
{{- end -}}
{{- end -}}
