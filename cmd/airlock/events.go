package main

import (
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func newEventsReleaseCmd() *cobra.Command {
	var kube kubeFlags
	cmd := &cobra.Command{
		Use:   "release NAME",
		Short: "List a Release's events, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := kube.client()
			if err != nil {
				return err
			}
			r, err := c.getRelease(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			l, err := c.dyn.Resource(eventsResource).Namespace(r.Namespace).List(cmd.Context(), metav1.ListOptions{
				FieldSelector: "involvedObject.uid=" + string(r.UID),
			})
			if err != nil {
				return c.apiError("list the events of Release "+r.Namespace+"/"+r.Name, err)
			}
			evs := make([]event, 0, len(l.Items))
			for i := range l.Items {
				var e event
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(l.Items[i].Object, &e); err != nil {
					return fmt.Errorf("decode event %s: %w", l.Items[i].GetName(), err)
				}
				evs = append(evs, e)
			}
			sort.SliceStable(evs, func(i, j int) bool { return eventTime(&evs[i]).Before(eventTime(&evs[j])) })
			if len(evs) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No events for Release %s/%s (the API server keeps them for an hour by default).\n", r.Namespace, r.Name)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tCOUNT\tMESSAGE")
			for i := range evs {
				e := &evs[i]
				count := max(e.Count, 1)
				if e.Series != nil {
					count = max(e.Series.Count, 1)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", age(metav1.NewTime(eventTime(e))), e.Type, e.Reason, count, oneLine(e.Message))
			}
			return tw.Flush()
		},
	}
	kube.register(cmd.Flags())
	return cmd
}

// event is the part of a core/v1 Event that `airlock events` prints (the
// CLI does not link k8s.io/api, to stay small).
type event struct {
	metav1.ObjectMeta `json:"metadata"`
	Type              string           `json:"type"`
	Reason            string           `json:"reason"`
	Message           string           `json:"message"`
	Count             int32            `json:"count"`
	FirstTimestamp    metav1.Time      `json:"firstTimestamp"`
	LastTimestamp     metav1.Time      `json:"lastTimestamp"`
	EventTime         metav1.MicroTime `json:"eventTime"`
	Series            *struct {
		Count            int32            `json:"count"`
		LastObservedTime metav1.MicroTime `json:"lastObservedTime"`
	} `json:"series"`
}

// eventTime is when an event was last seen, from whichever of the old and
// the new events API fields is set.
func eventTime(e *event) time.Time {
	t := e.CreationTimestamp.Time
	for _, c := range []time.Time{e.FirstTimestamp.Time, e.LastTimestamp.Time, e.EventTime.Time} {
		if c.After(t) {
			t = c
		}
	}
	if e.Series != nil && e.Series.LastObservedTime.After(t) {
		t = e.Series.LastObservedTime.Time
	}
	return t
}
