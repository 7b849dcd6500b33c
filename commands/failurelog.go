package commands

import (
	"sync"
	"time"
)

// failureLog rate-limits the WARN line of upstream failures (Engine.fail):
// at most one each refusalWindow, the next saying how many were left out.
// An outage fails every command of every client at once; a line each put
// 25 lines in the log for a 2 s outage with 16 clients, and thousands of
// clients would have flooded it. sessproxy_upstream_errors_total counts
// every failure, by kind.
type failureLog struct {
	now        func() time.Time // default: time.Now
	mu         sync.Mutex
	logged     time.Time // when the last line was written
	suppressed int       // failures left out of the log since
}

// admit reports whether a failure is logged now, and how many were left
// out since the last line.
func (l *failureLog) admit() (bool, int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.logged.IsZero() && now.Sub(l.logged) < refusalWindow {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.logged, l.suppressed = now, 0
	return true, n
}
