package main

import (
	"testing"
	"time"
)

// TestCreatedTime: --created, else SOURCE_DATE_EPOCH (read by the CLI
// only; the artifact package reads no environment), else zero (the epoch).
func TestCreatedTime(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	got, err := createdTime("")
	if err != nil || !got.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("createdTime with SOURCE_DATE_EPOCH = %v, %v", got, err)
	}
	got, err = createdTime("2024-01-02T15:04:05Z")
	if err != nil || got.Format(time.RFC3339) != "2024-01-02T15:04:05Z" {
		t.Fatalf("createdTime(--created) = %v, %v; the flag wins over the environment", got, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := createdTime(""); err == nil {
		t.Fatal("createdTime accepted SOURCE_DATE_EPOCH=yesterday")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if got, err := createdTime(""); err != nil || !got.IsZero() {
		t.Fatalf("createdTime without either = %v, %v; want zero (the epoch)", got, err)
	}
}
