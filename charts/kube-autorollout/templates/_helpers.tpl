{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "kube-autorollout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name. */}}
{{- define "kube-autorollout.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of cluster-scoped objects: releases in different namespaces must not collide. */}}
{{- define "kube-autorollout.clusterName" -}}
{{- printf "%s-%s" (include "kube-autorollout.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "kube-autorollout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-autorollout.labels" -}}
helm.sh/chart: {{ include "kube-autorollout.chart" . }}
{{ include "kube-autorollout.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kube-autorollout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-autorollout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kube-autorollout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-autorollout.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespaces in scope (JSON list), empty when every namespace is. */}}
{{- define "kube-autorollout.namespaces" -}}
{{- if and .Values.config.reconciler.allNamespaces .Values.config.reconciler.namespaces }}
{{- fail "set either config.reconciler.namespaces or config.reconciler.allNamespaces=true, not both" }}
{{- else if .Values.config.reconciler.allNamespaces }}
{{- list | toJson }}
{{- else if .Values.config.reconciler.namespaces }}
{{- .Values.config.reconciler.namespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{- define "kube-autorollout.leaderElection" -}}
{{- if or .Values.config.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{- define "kube-autorollout.leaseName" -}}
{{- default (include "kube-autorollout.fullname" .) .Values.config.leaderElection.leaseName }}
{{- end }}

{{- define "kube-autorollout.webhookServiceHost" -}}
{{- printf "%s.%s.svc" (include "kube-autorollout.fullname" .) .Release.Namespace }}
{{- end }}

{{- define "kube-autorollout.tlsSecretName" -}}
{{- if eq .Values.webhook.certificates.mode "secret" }}
{{- required "webhook.certificates.secret.name is required with webhook.certificates.mode=secret" .Values.webhook.certificates.secret.name }}
{{- else }}
{{- printf "%s-webhook-tls" (include "kube-autorollout.fullname" .) }}
{{- end }}
{{- end }}

{{/* Directories inside the container. */}}
{{- define "kube-autorollout.configDir" -}}/etc/kube-autorollout/config{{- end }}
{{- define "kube-autorollout.tlsDir" -}}/etc/kube-autorollout/tls{{- end }}

{{/*
The secret type of a registry entry. Upstream's examples omit `type` for an Opaque Secret with
name+key, so it is inferred when absent.
*/}}
{{- define "kube-autorollout.registrySecretType" -}}
{{- $s := .secret | default dict }}
{{- if $s.type }}{{ $s.type }}
{{- else if $s.mountPath }}ImagePullSecret
{{- else if or $s.key $s.token }}Opaque
{{- else }}None
{{- end }}
{{- end }}

{{/*
Environment variables for Opaque registry Secrets, as JSON: {"ENV_NAME": {"name": secret, "key": key}}.
As upstream, the variable is named after the Secret key; a key that is no valid variable name, or that
two different Secrets share, gets a generated name instead.
*/}}
{{- define "kube-autorollout.registryEnv" -}}
{{- $env := dict }}
{{- range $i, $r := .Values.config.registries }}
{{- $s := $r.secret | default dict }}
{{- if and (eq (include "kube-autorollout.registrySecretType" $r) "Opaque") $s.name $s.key (not $s.token) }}
{{- $var := $s.key }}
{{- $taken := get $env $var }}
{{- if or (not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*$" $var)) (and $taken (or (ne $taken.name $s.name) (ne $taken.key $s.key))) }}
{{- $var = printf "KUBE_AUTOROLLOUT_REGISTRY_%d_TOKEN" $i }}
{{- end }}
{{- $_ := set $env $var (dict "name" $s.name "key" $s.key) }}
{{- end }}
{{- end }}
{{- $env | toJson }}
{{- end }}

{{/* CA certificate paths for the config: custom CA Secret mounts plus paths given directly. */}}
{{- define "kube-autorollout.caCertificatePaths" -}}
{{- $paths := list }}
{{- $tls := .Values.config.tls | default dict }}
{{- $custom := $tls.customCaCertificates | default dict }}
{{- if $custom.enabled }}
{{- range $custom.secrets }}
{{- $paths = append $paths (required "config.tls.customCaCertificates.secrets[].mountPath is required" .mountPath) }}
{{- end }}
{{- end }}
{{- range ($tls.caCertificatePaths | default list) }}
{{- $paths = append $paths . }}
{{- end }}
{{- $paths | uniq | toJson }}
{{- end }}

{{/* The config file, rendered from values. */}}
{{- define "kube-autorollout.config" -}}
{{- $c := .Values.config }}
{{- $envByRegistry := dict }}
{{- range $var, $ref := (include "kube-autorollout.registryEnv" . | fromJson) }}
{{- $_ := set $envByRegistry (printf "%s/%s" $ref.name $ref.key) $var }}
{{- end }}
{{- $registries := list }}
{{- range $i, $r := $c.registries }}
{{- $s := $r.secret | default dict }}
{{- $type := include "kube-autorollout.registrySecretType" $r }}
{{- $secret := dict "type" $type }}
{{- if eq $type "ImagePullSecret" }}
{{- $_ := set $secret "name" (required (printf "config.registries[%d].secret.name is required for type ImagePullSecret" $i) $s.name) }}
{{- $_ := set $secret "mountPath" (required (printf "config.registries[%d].secret.mountPath is required for type ImagePullSecret" $i) $s.mountPath) }}
{{- else if eq $type "Opaque" }}
{{- if $s.token }}
{{- $_ := set $secret "token" $s.token }}
{{- else if and $s.name $s.key }}
{{- $_ := set $secret "name" $s.name }}
{{- $_ := set $secret "key" $s.key }}
{{- $_ := set $secret "token" (printf "${%s}" (get $envByRegistry (printf "%s/%s" $s.name $s.key))) }}
{{- else }}
{{- fail (printf "config.registries[%d].secret: type Opaque needs `name` and `key` (a Secret) or `token`" $i) }}
{{- end }}
{{- with $s.username }}{{ $_ := set $secret "username" . }}{{ end }}
{{- end }}
{{- $registries = append $registries (dict "hostnamePattern" (required (printf "config.registries[%d].hostnamePattern is required" $i) $r.hostnamePattern) "secret" $secret) }}
{{- end }}
{{- $webhook := dict
  "host" "0.0.0.0"
  "port" .Values.webhook.port
  "tlsCertFile" (printf "%s/tls.crt" (include "kube-autorollout.tlsDir" .))
  "tlsKeyFile" (printf "%s/tls.key" (include "kube-autorollout.tlsDir" .))
  "imagePullPolicy" $c.webhook.imagePullPolicy
  "lookupBudgetSeconds" $c.webhook.lookupBudgetSeconds
  "maxImagesPerReview" $c.webhook.maxImagesPerReview }}
{{- $reconciler := dict
  "namespaces" (include "kube-autorollout.namespaces" . | fromJsonArray)
  "allNamespaces" $c.reconciler.allNamespaces
  "maxPatchesPerSecond" $c.reconciler.maxPatchesPerSecond
  "resyncSeconds" $c.reconciler.resyncSeconds
  "cycleTimeoutSeconds" $c.reconciler.cycleTimeoutSeconds
  "registryConcurrency" $c.reconciler.registryConcurrency }}
{{- $leader := dict
  "enabled" (eq (include "kube-autorollout.leaderElection" .) "true")
  "leaseName" (include "kube-autorollout.leaseName" .)
  "leaseDurationSeconds" $c.leaderElection.leaseDurationSeconds
  "renewSeconds" $c.leaderElection.renewSeconds }}
{{- $policy := $c.rolloutPolicy | default dict }}
{{- $rolloutPolicy := dict
  "settleSeconds" ($policy.settleSeconds | default 0)
  "cooldownSeconds" ($policy.cooldownSeconds | default 0)
  "windows" ($policy.windows | default list)
  "maxRolloutsInFlight" ($policy.maxRolloutsInFlight | default 0)
  "progressDeadlineSeconds" ($policy.progressDeadlineSeconds | default 600)
  "compare" ($policy.compare | default "index") }}
{{- $config := dict
  "logLevel" $c.logLevel
  "cronSchedule" $c.cronSchedule
  "webserver" (dict "port" $c.webserver.port)
  "registries" $registries
  "tls" (dict "caCertificatePaths" (include "kube-autorollout.caCertificatePaths" . | fromJsonArray))
  "featureFlags" (dict
    "enableJfrogArtifactoryFallback" $c.featureFlags.enableJfrogArtifactoryFallback
    "enableKubectlAnnotation" $c.featureFlags.enableKubectlAnnotation)
  "digestCacheTtlSeconds" $c.digestCacheTtlSeconds
  "lookupTimeoutSeconds" $c.lookupTimeoutSeconds
  "webhook" $webhook
  "reconciler" $reconciler
  "leaderElection" $leader
  "rolloutPolicy" $rolloutPolicy }}
{{- with (include "kube-autorollout.events" . | fromYaml) }}
{{- $_ := set $config "events" . }}
{{- end }}
{{- with (include "kube-autorollout.notifications" . | fromYaml) }}
{{- $_ := set $config "notifications" . }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{- define "kube-autorollout.eventsDir" -}}/etc/kube-autorollout/events{{- end }}

{{/*
The config's `events` section, only while events.enabled: each source's Secret reference becomes a
`secretFile` under eventsDir (the Secret is mounted there by the Deployment).
*/}}
{{- define "kube-autorollout.events" -}}
{{- $e := .Values.events }}
{{- if $e.enabled }}
{{- $sources := dict }}
{{- range $name, $s := $e.sources }}
{{- $source := dict }}
{{- if $s.secretRef }}
{{- $_ := set $source "secretFile" (printf "%s/%s/%s" (include "kube-autorollout.eventsDir" $) $name $s.secretRef.key) }}
{{- else if $s.allowUnauthenticated }}
{{- $_ := set $source "allowUnauthenticated" true }}
{{- else }}
{{- fail (printf "events.sources.%s needs secretRef {name, key} or allowUnauthenticated: true" $name) }}
{{- end }}
{{- range $key := list "header" "requestsPerSecond" "burst" "registryHost" }}
{{- if hasKey $s $key }}{{ $_ := set $source $key (get $s $key) }}{{ end }}
{{- end }}
{{- $_ := set $sources $name $source }}
{{- end }}
{{- if not $sources }}
{{- fail "events.enabled is true but events.sources is empty" }}
{{- end }}
{{- $events := dict "enabled" true "host" "0.0.0.0" "port" $e.port "coalesceSeconds" $e.coalesceSeconds "maxBodyBytes" $e.maxBodyBytes "sources" $sources }}
{{- if $e.tlsSecretName }}
{{- $_ := set $events "tlsCertFile" (printf "%s/tls/tls.crt" (include "kube-autorollout.eventsDir" .)) }}
{{- $_ := set $events "tlsKeyFile" (printf "%s/tls/tls.key" (include "kube-autorollout.eventsDir" .)) }}
{{- end }}
{{- toYaml $events }}
{{- end }}
{{- end }}

{{/*
What the program does with workloads, in every namespace in scope: watch labeled workloads and patch
them, read pods (adoption reads the running digest from pod status), record Events, and read the
imagePullSecrets workloads name (optional).
*/}}
{{- /* Platform comparison reads the nodes' platforms (a watch): only when it can be asked for. */}}
{{- define "kube-autorollout.readNodes" -}}
{{- $policy := .Values.config.rolloutPolicy | default dict }}
{{- if or .Values.rbac.nodes.enabled (eq ($policy.compare | default "index") "platform") }}true{{- end }}
{{- end }}

{{- define "kube-autorollout.nodeRules" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{- define "kube-autorollout.workloadRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
{{- /* Adoption reads a Deployment's ReplicaSets to tell its own pods from a stranger's. */}}
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.secrets.enabled }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- end }}

{{/* Leader election: create the Lease, then read and renew only that one. */}}
{{- define "kube-autorollout.leaseRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "kube-autorollout.leaseName" . | quote }}]
  verbs: ["get", "update", "patch"]
{{- end }}

{{- define "kube-autorollout.notificationsDir" -}}/etc/kube-autorollout/notifications{{- end }}

{{/*
The environment variable holding a notification sink's URL: KAR_NOTIFY_<NAME>_URL.
*/}}
{{- define "kube-autorollout.notificationEnv" -}}
{{- printf "KAR_NOTIFY_%s_URL" (. | upper | replace "-" "_") }}
{{- end }}

{{/*
The config's `notifications` section, only while sinks are listed: each sink's Secret reference
becomes `urlEnv` (the key as an environment variable) or `urlFile` (the Secret mounted under
notificationsDir); the URL itself never enters the ConfigMap.
*/}}
{{- define "kube-autorollout.notifications" -}}
{{- $n := .Values.notifications }}
{{- if $n.sinks }}
{{- $sinks := list }}
{{- range $i, $s := $n.sinks }}
{{- $name := required (printf "notifications.sinks[%d].name is required" $i) $s.name }}
{{- $ref := required (printf "notifications.sinks[%d].urlSecretRef {name, key} is required" $i) $s.urlSecretRef }}
{{- if not (and $ref.name $ref.key) }}
{{- fail (printf "notifications.sinks[%d].urlSecretRef needs name and key" $i) }}
{{- end }}
{{- $sink := dict "name" $name "type" (required (printf "notifications.sinks[%d].type is required" $i) $s.type) }}
{{- if eq ($s.urlFrom | default "env") "file" }}
{{- $_ := set $sink "urlFile" (printf "%s/%s/%s" (include "kube-autorollout.notificationsDir" $) $name $ref.key) }}
{{- else }}
{{- $_ := set $sink "urlEnv" (include "kube-autorollout.notificationEnv" $name) }}
{{- end }}
{{- range $key := list "outcomes" "timeoutSeconds" "maxAttempts" "backoffSeconds" "maxBackoffSeconds" "queueSize" }}
{{- if hasKey $s $key }}{{ $_ := set $sink $key (get $s $key) }}{{ end }}
{{- end }}
{{- $sinks = append $sinks $sink }}
{{- end }}
{{- toYaml (dict "drainSeconds" $n.drainSeconds "sinks" $sinks) }}
{{- end }}
{{- end }}
