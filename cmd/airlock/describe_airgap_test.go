package main

import (
	"bytes"
	"strings"
	"testing"

	"airlock.dev/airlock/api/v1alpha1"
)

// TestDescribeAirGap: describe shows the chain of trust (upstream signers,
// site signer, import time) and what each image was relocated to, with the
// count when the status list was cut.
func TestDescribeAirGap(t *testing.T) {
	r := &v1alpha1.Release{Spec: v1alpha1.ReleaseSpec{URL: "oci://upstream.example.com/team/app", RelocateImages: true,
		Verify: &v1alpha1.VerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "site-keys"},
			Upstream: &v1alpha1.UpstreamVerifySpec{KeysSecretRef: v1alpha1.LocalObjectReference{Name: "upstream-keys"}}}}}
	r.Status = v1alpha1.ReleaseStatus{
		Chain: &v1alpha1.ChainOfTrust{SiteSigner: v1alpha1.Signer{Name: "site", Fingerprint: "5173"}, UpstreamVerified: true,
			UpstreamSigners: []v1alpha1.Signer{{Name: "upstream", Fingerprint: "a11f"}},
			UpstreamRef:     "oci://upstream.example.com/team/app:v1@sha256:0a", ImportedAt: "2026-11-25T10:00:00Z", ImagesLock: "sha256:1c"},
		RelocatedImages:      []v1alpha1.RelocatedImage{{From: "upstream.example.com/team/web:1.0", To: "mirror.site.local/airgap/team/web@sha256:3e"}},
		RelocatedImagesTotal: 51,
	}
	var out bytes.Buffer
	if err := describeRelease(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"chain of trust: a site signature recording 1 of the upstream keys in Secret upstream-keys",
		"Upstream signers:  upstream (a11f): their own signatures verified at the site",
		"Site signer:       site (5173)",
		"Imported at:       2026-11-25T10:00:00Z",
		"Images lock:       sha256:1c",
		"Relocated images (51):\n  upstream.example.com/team/web:1.0 -> mirror.site.local/airgap/team/web@sha256:3e\n  … and 50 more",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("describe lacks %q:\n%s", want, out.String())
		}
	}
}
