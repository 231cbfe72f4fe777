{{/*
Names and labels shared by every object of the chart.
*/}}

{{/* The chart name, overridable with nameOverride. */}}
{{- define "gpudra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: the release name, with the chart name added
unless the release name already contains it. Cluster-scoped objects carry it
too, so two releases in different namespaces do not collide.
*/}}
{{- define "gpudra.fullname" -}}
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

{{- define "gpudra.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "gpudra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of the kubelet plugin pods; immutable once installed. */}}
{{- define "gpudra.kubeletPlugin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpudra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: kubelet-plugin
{{- end }}

{{- define "gpudra.kubeletPlugin.name" -}}
{{- printf "%s-kubelet-plugin" (include "gpudra.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpudra.simConfigMap.name" -}}
{{- printf "%s-sim-config" (include "gpudra.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fails on value combinations the plugin would reject at start, so a bad
install fails at `helm install` instead of crash-looping on every node.
*/}}
{{- define "gpudra.validate" -}}
{{- if and .Values.sim.enabled (not .Values.sim.profile) (not .Values.sim.config) }}
{{- fail "sim.enabled needs sim.profile or sim.config" }}
{{- end }}
{{- if and (not .Values.sim.enabled) .Values.sim.config }}
{{- fail "sim.config is set but sim.enabled is false: enable sim, or unset sim.config for real GPUs" }}
{{- end }}
{{- end }}
