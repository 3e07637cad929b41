package config_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"airlock.dev/airlock/config"
	"airlock.dev/airlock/internal/envtestenv"
)

// decodeAll decodes every object of multi-document YAML.
func decodeAll(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// TestWithReceiverIsConfigReceiver: `airlock install --export --receiver`
// prints what `kubectl apply -k config/receiver` applies, and that opens
// the receiver endpoint: the controller's --receiver-addr, a container
// port, and a Service whose target is that port.
func TestWithReceiverIsConfigReceiver(t *testing.T) {
	got, err := config.WithReceiver(config.Install)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, config.Install[:bytes.Index(config.Install, []byte("apiVersion:"))]) {
		t.Error("WithReceiver lost the generated file's header")
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "receiver")
	if err != nil {
		t.Fatal(err)
	}
	kustomized, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeAll(t, got)
	if diff := cmp.Diff(decodeAll(t, kustomized), objs); diff != "" {
		t.Errorf("WithReceiver(Install) differs from config/receiver (-kustomize +WithReceiver):\n%s", diff)
	}
	if len(objs) != len(installObjects(t))+1 {
		t.Errorf("%d objects, want install.yaml's and one Service", len(objs))
	}

	d := deployment(t, objs)
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--receiver-addr="+config.ReceiverAddr) {
		t.Errorf("controller args %v lack --receiver-addr=%s", c.Args, config.ReceiverAddr)
	}
	var svc *corev1.Service
	for _, u := range objs {
		if u.GetKind() == "Service" && u.GetName() == "airlock-controller-receiver" {
			svc = &corev1.Service{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, svc); err != nil {
				t.Fatal(err)
			}
		}
		if u.GetLabels()["app.kubernetes.io/part-of"] != "airlock" {
			t.Errorf("%s %s lacks the label app.kubernetes.io/part-of=airlock", u.GetKind(), u.GetName())
		}
	}
	if svc == nil {
		t.Fatal("no Service airlock-controller-receiver")
	}
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, the controller's Pod has %v", k, v, d.Spec.Template.Labels)
		}
	}
	target := svc.Spec.Ports[0].TargetPort
	found := false
	for _, p := range c.Ports {
		found = found || (target.Type == intstr.String && p.Name == target.StrVal && fmt.Sprintf(":%d", p.ContainerPort) == config.ReceiverAddr)
	}
	if !found {
		t.Errorf("the Service's targetPort %v is no container port on %s: %+v", target, config.ReceiverAddr, c.Ports)
	}

	// And the API server takes it: every object applied server-side.
	env := envtestenv.Start(t)
	cl := client.WithFieldOwner(env.Client, "airlock-install-test")
	for _, u := range objs {
		opts := []client.ApplyOption{client.ForceOwnership}
		if u.GetKind() == "Deployment" {
			opts = append(opts, client.DryRunAll)
		}
		if err := cl.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u.DeepCopy()), opts...); err != nil {
			t.Fatalf("server-side apply of %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// TestWithReceiverNeedsADeployment: manifests without the controller are
// refused, not returned without the endpoint.
func TestWithReceiverNeedsADeployment(t *testing.T) {
	_, err := config.WithReceiver([]byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n"))
	if err == nil || !strings.Contains(err.Error(), "no Deployment") {
		t.Errorf("err = %v, want one saying there is no Deployment", err)
	}
}
