package localcluster_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/internal/localcluster"
)

// The waits are generous deadlines for a loaded 2-core machine, not timings.
const deadline = 3 * time.Minute

func namespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

func deployment(ns, name, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

// kstatusOf computes kstatus's status of obj as the server has it now.
func kstatusOf(ctx context.Context, c client.Client, obj client.Object) (*status.Result, error) {
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return nil, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	gvks, _, err := c.Scheme().ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	u.SetGroupVersionKind(gvks[0])
	return status.Compute(u)
}

// waitStatus waits until kstatus says want for obj, and returns its last result.
func waitStatus(t *testing.T, c client.Client, obj client.Object, want status.Status) *status.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var last *status.Result
	var lastErr error
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		res, err := kstatusOf(ctx, c, obj)
		if err != nil {
			lastErr = err
			return false, nil
		}
		last = res
		return res.Status == want, nil
	})
	if err != nil {
		t.Fatalf("%T %s/%s: kstatus never %s (last: %+v; last error: %v)", obj, obj.GetNamespace(), obj.GetName(), want, last, lastErr)
	}
	return last
}

func pods(t *testing.T, c client.Client, ns, app string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := c.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	return list.Items
}

func condition(d *appsv1.Deployment, typ appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == typ {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

func TestDeploymentBecomesAvailable(t *testing.T) {
	cl := localcluster.Start(t)
	ns := namespace(t, cl.Client)
	d := deployment(ns, "web", "registry.example/web:v1")
	if err := cl.Client.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}

	waitStatus(t, cl.Client, d, status.CurrentStatus)

	if c := condition(d, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("Available condition = %+v, want True", c)
	}
	if d.Status.AvailableReplicas != 2 || d.Status.ReadyReplicas != 2 {
		t.Errorf("available %d, ready %d replicas; want 2 and 2", d.Status.AvailableReplicas, d.Status.ReadyReplicas)
	}
	ps := pods(t, cl.Client, ns, "web")
	running := 0
	for _, p := range ps {
		if p.DeletionTimestamp != nil {
			continue
		}
		running++
		if p.Status.Phase != corev1.PodRunning || !localcluster.PodReady(&p) {
			t.Errorf("pod %s: phase %s, ready %v; want Running and Ready", p.Name, p.Status.Phase, localcluster.PodReady(&p))
		}
		if !slices.Contains(cl.Nodes, p.Spec.NodeName) {
			t.Errorf("pod %s on node %q, want one of the fake nodes %v", p.Name, p.Spec.NodeName, cl.Nodes)
		}
	}
	if running != 2 {
		t.Errorf("%d pods, want 2", running)
	}
}

func TestCrashingDeploymentFails(t *testing.T) {
	cl := localcluster.Start(t)
	ns := namespace(t, cl.Client)
	d := deployment(ns, "crasher", "registry.example/crasher:crash")
	d.Spec.ProgressDeadlineSeconds = ptr.To[int32](10)
	if err := cl.Client.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}

	res := waitStatus(t, cl.Client, d, status.FailedStatus)

	c := condition(d, appsv1.DeploymentProgressing)
	if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "ProgressDeadlineExceeded" {
		t.Errorf("Progressing condition = %+v, want False with reason ProgressDeadlineExceeded (kstatus: %s)", c, res.Message)
	}
	if c := condition(d, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionFalse {
		t.Errorf("Available condition = %+v, want False", c)
	}
	ps := pods(t, cl.Client, ns, "crasher")
	if len(ps) != 2 {
		t.Fatalf("%d pods, want 2", len(ps))
	}
	for _, p := range ps {
		if p.Status.Phase != corev1.PodRunning || localcluster.PodReady(&p) {
			t.Errorf("pod %s: phase %s, ready %v; want Running and not Ready", p.Name, p.Status.Phase, localcluster.PodReady(&p))
		}
		if len(p.Status.ContainerStatuses) != 1 {
			t.Fatalf("pod %s: container statuses %+v, want one", p.Name, p.Status.ContainerStatuses)
		}
		cs := p.Status.ContainerStatuses[0]
		if cs.Ready || cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.RestartCount == 0 {
			t.Errorf("pod %s container: %+v, want not ready, waiting in CrashLoopBackOff, restarted", p.Name, cs)
		}
	}
}

func TestJobCompletes(t *testing.T) {
	cl := localcluster.Start(t)
	ns := namespace(t, cl.Client)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "migrate"},
		Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "migrate", Image: "registry.example/migrate:v1"}},
			}},
		},
	}
	if err := cl.Client.Create(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	// kstatus calls a Job Current as soon as it starts: wait for Complete.
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := cl.Client.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
			return false, nil
		}
		for _, c := range job.Status.Conditions {
			if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("job %s/%s never Complete: status %s", ns, job.Name, fmt.Sprint(job.Status))
	}
	if job.Status.Succeeded != 1 {
		t.Errorf("job: %d pods succeeded, want 1 (status %s)", job.Status.Succeeded, fmt.Sprint(job.Status))
	}
	if res, err := kstatusOf(context.Background(), cl.Client, job); err != nil || res.Status != status.CurrentStatus {
		t.Errorf("job: kstatus %+v, %v; want Current", res, err)
	}
}
