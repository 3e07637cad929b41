package build_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"airlock.dev/airlock/build"
	"airlock.dev/airlock/build/helmrender"
	"airlock.dev/airlock/build/renderproc"
	"airlock.dev/airlock/internal/chartrendertest"

	"airlock.dev/airlock/internal/testtree"
)

// certManagerSized is a synthetic chart of cert-manager's size (v1.15: 6
// CRDs of about 1 MiB together, 45 templates over a helpers file of named
// templates, values of about 300 lines): 6 CRDs with deep schemas, and for
// each of 10 components a Deployment, a ServiceAccount, a Service, a
// ClusterRole and a ClusterRoleBinding, each with labels and resources
// from included helpers, toYaml of values, conditionals and ranges.
func certManagerSized() map[string]string {
	files := map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: certs\nversion: 1.15.0\nappVersion: v1.15.0\nkubeVersion: '>= 1.22.0-0'\n",
		"templates/_helpers.tpl": `{{- define "certs.name" -}}{{ .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "certs.fullname" -}}{{ printf "%s-%s" .Release.Name .component | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "certs.labels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "certs.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
`,
	}
	var values strings.Builder
	values.WriteString("global:\n  imagePullSecrets: []\n  priorityClassName: \"\"\n  logLevel: 2\n")
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&values, "comp%d:\n  enabled: true\n  replicaCount: 1\n  image: {repository: quay.io/jetstack/cert-manager-comp%d, tag: v1.15.0}\n", i, i)
		values.WriteString("  extraArgs: [--v=2, --leader-elect=true]\n  resources: {requests: {cpu: 10m, memory: 32Mi}}\n")
		values.WriteString("  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\n")
		values.WriteString("  containerSecurityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true}\n")
		values.WriteString("  nodeSelector: {kubernetes.io/os: linux}\n  tolerations: []\n  podLabels: {}\n  podAnnotations: {}\n")
		values.WriteString("  service: {type: ClusterIP, port: 9402}\n  rules:\n")
		for r := 0; r < 6; r++ {
			fmt.Fprintf(&values, "  - {apiGroups: [group%d.example.com], resources: [things%d, things%d/status], verbs: [get, list, watch, update, patch]}\n", r, r, r)
		}
	}
	files["values.yaml"] = values.String()
	for i := 0; i < 10; i++ {
		ctx := fmt.Sprintf(`{{- $ctx := merge (dict "component" "comp%d") . -}}
{{- $v := .Values.comp%d -}}
{{- if $v.enabled }}
`, i, i)
		files[fmt.Sprintf("templates/comp%d-deployment.yaml", i)] = ctx + `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "certs.fullname" $ctx }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "certs.labels" $ctx | nindent 4 }}
spec:
  replicas: {{ $v.replicaCount }}
  selector:
    matchLabels:
      {{- include "certs.selector" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "certs.labels" $ctx | nindent 8 }}
        {{- with $v.podLabels }}{{ toYaml . | nindent 8 }}{{ end }}
      annotations:
        prometheus.io/scrape: "true"
        {{- with $v.podAnnotations }}{{ toYaml . | nindent 8 }}{{ end }}
    spec:
      serviceAccountName: {{ include "certs.fullname" $ctx }}
      {{- with .Values.global.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      containers:
      - name: {{ $ctx.component }}
        image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
        args:
        - --v={{ .Values.global.logLevel }}
        {{- range $v.extraArgs }}
        - {{ . }}
        {{- end }}
        ports:
        - {containerPort: 9402, name: http-metrics}
        securityContext:
          {{- toYaml $v.containerSecurityContext | nindent 10 }}
        resources:
          {{- toYaml $v.resources | nindent 10 }}
      nodeSelector:
        {{- toYaml $v.nodeSelector | nindent 8 }}
{{- end }}
`
		files[fmt.Sprintf("templates/comp%d-serviceaccount.yaml", i)] = ctx + `apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "certs.fullname" $ctx }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "certs.labels" $ctx | nindent 4 }}
{{- end }}
`
		files[fmt.Sprintf("templates/comp%d-service.yaml", i)] = ctx + `apiVersion: v1
kind: Service
metadata:
  name: {{ include "certs.fullname" $ctx }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "certs.labels" $ctx | nindent 4 }}
spec:
  type: {{ $v.service.type }}
  ports:
  - {name: http-metrics, port: {{ $v.service.port }}, targetPort: http-metrics}
  selector:
    {{- include "certs.selector" $ctx | nindent 4 }}
{{- end }}
`
		files[fmt.Sprintf("templates/comp%d-rbac.yaml", i)] = ctx + `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "certs.fullname" $ctx }}
  labels:
    {{- include "certs.labels" $ctx | nindent 4 }}
rules:
{{- range $v.rules }}
- apiGroups: {{ toJson .apiGroups }}
  resources: {{ toJson .resources }}
  verbs: {{ toJson .verbs }}
{{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ include "certs.fullname" $ctx }}
  labels:
    {{- include "certs.labels" $ctx | nindent 4 }}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {{ include "certs.fullname" $ctx }}}
subjects:
- {kind: ServiceAccount, name: {{ include "certs.fullname" $ctx }}, namespace: {{ .Release.Namespace }}}
{{- end }}
`
	}
	files["templates/webhook.yaml"] = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {{ .Release.Name }}-webhook
webhooks:
{{- range $i, $e := until 10 }}
- name: webhook{{ $i }}.certs.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig:
    service: {name: {{ $.Release.Name }}-comp{{ $i }}, namespace: {{ $.Release.Namespace }}, path: /validate}
{{- end }}
`
	for c := 0; c < 6; c++ {
		files[fmt.Sprintf("crds/crd%d.yaml", c)] = crdOfSize(c, 170<<10)
	}
	return files
}

// crdOfSize is a CRD whose schema of nested properties is about size bytes.
func crdOfSize(n, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things%d.group%d.example.com
spec:
  group: group%d.example.com
  names: {kind: Thing%d, plural: things%d}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
`, n, n, n, n, n)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "          field%d:\n            type: object\n            description: A field of the spec, described at some length as real CRDs are, with a sentence or two about what it does.\n            properties:\n", i)
		for j := 0; j < 8; j++ {
			fmt.Fprintf(&b, "              sub%d: {type: string, description: A nested field with its own description.}\n", j)
		}
	}
	return b.String()
}

// BenchmarkRenderChart renders a chart of cert-manager's size (certManagerSized)
// from its files on disk, as the controller does for a pulled chart: with
// Helm's engine in this process (the CLI's renderer), and through a new
// airlock-chart-render process for each render (the controller's).
func BenchmarkRenderChart(b *testing.B) {
	dir := testtree.Write(b, certManagerSized())
	bin := chartrendertest.Build(b, b.TempDir())
	for _, bc := range []struct {
		name     string
		renderer build.ChartRenderer
	}{
		{"in process", helmrender.Engine{}},
		{"process", renderproc.Process{Path: bin}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var objs, size int
			for b.Loop() {
				out, _, err := build.RenderChart(context.Background(), dir, "", "sha256:bench", build.Chart{ReleaseName: "certs", Namespace: "cert-manager"}, build.Options{ChartRenderer: bc.renderer})
				if err != nil {
					b.Fatal(err)
				}
				objs = len(out)
			}
			for _, c := range certManagerSized() {
				size += len(c)
			}
			b.ReportMetric(float64(objs), "objects")
			b.ReportMetric(float64(size)/(1<<20), "chartMiB")
		})
	}
}
