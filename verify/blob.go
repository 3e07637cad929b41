package verify

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// MaxBlobSignatureSize bounds a blob signature file: a base64 ECDSA or RSA
// signature is well under 1 KiB.
const MaxBlobSignatureSize = 16 << 10

// SignBlob signs the content of r with k as `cosign sign-blob --key` does
// (SHA-256, no transparency log) and returns the base64 signature, the
// content of cosign's --output-signature file.
func (k *PrivateKey) SignBlob(r io.Reader) ([]byte, error) {
	if k == nil || k.signer == nil {
		return nil, fmt.Errorf("%w: no private key", ErrKey)
	}
	sig, err := k.signer.SignMessage(r)
	if err != nil {
		return nil, fmt.Errorf("%w: sign blob: %v", ErrKey, err)
	}
	return []byte(base64.StdEncoding.EncodeToString(sig)), nil
}

// VerifyBlob checks sig, a base64 signature as written by `cosign
// sign-blob` or SignBlob, over the content of r with k. A signature that
// does not verify is ErrUntrustedSigner; one that does not decode is
// ErrMalformed.
func (k PublicKey) VerifyBlob(r io.Reader, sig []byte) error {
	if len(sig) > MaxBlobSignatureSize {
		return fmt.Errorf("%w: signature is %d bytes, over %d", ErrMalformed, len(sig), MaxBlobSignatureSize)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig)))
	if err != nil {
		return fmt.Errorf("%w: signature is not base64: %v", ErrMalformed, err)
	}
	if k.verifier == nil {
		return fmt.Errorf("%w: public key %s not loaded", ErrKey, k.Name)
	}
	if err := k.verifier.VerifySignature(bytes.NewReader(raw), r); err != nil {
		return fmt.Errorf("%w: the signature does not verify with key %s (%s): %v", ErrUntrustedSigner, k.Name, shortFP(k.Fingerprint), err)
	}
	return nil
}
