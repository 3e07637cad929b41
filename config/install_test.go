package config_test

import (
	"context"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/config"
	"airlock.dev/airlock/internal/envtestenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	envtestenv.Stop()
	os.Exit(code)
}

func installObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return decodeAll(t, config.Install)
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == "Deployment" {
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
				t.Fatal(err)
			}
			return &d
		}
	}
	t.Fatal("install.yaml has no Deployment")
	return nil
}

// TestInstallManifests checks what install.yaml holds, in an order that a
// plain apply of the file accepts on an empty cluster.
func TestInstallManifests(t *testing.T) {
	objs := installObjects(t)
	var kinds []string
	for _, u := range objs {
		kinds = append(kinds, u.GetKind()+"/"+u.GetName())
		if u.GetLabels()["app.kubernetes.io/part-of"] != "airlock" {
			t.Errorf("%s %s lacks the label app.kubernetes.io/part-of=airlock", u.GetKind(), u.GetName())
		}
	}
	want := "Namespace/airlock-system CustomResourceDefinition/alerts.delivery.airlock.dev CustomResourceDefinition/clustertrustpolicies.delivery.airlock.dev CustomResourceDefinition/receivers.delivery.airlock.dev CustomResourceDefinition/releases.delivery.airlock.dev ServiceAccount/airlock-controller Role/airlock-leader-election ClusterRole/airlock-controller RoleBinding/airlock-controller-applier RoleBinding/airlock-leader-election ClusterRoleBinding/airlock-controller Service/airlock-controller-metrics Deployment/airlock-controller"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("install.yaml objects:\n got %s\nwant %s", got, want)
	}
	if ns := objs[0]; ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("Namespace airlock-system labels = %v: want pod-security.kubernetes.io/enforce=restricted", ns.GetLabels())
	}

	d := deployment(t, objs)
	pod := d.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v: want runAsNonRoot, a non-zero runAsUser and the RuntimeDefault seccomp profile", sc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container securityContext = %+v: want readOnlyRootFilesystem, no privilege escalation, all capabilities dropped", sc)
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v: want cpu and memory requests and a memory limit", r)
	}
	if c.Image != config.DefaultImage {
		t.Errorf("image = %q, want %q (airlock install --image replaces it)", c.Image, config.DefaultImage)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Error("the controller container needs liveness and readiness probes")
	}

	// A Release author gets no more power than its ServiceAccount: the
	// controller holds no cluster-wide write rights, applies as the
	// namespace's default ServiceAccount, and knows its own namespace.
	for _, u := range objs {
		if u.GetKind() == "ClusterRoleBinding" || u.GetKind() == "RoleBinding" {
			if name, _, _ := unstructured.NestedString(u.Object, "roleRef", "name"); name == "cluster-admin" || (name == "admin" && u.GetKind() == "ClusterRoleBinding") {
				t.Errorf("%s %s binds %s: the controller must not apply as a cluster administrator", u.GetKind(), u.GetName(), name)
			}
		}
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--default-service-account=default", "--no-cross-namespace-refs"} {
		if !strings.Contains(args, want) {
			t.Errorf("controller args %q lack %s", args, want)
		}
	}
	podNS := false
	for _, e := range c.Env {
		podNS = podNS || (e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace")
	}
	if !podNS {
		t.Error("the controller container lacks POD_NAMESPACE from the downward API (metadata.namespace)")
	}
	// $GOMEMLIMIT wins over --memory-limit-ratio: set to the whole memory
	// limit, the soft limit would act only when the container is already
	// being killed, since the binary's pages and stacks come on top of it.
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" || e.Name == "GOGC" {
			t.Errorf("the controller container sets $%s, which overrides --memory-limit-ratio and --gc-percent: leave them to the flags", e.Name)
		}
	}
}

// TestInstallManifestsApply applies install.yaml to a real API server with
// server-side apply, the Deployment after a server-side dry-run, then checks
// that the Pod it would create passes the restricted Pod Security Standard
// enforced in airlock-system (and that a privileged one would not).
func TestInstallManifestsApply(t *testing.T) {
	env := envtestenv.Start(t)
	ctx := context.Background()
	c := client.WithFieldOwner(env.Client, "airlock-install-test")
	objs := installObjects(t)
	for _, u := range objs {
		// Apply writes the server's answer into its argument: a copy each time.
		if u.GetKind() == "Deployment" {
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.ForceOwnership, client.DryRunAll); err != nil {
				t.Fatalf("server-side dry-run of Deployment %s: %v", u.GetName(), err)
			}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), u.DeepCopy()); !apierrors.IsNotFound(err) {
				t.Fatalf("after a dry-run, Deployment %s: %v, want not found", u.GetName(), err)
			}
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.ForceOwnership); err != nil {
			t.Fatalf("server-side apply of %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	// Applying again changes nothing.
	for _, u := range objs {
		before := u.DeepCopy()
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(before), before); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.ForceOwnership); err != nil {
			t.Fatalf("second apply of %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		after := u.DeepCopy()
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(after), after); err != nil {
			t.Fatal(err)
		}
		if before.GetResourceVersion() != after.GetResourceVersion() {
			t.Errorf("second apply of %s %s changed it", u.GetKind(), u.GetName())
		}
	}

	d := deployment(t, objs)
	pod := func(mutate func(*corev1.PodSpec)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "airlock-controller-", Namespace: d.Namespace, Labels: d.Spec.Template.Labels}, Spec: *d.Spec.Template.Spec.DeepCopy()}
		if mutate != nil {
			mutate(&p.Spec)
		}
		return p
	}
	if err := env.Client.Create(ctx, pod(nil), client.DryRunAll); err != nil {
		t.Errorf("the controller's Pod is refused in %s: %v", d.Namespace, err)
	}
	err := env.Client.Create(ctx, pod(func(s *corev1.PodSpec) {
		s.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
		s.SecurityContext.RunAsNonRoot = nil
		s.SecurityContext.RunAsUser = nil
	}), client.DryRunAll)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
		t.Errorf("a Pod that breaks the restricted standard was not refused by PodSecurity (%v): the check above proves nothing", err)
	}
}
