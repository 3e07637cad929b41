package reconciler

import (
	"testing"
	"time"
)

// TestHealthPollBacksOff: right after an apply health is checked every
// minHealthPoll, so a rollout of a few hundred milliseconds is seen Ready
// within a quarter of a second of its end; later the wait grows with the
// time since the apply up to HealthPoll, so a long rollout costs few checks.
func TestHealthPollBacksOff(t *testing.T) {
	tests := []struct {
		name       string
		healthPoll time.Duration
		since      time.Duration
		want       time.Duration
	}{
		{name: "just applied", since: 5 * time.Millisecond, want: 250 * time.Millisecond},
		{name: "after half a second", since: 500 * time.Millisecond, want: 250 * time.Millisecond},
		{name: "after a second", since: time.Second, want: 500 * time.Millisecond},
		{name: "after three seconds", since: 3 * time.Second, want: 1500 * time.Millisecond},
		{name: "after a minute: the default longest", since: time.Minute, want: 2 * time.Second},
		{name: "a shorter HealthPoll bounds the first checks too", healthPoll: 200 * time.Millisecond, since: 0, want: 200 * time.Millisecond},
		{name: "a longer HealthPoll", healthPoll: 10 * time.Second, since: time.Minute, want: 10 * time.Second},
		{name: "a clock behind the apply", since: -time.Second, want: 250 * time.Millisecond},
	}
	for _, tt := range tests {
		r := &Reconciler{HealthPoll: tt.healthPoll}
		if got := r.healthPoll(tt.since); got != tt.want {
			t.Errorf("%s: healthPoll(%v) = %v, want %v", tt.name, tt.since, got, tt.want)
		}
	}
}
