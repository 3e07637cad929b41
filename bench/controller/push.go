package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
)

// pushShape is the artifact of --push-notify: a Deployment of one replica
// whose Pod template carries the push's number, so every push is a rollout
// (a new ReplicaSet, its Pod scheduled on a kwok Node and Ready, the old one
// scaled down) that wait: true waits for.
func pushShape(n int) map[string]string {
	return map[string]string{"deployment.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels:
      app: app
  template:
    metadata:
      labels:
        app: app
      annotations:
        bench.airlock.dev/push: "%d"
    spec:
      containers:
      - name: app
        image: registry.example.com/app:v1
`, n)}
}

// pushPoll is how often the Release is read while a push is timed: the
// figures are late by up to this much.
const pushPoll = 20 * time.Millisecond

// pushTimes are one push's times, from the CLI's exit.
type pushTimes struct {
	cli     time.Duration // the CLI's run: pack, push, sign and notify
	handled time.Duration // the controller handled the receiver's reconcile request
	ready   time.Duration // Ready, the new digest applied and rolled out
}

// pushNotify times n pushes through the receiver: each runs the airlock
// CLI (push artifact --sign-key --notify), then waits until the Release
// in ns is Ready on the pushed digest. Nothing else reconciles the Release:
// its interval is 1h.
func pushNotify(ctx context.Context, o options, c client.Client, ns, receiverAddr, repo, work string, signKey []byte) error {
	// The Receiver: generic HMAC, as a CI job uses it.
	token := []byte("bench-receiver-token-0123456789abcdef")
	tokenFile := filepath.Join(work, "receiver-token")
	keyFile := filepath.Join(work, "cosign.key")
	for f, b := range map[string][]byte{tokenFile: token, keyFile: signKey} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return err
		}
	}
	for _, obj := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "receiver-token", Namespace: ns}, Data: map[string][]byte{v1alpha1.ReceiverTokenKey: token}},
		&v1alpha1.Receiver{ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: ns}, Spec: v1alpha1.ReceiverSpec{
			Type: v1alpha1.ReceiverGenericHMAC, SecretRef: v1alpha1.LocalObjectReference{Name: "receiver-token"},
		}},
	} {
		if err := c.Create(ctx, obj); err != nil {
			return err
		}
	}
	var rcv v1alpha1.Receiver
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "ci"}, &rcv); err != nil {
			return err
		}
		if meta.IsStatusConditionTrue(rcv.Status.Conditions, v1alpha1.ConditionReady) && rcv.Status.WebhookPath != "" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Receiver %s/ci not Ready after 1m: %+v", ns, rcv.Status)
		}
	}
	hook := "http://" + receiverAddr + rcv.Status.WebhookPath

	app := filepath.Join(work, "app")
	load := loadAverage()
	var times []pushTimes
	for i := 1; i <= o.pushNotify; i++ {
		for name, content := range pushShape(i) {
			if err := os.WriteFile(filepath.Join(app, name), []byte(content), 0o644); err != nil {
				return err
			}
		}
		var before v1alpha1.Release
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app"}, &before); err != nil {
			return err
		}
		prevRequest := before.Annotations[v1alpha1.ReconcileRequestAnnotation]
		cmd := exec.CommandContext(ctx, o.airlock, "push", "artifact", "oci://"+repo+":v1", "--path", app,
			"--source", "https://example.com/app.git", "--revision", fmt.Sprintf("main@sha1:%040x", i),
			"--sign-key", keyFile, "--insecure-registry", "--notify", hook, "--notify-secret", tokenFile, "-o", "json")
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=bench")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		began := time.Now()
		err := cmd.Run()
		returned := time.Now()
		if err != nil {
			return fmt.Errorf("push %d: %s: %v\n%s", i, cmd, err, stderr.Bytes())
		}
		var pushed struct {
			Digest string `json:"digest"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &pushed); err != nil || pushed.Digest == "" {
			return fmt.Errorf("push %d: read the digest of its -o json output %q: %v", i, stdout.Bytes(), err)
		}
		t := pushTimes{cli: returned.Sub(began)}
		for {
			var rel v1alpha1.Release
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app"}, &rel); err != nil {
				return err
			}
			now := time.Since(returned)
			if req := rel.Annotations[v1alpha1.ReconcileRequestAnnotation]; t.handled == 0 && req != prevRequest && rel.Status.LastHandledReconcileAt == req {
				t.handled = now
			}
			if meta.IsStatusConditionTrue(rel.Status.Conditions, v1alpha1.ConditionReady) &&
				rel.Status.LastAppliedDigest == pushed.Digest && rel.Status.ObservedGeneration == rel.Generation {
				t.ready = now
				break
			}
			if now > 2*time.Minute {
				return fmt.Errorf("push %d of %s: the Release is not Ready on it after 2m: %+v", i, pushed.Digest, rel.Status.Conditions)
			}
			time.Sleep(pushPoll)
		}
		// Ready must mean the rollout of this push finished.
		var d appsv1.Deployment
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app"}, &d); err != nil {
			return err
		}
		if d.Spec.Template.Annotations["bench.airlock.dev/push"] != strconv.Itoa(i) || d.Status.ObservedGeneration != d.Generation ||
			d.Status.UpdatedReplicas != 1 || d.Status.AvailableReplicas != 1 || d.Status.Replicas != 1 {
			return fmt.Errorf("push %d: the Release is Ready but Deployment %s/app is not rolled out: template %v, generation %d, status %+v",
				i, ns, d.Spec.Template.Annotations, d.Generation, d.Status)
		}
		times = append(times, t)
		fmt.Printf("  push %2d: %s, CLI %v, reconcile request handled after %v, Ready after %v\n", i, pushed.Digest[:19],
			t.cli.Round(time.Millisecond), t.handled.Round(time.Millisecond), t.ready.Round(time.Millisecond))
	}
	pick := func(f func(pushTimes) time.Duration) []time.Duration {
		var d []time.Duration
		for _, t := range times {
			d = append(d, f(t))
		}
		slices.Sort(d)
		return d
	}
	ready := pick(func(t pushTimes) time.Duration { return t.ready })
	handled := pick(func(t pushTimes) time.Duration { return t.handled })
	cli := pick(func(t pushTimes) time.Duration { return t.cli })
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	fmt.Printf("push → Ready over %d pushes (airlock push artifact --sign-key --notify, to Ready with the Deployment rolled out on kwok Nodes, polled every %v): median %v, p90 %v, min %v, max %v (target median ≤ 2 s)\n",
		len(ready), pushPoll, r(median(ready)), r(quantile(ready, 0.9)), r(ready[0]), r(ready[len(ready)-1]))
	fmt.Printf("  of which until the receiver's reconcile request was handled: median %v, max %v; the CLI's own run: median %v\n",
		r(median(handled)), r(handled[len(handled)-1]), r(median(cli)))
	fmt.Printf("  load average before %s, after %s\n", load, loadAverage())
	return nil
}

// median is the median of sorted d.
func median(d []time.Duration) time.Duration {
	n := len(d)
	if n%2 == 1 {
		return d[n/2]
	}
	return (d[n/2-1] + d[n/2]) / 2
}

// quantile is the q-quantile of sorted d, nearest rank.
func quantile(d []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}
