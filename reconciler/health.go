package reconciler

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"airlock.dev/airlock/api/v1alpha1"
)

// Health is the kstatus verdict over a Release's objects.
type Health struct {
	// Healthy is true when every object is Current.
	Healthy bool
	// Failed is true when an object is Failed (not just in progress).
	Failed bool
	// NotReady names each object that is not Current, with kstatus' reason.
	NotReady []string
}

// Message lists the objects that are not healthy, and why.
func (h Health) Message() string {
	const max = 5
	list := h.NotReady
	more := ""
	if len(list) > max {
		more = fmt.Sprintf(" (and %d more)", len(list)-max)
		list = list[:max]
	}
	return strings.Join(list, "; ") + more
}

// CheckHealth reads every object in inv and computes its kstatus.
func CheckHealth(ctx context.Context, c client.Reader, inv []v1alpha1.ObjectRef) (Health, error) {
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
		res, err := status.Compute(live)
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
	}
	if len(errs) > 0 {
		return h, errors.Join(errs...)
	}
	return h, nil
}
