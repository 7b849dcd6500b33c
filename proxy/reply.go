package proxy

// Replies are written to the client by the proxy itself, not through
// redcon's writer: redcon buffers a whole batch's replies before writing
// any, and keeps that buffer (up to 256 KB) for the connection's life.
// Here a batch's replies go out in pieces of flushBytes as they are
// produced, each write blocking until the client takes it, and what the
// batch holds is accounted in the server's budget.

// flushBytes is the size of the pieces replies are written in.
const flushBytes = 64 << 10

// run runs one batch of commands under the budget: its request's bytes are
// taken before it starts (waiting while the budget is spent, which stops
// this client's reading: the backpressure), its replies' as they arrive
// from Redis (Replies), and all of them are given back once its replies
// are written.
func (s *Server) run(st *connState, args [][][]byte) {
	cost := requestCost(args)
	s.budget.acquire(cost)
	st.push.write.Lock() // pushes wait for this batch's replies (push.go)
	defer st.push.write.Unlock()
	defer func() {
		s.budget.release(cost + st.replies)
		st.lastCost, st.lastReplies, st.replies = cost, st.replies, 0
	}()
	st.pipeline.Run(s.ctx, args, st.write)
	st.flush()
}

// replyRatio is how many bytes of replies the client's last batch brought
// per byte of request, at least 1; before any batch, assumed 64 (an MGET
// of sessions of a few hundred bytes).
func (st *connState) replyRatio() int { return int(replyRatio(st.lastCost, st.lastReplies)) }

// replyRatio is the reply bytes per request byte of a client's last batch
// (cost, replies), at least 1; 64 before any batch.
func replyRatio(cost, replies int64) int64 {
	if cost == 0 {
		return 64
	}
	return max(1, replies/cost)
}

// runBatches runs args as batches whose replies are expected (at the
// client's last reply-to-request ratio) to stay under maxHeldReplyBytes,
// in order, so a burst of MGETs of big sessions read at once does not hold
// all its replies at once.
func (s *Server) runBatches(st *connState, args [][][]byte) {
	for len(args) > 0 {
		n, est := 0, int64(0)
		for n < len(args) && (n == 0 || est <= maxHeldReplyBytes) {
			est += requestCost(args[n:n+1]) * int64(st.replyRatio())
			n++
		}
		s.run(st, args[:n])
		args = args[n:]
		if st.overLimit || st.writeErr != nil || st.client.Closing() {
			return
		}
	}
}

// requestCost is what a batch's request holds: its arguments twice (in a
// read buffer, which doubles to fit a large request, and the copies made
// of them, such as keys), and the slice header each was parsed into.
func requestCost(args [][][]byte) int64 {
	var n int64
	for _, cmd := range args {
		for _, a := range cmd {
			n += 2*int64(len(a)) + 24
		}
	}
	return n
}

// Replies is commands.Meter: n more bytes of replies held for this client.
func (st *connState) Replies(n int64) bool {
	st.s.budget.take(n)
	st.replies += n
	if st.replies > st.s.opts.MaxClientReplyBytes {
		st.overLimit = true
	}
	return !st.overLimit
}

// ReplyRoom is commands.Meter: the whole limit, since run writes out each
// batch's replies before the next batch starts.
func (st *connState) ReplyRoom() int64 { return st.s.opts.MaxClientReplyBytes }

// ReplyTooLarge is commands.Meter: the batch built replies past the limit.
func (st *connState) ReplyTooLarge() { st.overLimit = true }

// write queues one reply, writing out what is queued when it reaches
// flushBytes. Past the client's limit nothing more is written: the client
// is closed once the batch ends.
func (st *connState) write(b []byte) {
	if st.overLimit || st.writeErr != nil {
		return
	}
	if len(st.out)+len(b) > flushBytes {
		st.flush()
		if len(b) >= flushBytes {
			st.send(b)
			return
		}
	}
	st.out = append(st.out, b...)
}

// flush writes what is queued.
func (st *connState) flush() {
	if len(st.out) > 0 && !st.overLimit && st.writeErr == nil {
		st.send(st.out)
	}
	st.out = st.out[:0]
}

func (st *connState) send(b []byte) {
	if _, err := st.conn.Write(b); err != nil {
		st.writeErr = err // the client is gone: close it
	}
}
