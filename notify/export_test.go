package notify

import "time"

// Backoff exposes the retry delay to the tests.
func Backoff(d *Dispatcher, attempt int) time.Duration { return d.backoff(attempt) }
