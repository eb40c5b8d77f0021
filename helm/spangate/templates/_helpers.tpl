{{- define "spangate.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spangate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "spangate.labels" -}}
{{ include "spangate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .Values.mode }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "spangate.configChecksum" -}}
{{ toYaml .Values.config | sha256sum }}
{{- end -}}

{{/*
The spangate container. Sidecar users include it in their own pod spec:
  containers:
    {{- include "spangate.sidecar" . | nindent 4 }}
and add the volumes from "spangate.volumes".
*/}}
{{- define "spangate.sidecar" -}}
- name: spangate
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["--config", "/etc/spangate/pipelines.yaml"]
  ports:
    - { name: otlp-grpc, containerPort: {{ .Values.ports.otlpGrpc }} }
    - { name: otlp-http, containerPort: {{ .Values.ports.otlpHttp }} }
    - { name: metrics, containerPort: {{ .Values.ports.metrics }} }
  readinessProbe:
    httpGet: { path: /readyz, port: metrics }
    periodSeconds: 5
  livenessProbe:
    httpGet: { path: /healthz, port: metrics }
    periodSeconds: 10
  securityContext: {{- toYaml .Values.securityContext | nindent 4 }}
  resources: {{- toYaml .Values.resources | nindent 4 }}
  volumeMounts:
    - { name: spangate-config, mountPath: /etc/spangate, readOnly: true }
    - { name: spangate-data, mountPath: /var/lib/spangate }
{{- end -}}

{{- define "spangate.volumes" -}}
- name: spangate-config
  configMap: { name: {{ include "spangate.fullname" . }} }
- name: spangate-data
  {{- toYaml .Values.dataVolume | nindent 2 }}
{{- end -}}

{{- define "spangate.podTemplate" -}}
metadata:
  labels: {{- include "spangate.labels" . | nindent 4 }}
  annotations:
    checksum/config: {{ include "spangate.configChecksum" . }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext: {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    {{- include "spangate.sidecar" . | nindent 4 }}
  volumes:
    {{- include "spangate.volumes" . | nindent 4 }}
  {{- with .Values.nodeSelector }}
  nodeSelector: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity: {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
