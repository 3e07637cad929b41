package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// ReceiptStatus is a signed deployment receipt the controller stored as a
// cosign attestation on the artifact's sha256-<hex>.att tag.
type ReceiptStatus struct {
	// ArtifactDigest is the digest the receipt is for.
	ArtifactDigest string `json:"artifactDigest"`
	// AppliedAt is the history entry's appliedAt the receipt records.
	AppliedAt metav1.Time `json:"appliedAt"`
	// Digest is the sha256 of the receipt's DSSE envelope, its layer
	// digest on the .att tag.
	Digest string `json:"digest"`
	// Event is Ready or Rollback.
	Event string `json:"event"`
	// Cluster is the cluster name recorded (--cluster-name).
	Cluster string `json:"cluster"`
	// WrittenAt is when it was stored.
	WrittenAt metav1.Time `json:"writtenAt"`
}
