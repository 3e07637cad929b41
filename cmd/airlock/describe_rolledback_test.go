package main

import (
	"bytes"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"airlock.dev/airlock/api/v1alpha1"
)

// TestDescribeRolledBack: after an automatic rollback, the digest rolled
// back from is the last attempted one, and it was applied (then rolled
// back): describe must not call it "not applied".
func TestDescribeRolledBack(t *testing.T) {
	const v2, v3 = digestB, digestC
	r := &v1alpha1.Release{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec:   v1alpha1.ReleaseSpec{URL: "oci://registry.example.com/team/hello", Rollback: &v1alpha1.RollbackSpec{OnFailure: true}},
		Status: v1alpha1.ReleaseStatus{LastAppliedDigest: v2, LastAttemptedDigest: v3, FailedDigest: v3}}
	var out bytes.Buffer
	if err := describeRelease(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "Last attempted:") && strings.Contains(l, "not applied") {
			t.Errorf("describe says the rolled-back digest was not applied: %q", l)
		}
	}
	if !strings.Contains(out.String(), "Last attempted:     "+v3+" (applied, failed health, rolled back)") {
		t.Errorf("describe lacks the rolled-back last attempt:\n%s", out.String())
	}

	// A digest refused before it was applied stays "not applied".
	r.Status.FailedDigest = ""
	out.Reset()
	if err := describeRelease(&out, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Last attempted:     "+v3+" (not applied)") {
		t.Errorf("describe lacks the refused last attempt:\n%s", out.String())
	}
}
