package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
)

// SignatureHeader carries a generic webhook body's HMAC-SHA256, as
// "sha256=" and the hex of the MAC, as GitHub's and airlock's receivers
// check it.
const SignatureHeader = "X-Signature"

// Generic posts each event as JSON, signed with HMAC-SHA256 in X-Signature.
type Generic struct {
	webhook
	key []byte
}

// GenericPayload is the JSON body of a generic webhook.
type GenericPayload struct {
	Kind string `json:"kind"` // always Release
	Event
	// Controller is always airlock-controller.
	Controller string `json:"controller"`
}

// Send posts ev.
func (g *Generic) Send(ctx context.Context, ev Event) error {
	ev.Message = message(ev)
	body, err := json.Marshal(GenericPayload{Kind: "Release", Event: ev, Controller: "airlock-controller"})
	if err != nil {
		return Permanent(err)
	}
	h := http.Header{}
	h.Set(SignatureHeader, Sign(g.key, body))
	return g.post(ctx, body, h)
}

// Sign is the X-Signature value of body under key: "sha256=" and the hex
// of its HMAC-SHA256.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks an X-Signature value against body in constant time.
func VerifySignature(key, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(key, body)), []byte(signature))
}
