package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"airlock.dev/airlock/artifact"
	"airlock.dev/airlock/internal/registrytest"
	"airlock.dev/airlock/verify"
)

// writeTestReceipt stores a receipt for ref from cluster, signed with the
// key file, as a controller started with --cluster-name cluster would.
func writeTestReceipt(t *testing.T, ref artifact.Reference, keyPath, cluster, health string) {
	t.Helper()
	key, err := verify.LoadPrivateKeyFile(keyPath, []byte(cliPassword))
	if err != nil {
		t.Fatal(err)
	}
	c, err := artifact.NewClient(artifact.RemoteOptions{PlainHTTPInsecure: true}.For(ref))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	p := &verify.ReceiptPredicate{Event: verify.ReceiptReady, Cluster: verify.ReceiptCluster{Name: cluster, ID: cluster + "-uid"},
		Release: verify.ReceiptRelease{Namespace: "team", Name: "app"}, Artifact: verify.ReceiptArtifact{URL: "oci://" + ref.Name(), Digest: ref.Digest, Revision: testRevision},
		Health: verify.ReceiptHealth{Result: health}, AppliedAt: at, ReadyAt: at, Controller: verify.ReceiptController{Version: "test"}}
	if _, err := verify.WriteReceipt(context.Background(), c, ref, key, p); err != nil {
		t.Fatal(err)
	}
}

// TestCLIReceiptsPromotion: the promotion gate refuses a digest without a
// healthy receipt from staging; after staging's and production's receipts,
// `receipts` lists both clusters, each verified with its own key; receipts
// travel through export and import.
func TestCLIReceiptsPromotion(t *testing.T) {
	t.Setenv(passwordEnv, cliPassword)
	reg := registrytest.New(t)
	dir := t.TempDir()
	relKey, relPub, _ := cliKeygen(t, dir, "release")
	stagingKey, stagingPub, _ := cliKeygen(t, dir, "staging")
	prodKey, prodPub, _ := cliKeygen(t, dir, "production")
	url := "oci://" + reg.Addr + "/team/app:v1"
	if _, stderr, code := runCLI(t, "", "push", "artifact", url, "--path", exampleDir(t), "--source", "https://example.com/app.git", "--revision", testRevision,
		"--insecure-registry", "--sign-key", relKey); code != 0 {
		t.Fatalf("push: %s", stderr)
	}

	gate := []string{"verify", url, "--key", relPub, "--require-receipt", "staging", "--receipt-key", stagingPub, "--insecure-registry"}
	_, stderr, code := runCLI(t, "", gate...)
	if code != 1 || !strings.Contains(stderr, "no valid deployment receipt") || !strings.Contains(stderr, `no receipt from cluster "staging"`) {
		t.Fatalf("the gate without a receipt exited %d: %s", code, stderr)
	}

	out, _, code := runCLI(t, "", "verify", url, "--key", relPub, "--insecure-registry", "-o", "json")
	var res verify.Result
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("verify -o json exited %d: %s", code, out)
	}
	ref := mustParse(t, res.Ref)
	writeTestReceipt(t, ref, stagingKey, "staging", "Unhealthy")
	if _, stderr, code = runCLI(t, "", gate...); code != 1 || !strings.Contains(stderr, "health Unhealthy") {
		t.Fatalf("the gate with an unhealthy receipt exited %d: %s", code, stderr)
	}
	writeTestReceipt(t, ref, stagingKey, "staging", "Healthy")
	writeTestReceipt(t, ref, prodKey, "production", "Healthy")

	out, stderr, code = runCLI(t, "", gate...)
	if code != 0 || !strings.Contains(out, "Receipt:  sha256:") || !strings.Contains(out, "from cluster staging") {
		t.Fatalf("the gate with staging's receipt exited %d:\n%s\n%s", code, out, stderr)
	}
	// production's key does not stand in for staging's.
	if _, stderr, code = runCLI(t, "", "verify", url, "--key", relPub, "--require-receipt", "staging", "--receipt-key", prodPub, "--insecure-registry"); code != 1 {
		t.Fatalf("the gate with production's key for staging exited %d: %s", code, stderr)
	}

	out, stderr, code = runCLI(t, "", "receipts", url, "--key", stagingPub, "--key", prodPub, "--insecure-registry")
	if code != 0 || !strings.Contains(out, "staging") || !strings.Contains(out, "production") || strings.Count(out, "team/app") != 4 {
		t.Fatalf("receipts exited %d:\n%s\n%s", code, out, stderr)
	}
	out, stderr, code = runCLI(t, "", "receipts", url, "--key", prodPub, "--insecure-registry", "-o", "json")
	var rs verify.Receipts
	if code != 0 || json.Unmarshal([]byte(out), &rs) != nil {
		t.Fatalf("receipts -o json exited %d:\n%s\n%s", code, out, stderr)
	}
	if len(rs.Receipts) != 1 || rs.Receipts[0].Predicate.Cluster.Name != "production" || len(rs.Skipped) != 2 {
		t.Fatalf("receipts with production's key only: %+v", rs)
	}

	// The receipts leave the site with the artifact: export, import
	// elsewhere, and they verify there.
	tarball := filepath.Join(t.TempDir(), "evidence.tar")
	if out, stderr, code := runCLI(t, "", "export", url, "-o", tarball, "--insecure-registry"); code != 0 {
		t.Fatalf("export exited %d: %s\n%s", code, out, stderr)
	}
	audit := registrytest.New(t)
	if out, stderr, code := runCLI(t, "", "import", tarball, "oci://"+audit.Addr+"/evidence", "--insecure-registry", "--verify-key", relPub); code != 0 {
		t.Fatalf("import exited %d: %s\n%s", code, out, stderr)
	}
	out, stderr, code = runCLI(t, "", "receipts", "oci://"+audit.Addr+"/evidence/team/app@"+ref.Digest, "--key", stagingPub, "--key", prodPub, "--insecure-registry", "-o", "json")
	rs = verify.Receipts{}
	if code != 0 || json.Unmarshal([]byte(out), &rs) != nil || len(rs.Receipts) != 3 {
		t.Fatalf("receipts after export and import exited %d: %+v\n%s", code, rs, stderr)
	}
}

// TestCLISignVerifyBlob: a file signed with `sign blob` verifies with
// `verify blob` and the key, and not once changed or with another key.
func TestCLISignVerifyBlob(t *testing.T) {
	t.Setenv(passwordEnv, cliPassword)
	dir := t.TempDir()
	key, pub, _ := cliKeygen(t, dir, "release")
	_, otherPub, _ := cliKeygen(t, dir, "other")
	file := filepath.Join(dir, "SHA256SUMS")
	writeFile(t, file, "abc  airlock\n")
	if _, stderr, code := runCLI(t, "", "sign", "blob", file, "--key", key, "--output-signature", file+".sig"); code != 0 {
		t.Fatalf("sign blob exited %d: %s", code, stderr)
	}
	if out, stderr, code := runCLI(t, "", "verify", "blob", file, "--key", pub, "--signature", file+".sig"); code != 0 || !strings.Contains(out, "Verified") {
		t.Fatalf("verify blob exited %d: %s %s", code, out, stderr)
	}
	if _, _, code := runCLI(t, "", "verify", "blob", file, "--key", otherPub, "--signature", file+".sig"); code != 1 {
		t.Fatalf("verify blob with another key exited %d, want 1", code)
	}
	writeFile(t, file, "abd  airlock\n")
	if _, _, code := runCLI(t, "", "verify", "blob", file, "--key", pub, "--signature", file+".sig"); code != 1 {
		t.Fatalf("verify blob of a changed file exited %d, want 1", code)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
