package receiver

import (
	"errors"
	"sync"
	"time"
)

// Replay errors.
var (
	// ErrReplayed: the nonce was seen within the window.
	ErrReplayed = errors.New("already received")
	// ErrReplayCacheFull: the cache holds its maximum of unexpired nonces,
	// so a new one could not be remembered; the sender should retry later.
	ErrReplayCacheFull = errors.New("replay cache full")
)

// Nonces remembers what was received (an HMAC signature, an event ID, a
// body's hash) for a window, in a bounded number of entries. The zero value
// is not usable: use NewNonces.
type Nonces struct {
	window time.Duration
	max    int

	mu   sync.Mutex
	seen map[string]time.Time // nonce → expiry
	// order is the nonces by insertion with their expiry, so that expiry
	// sweeps from the front.
	order []entry
}

type entry struct {
	nonce  string
	expiry time.Time
}

// NewNonces remembers nonces for window, at most max at once.
func NewNonces(window time.Duration, max int) *Nonces {
	return &Nonces{window: window, max: max, seen: map[string]time.Time{}}
}

// Add remembers nonce at now. It fails with ErrReplayed when the nonce is
// remembered, and ErrReplayCacheFull when max nonces are unexpired.
func (n *Nonces) Add(nonce string, now time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.expire(now)
	if exp, ok := n.seen[nonce]; ok && now.Before(exp) {
		return ErrReplayed
	}
	if len(n.seen) >= n.max {
		return ErrReplayCacheFull
	}
	exp := now.Add(n.window)
	n.seen[nonce] = exp
	n.order = append(n.order, entry{nonce, exp})
	return nil
}

// Forget drops a nonce, so that the sender's retry of a request that failed
// on the receiver's side is not taken for a replay.
func (n *Nonces) Forget(nonce string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.seen, nonce)
}

// Len is the number of nonces remembered.
func (n *Nonces) Len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.seen)
}

// expire drops the nonces whose window has passed. Every nonce gets the same
// window, so insertion order is expiry order.
func (n *Nonces) expire(now time.Time) {
	i := 0
	for ; i < len(n.order) && !now.Before(n.order[i].expiry); i++ {
		// A nonce forgotten and added again has a later entry of its own.
		if e := n.order[i]; n.seen[e.nonce].Equal(e.expiry) {
			delete(n.seen, e.nonce)
		}
	}
	n.order = n.order[i:]
}
