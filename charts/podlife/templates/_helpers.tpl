{{/*
The chart's name (app.kubernetes.io/name, and the job label Prometheus gives
the agents through the ServiceMonitor's or PodMonitor's jobLabel).
*/}}
{{- define "podlife.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name when it contains
the chart name, else RELEASE-NAME; truncated to 63 characters (DNS labels).
*/}}
{{- define "podlife.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "podlife.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "podlife.labels" -}}
helm.sh/chart: {{ include "podlife.chart" . }}
{{ include "podlife.selectorLabels" . }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/part-of: podlife
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: the DaemonSet's selector, the Service's and the monitors'.
*/}}
{{- define "podlife.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podlife.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount's name.
*/}}
{{- define "podlife.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "podlife.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image's tag: image.tag, default the chart's appVersion.
*/}}
{{- define "podlife.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
The image: REGISTRY/REPOSITORY:TAG, plus @DIGEST when image.digest is set.
*/}}
{{- define "podlife.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" $repo (include "podlife.imageTag" .) .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (include "podlife.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The node-name relabeling both monitors start with: alerts and the dashboard
group by `node`.
*/}}
{{- define "podlife.monitorRelabelings" -}}
- action: replace
  sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
{{- with .relabelings }}
{{ toYaml . }}
{{- end }}
{{- end }}
