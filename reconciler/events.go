package reconciler

import (
	"fmt"
	"math"
	"os"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record"
)

// eventActionAnnotation carries an event's action from eventRecorder.Eventf
// to actionSink, through the core/v1 record API that has no action of its
// own; actionSink moves it to the Event's action field and writes no such
// annotation.
const eventActionAnnotation = "airlock.dev/event-action"

// NewEventRecorder returns the events.k8s.io recorder the controllers use,
// on client-go's core/v1 record API, with its memory bounded: controller-
// runtime's recorder (client-go's tools/events) keeps a copy of every event
// it recorded for 6 to 12 minutes to count repeats, 2 MB at the first apply
// of 1,000 Releases, whereas record keeps the entries least recently seen,
// at most entries of each of its caches (0 means record's default, 4096).
//
// Events keep their content: record's aggregation of similar events into
// one "(combined from similar events)" message and its spam filter (25
// events per object, then one every 5 minutes) are both turned off, as
// tools/events has neither; a repeat of an event still in the cache is
// counted on its Event. stop writes the events queued and stops; call it
// once the controllers have stopped.
func NewEventRecorder(cfg *rest.Config, scheme *runtime.Scheme, component string, entries int, log logr.Logger) (rec events.EventRecorder, stop func(), err error) {
	cs, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("create the events client: %w", err)
	}
	b := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{
		LRUCacheSize: entries,
		// Events are aggregated only when identical, message included.
		KeyFunc: func(e *corev1.Event) (string, string) {
			key, message := record.EventAggregatorByReasonFunc(e)
			return key + message, ""
		},
		BurstSize: math.MaxInt32,
		QPS:       math.MaxFloat32,
	}))
	b.StartRecordingToSink(actionSink{&corev1client.EventSinkImpl{Interface: cs.Events("")}})
	b.StartEventWatcher(func(e *corev1.Event) {
		log.V(1).Info(e.Message, "type", e.Type, "object", e.InvolvedObject, "reason", e.Reason)
	})
	hostname, _ := os.Hostname()
	// The same reporting instance as tools/events gives.
	r := b.NewRecorder(scheme, corev1.EventSource{Component: component, Host: component + "-" + hostname})
	return eventRecorder{r}, b.Shutdown, nil
}

// eventRecorder is an events.EventRecorder on the core/v1 record API.
type eventRecorder struct{ rec record.EventRecorder }

// Eventf records an event about regarding; related is not recorded (the
// core/v1 record API has no field for it, and no controller passes one).
func (r eventRecorder) Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.rec.AnnotatedEventf(regarding, map[string]string{eventActionAnnotation: action}, eventtype, reason, note, args...)
}

// actionSink writes Events with the action eventRecorder put in their
// annotations.
type actionSink struct{ record.EventSink }

func (s actionSink) Create(e *corev1.Event) (*corev1.Event, error) {
	if a, ok := e.Annotations[eventActionAnnotation]; ok {
		c := *e
		c.Action = a
		c.Annotations = nil
		for k, v := range e.Annotations {
			if k != eventActionAnnotation {
				if c.Annotations == nil {
					c.Annotations = map[string]string{}
				}
				c.Annotations[k] = v
			}
		}
		e = &c
	}
	return s.EventSink.Create(e)
}
