package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestPods prints the ReplicaSets and Pods as kubectl would: kwok's crash
// stage shows CrashLoopBackOff with its restarts, a deleted Pod
// Terminating, an unscheduled one Pending on no node.
func TestPods(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ago := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }
	labels := map[string]string{"app": "hello"}
	meta := func(name string, created time.Duration) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: "hello", Labels: labels, CreationTimestamp: ago(created)}
	}
	zero, two := int32(0), int32(2)
	rs := func(name string, created time.Duration, replicas *int32, ready int32, image string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: meta(name, created),
			Spec:   appsv1.ReplicaSetSpec{Replicas: replicas, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "hello", Image: image}}}}},
			Status: appsv1.ReplicaSetStatus{Replicas: ready, ReadyReplicas: ready}}
	}
	pod := func(name string, created time.Duration, node string, phase corev1.PodPhase, cs ...corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: meta(name, created),
			Spec:   corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "hello"}}},
			Status: corev1.PodStatus{Phase: phase, ContainerStatuses: cs}}
	}
	running := pod("hello-6f7d-a", 3*time.Minute, "kwok-node-0", corev1.PodRunning, corev1.ContainerStatus{Name: "hello", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	crash := pod("hello-9c4b-b", 20*time.Second, "kwok-node-1", corev1.PodRunning, corev1.ContainerStatus{Name: "hello", RestartCount: 5,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}})
	gone := pod("hello-5d8f-c", 90*time.Minute, "kwok-node-1", corev1.PodRunning)
	gone.DeletionTimestamp, gone.Finalizers = &metav1.Time{Time: now}, []string{"kwok.x-k8s.io/fake"}
	pending := pod("hello-9c4b-d", time.Second, "", corev1.PodPending)
	other := pod("other", time.Minute, "kwok-node-0", corev1.PodRunning)
	other.Labels = map[string]string{"app": "other"}

	c := fake.NewClientBuilder().WithObjects(
		rs("hello-9c4b", 20*time.Second, &zero, 0, "registry.example.com/hello:crash"),
		rs("hello-6f7d", 3*time.Minute, &two, 2, "registry.example.com/hello:2.0.0"),
		running, crash, gone, pending, other).Build()
	var out bytes.Buffer
	if err := pods(context.Background(), c, "hello", "app=hello", now, &out); err != nil {
		t.Fatal(err)
	}
	want := `NAME                         DESIRED   CURRENT   READY   AGE   IMAGES
replicaset.apps/hello-6f7d   2         2         2       3m    registry.example.com/hello:2.0.0
replicaset.apps/hello-9c4b   0         0         0       20s   registry.example.com/hello:crash

NAME               READY   STATUS             RESTARTS   AGE   NODE
pod/hello-5d8f-c   0/1     Terminating        0          90m   kwok-node-1
pod/hello-6f7d-a   1/1     Running            0          3m    kwok-node-0
pod/hello-9c4b-b   0/1     CrashLoopBackOff   5          20s   kwok-node-1
pod/hello-9c4b-d   0/1     Pending            0          1s    <none>
`
	if out.String() != want {
		t.Errorf("pods printed\n%s\nwant\n%s", out.String(), want)
	}

	out.Reset()
	if err := pods(context.Background(), c, "hello", "app=none", now, &out); err != nil {
		t.Fatal(err)
	}
	if want := "NAME   DESIRED   CURRENT   READY   AGE   IMAGES\n\nNo pods in namespace hello with labels app=none.\n"; out.String() != want {
		t.Errorf("pods with no match printed %q, want %q", out.String(), want)
	}
}
