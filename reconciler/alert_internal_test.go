package reconciler

import "testing"

// TestClip: a delivery message is cut on a rune boundary, marked, within n bytes.
func TestClip(t *testing.T) {
	for _, tt := range []struct{ s, want string }{
		{"short", "short"},
		{"abcdefghij", "abcdef…"},
		{"abcdeéxyz", "abcde…"}, // é is 2 bytes: never cut in half
	} {
		if got := clip(tt.s, 9); got != tt.want || len(got) > 9 {
			t.Errorf("clip(%q, 9) = %q, want %q", tt.s, got, tt.want)
		}
	}
}
