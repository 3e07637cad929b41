package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
)

// Bounds of the Pod look-up behind an unhealthy workload.
const (
	// podListLimit is how many of a workload's Pods one List reads.
	podListLimit = 50
	// podsNamed is how many failing Pods a workload's entry names.
	podsNamed = 3
	// unhealthyListed is how many entries status.unhealthy keeps.
	unhealthyListed = 20
)

// Health is the verdict over a Release's objects: kstatus, or the
// Release's spec.healthCheckExprs for the kinds they name.
type Health struct {
	// Healthy is true when every object is Current.
	Healthy bool
	// Failed is true when an object is Failed (not just in progress).
	Failed bool
	// NotReady names each object that is not Current, with kstatus' reason
	// or the health check expression that decided; a failing Pod of a
	// workload follows the workload's entry.
	NotReady []string
}

// Message lists the objects that are not healthy, and why.
func (h Health) Message() string {
	const max = 8
	list := h.NotReady
	more := ""
	if len(list) > max {
		more = fmt.Sprintf(" (and %d more)", len(list)-max)
		list = list[:max]
	}
	return strings.Join(list, "; ") + more
}

// Unhealthy is NotReady bounded for status.unhealthy.
func (h Health) Unhealthy() []string {
	if len(h.NotReady) <= unhealthyListed {
		return h.NotReady
	}
	out := append([]string{}, h.NotReady[:unhealthyListed-1]...)
	return append(out, fmt.Sprintf("and %d more", len(h.NotReady)-unhealthyListed+1))
}

// assessHealth reads every object in inv and judges it: with the health
// check of checks that names its apiVersion and kind, else with kstatus.
// For a workload that is not Current it names the reasons of a few of its
// Pods, read through c (so only what the Release's identity may read).
func assessHealth(ctx context.Context, c client.Reader, inv []v1alpha1.ObjectRef, checks healthChecks) (Health, error) {
	h := Health{Healthy: true}
	var errs []error
	for _, ref := range inv {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(schema.GroupVersionKind{Group: ref.Group, Version: ref.Version, Kind: ref.Kind})
		err := c.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, live)
		if apierrors.IsNotFound(err) {
			h.Healthy = false
			h.NotReady = append(h.NotReady, refName(ref)+": NotFound")
			continue
		}
		if err != nil {
			errs = append(errs, &ObjectError{Op: "read", Object: refName(ref), Err: err})
			continue
		}
		var res *status.Result
		if hc := checks[[2]string{live.GetAPIVersion(), ref.Kind}]; hc != nil {
			res, err = hc.evaluate(ctx, live)
		} else if b := builtinHealth(live); b != nil {
			res = b
		} else {
			res, err = status.Compute(live)
		}
		if err != nil {
			errs = append(errs, &ObjectError{Op: "compute status of", Object: refName(ref), Err: err})
			continue
		}
		if res.Status == status.CurrentStatus {
			continue
		}
		h.Healthy = false
		if res.Status == status.FailedStatus {
			h.Failed = true
		}
		msg := refName(ref) + ": " + res.Status.String()
		if res.Message != "" {
			msg += ": " + res.Message
		}
		h.NotReady = append(h.NotReady, msg)
		h.NotReady = append(h.NotReady, failingPods(ctx, c, live)...)
	}
	if len(errs) > 0 {
		return h, errors.Join(errs...)
	}
	return h, nil
}

// failingPods names up to podsNamed Pods of a Deployment, StatefulSet or
// DaemonSet that are not running and ready, with why. It reads at most
// podListLimit Pods, by the workload's selector in its namespace; when they
// cannot be read (the Release's identity may not list Pods) it names none.
func failingPods(ctx context.Context, c client.Reader, w *unstructured.Unstructured) []string {
	gvk := w.GroupVersionKind()
	if gvk.Group != "apps" || (gvk.Kind != "Deployment" && gvk.Kind != "StatefulSet" && gvk.Kind != "DaemonSet") {
		return nil
	}
	raw, found, err := unstructured.NestedMap(w.Object, "spec", "selector")
	if !found || err != nil {
		return nil
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil || sel.Empty() {
		return nil
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(w.GetNamespace()), client.MatchingLabelsSelector{Selector: sel}, client.Limit(podListLimit)); err != nil {
		return nil
	}
	var out []string
	for i := range pods.Items {
		why := podProblem(&pods.Items[i])
		if why == "" {
			continue
		}
		out = append(out, "Pod "+pods.Items[i].Name+": "+why)
		if len(out) == podsNamed {
			break
		}
	}
	return out
}

// podProblem is why a Pod is not running and ready, from its status: a
// container's waiting or terminated reason (CrashLoopBackOff,
// ImagePullBackOff, OOMKilled...), Unschedulable, a failed phase, or not
// ready. "" for a Pod that is ready, or being deleted.
func podProblem(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return ""
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return withMessage(string(p.Status.Phase)+reasonSuffix(p.Status.Reason), p.Status.Message)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return withMessage(nonEmpty(c.Reason, "NotScheduled"), c.Message)
		}
	}
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range statuses {
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "ContainerCreating" && cs.State.Waiting.Reason != "PodInitializing":
			why := fmt.Sprintf("%s (container %s", cs.State.Waiting.Reason, cs.Name)
			if t := cs.LastTerminationState.Terminated; t != nil {
				why += fmt.Sprintf(", last exit %d%s", t.ExitCode, reasonSuffix(t.Reason))
			}
			if cs.RestartCount > 0 {
				why += fmt.Sprintf(", %d restarts", cs.RestartCount)
			}
			why += ")"
			if strings.Contains(cs.State.Waiting.Reason, "Image") || strings.Contains(cs.State.Waiting.Reason, "Config") {
				return withMessage(why, cs.State.Waiting.Message)
			}
			return why
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
			return fmt.Sprintf("%s (container %s, exit %d)", nonEmpty(cs.State.Terminated.Reason, "Terminated"), cs.Name, cs.State.Terminated.ExitCode)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
			return withMessage("not ready"+reasonSuffix(c.Reason), c.Message)
		}
	}
	if p.Status.Phase != corev1.PodRunning {
		return nonEmpty(string(p.Status.Phase), "Pending")
	}
	return ""
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return " " + reason
}

func nonEmpty(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

// withMessage appends a status message, cut to keep the entry short.
func withMessage(what, msg string) string {
	const max = 160
	msg = strings.Join(strings.Fields(msg), " ")
	if msg == "" {
		return what
	}
	if len(msg) > max {
		msg = msg[:max] + "…"
	}
	return what + ": " + msg
}
