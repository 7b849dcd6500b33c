package proxy

import (
	"sync"

	"go.uber.org/zap"
)

// Pushes (RESP3 `invalidate` of CLIENT TRACKING) reach a client outside
// its request cycle: the commands package hands them to the client's
// pushQueue from any goroutine, and a goroutine of the queue's own writes
// them. A batch holds the queue's write lock from its first reply to its
// last, so a push never splits a reply, and one queued while the batch
// runs (an invalidation of a key the batch has just read) goes out after
// the batch's replies, never ahead of the value it invalidates.

// pushQueue is one client's out-of-band writer (commands.Pusher).
type pushQueue struct {
	st    *connState
	write sync.Mutex // held by a running batch, and while pushes are written

	mu      sync.Mutex
	pending []byte
	started bool
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

// Push queues a frame; it never blocks. Past max_client_reply_bytes of
// pushes not taken, the client is closed, as for replies.
func (q *pushQueue) Push(frame []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if int64(len(q.pending)+len(frame)) > q.st.s.opts.MaxClientReplyBytes {
		q.st.s.log.Warn("client closed: unsent invalidations over the limit", zap.Int64("max_client_reply_bytes", q.st.s.opts.MaxClientReplyBytes))
		q.closeLocked()
		_ = q.st.conn.Close()
		return
	}
	q.pending = append(q.pending, frame...)
	if !q.started {
		q.started = true
		q.wake, q.done = make(chan struct{}, 1), make(chan struct{})
		go q.run()
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run writes what is queued whenever no batch is being answered.
func (q *pushQueue) run() {
	for {
		select {
		case <-q.done:
			return
		case <-q.wake:
		}
		q.write.Lock()
		q.mu.Lock()
		b := q.pending
		q.pending = nil
		q.mu.Unlock()
		if len(b) > 0 {
			if _, err := q.st.conn.Write(b); err != nil {
				_ = q.st.conn.Close() // the read side ends the client
			}
		}
		q.write.Unlock()
	}
}

// close stops the queue's goroutine; the client is gone.
func (q *pushQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closeLocked()
}

func (q *pushQueue) closeLocked() {
	if q.closed {
		return
	}
	q.closed = true
	q.pending = nil
	if q.started {
		close(q.done)
	}
}
