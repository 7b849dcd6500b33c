package commands

// maxChunkKeys bounds the keys of one upstream command that a multi-key
// command (MGET, MSET, DEL, UNLINK, EXISTS, SESS.DESTROY, SESS.EXISTS)
// becomes. A command with more keys (an MGET of 550,000 keys fits in 8 MB)
// runs at its place in the pipeline as a series of such chunks, one round
// trip each, so what the proxy and Redis hold for it at once is one
// chunk's commands and replies, plus the reply built so far, which the
// proxy accounts as it grows (server.max_inflight_bytes,
// server.max_client_reply_bytes). 1024 keys keep a chunk's round trip
// short for Redis (other clients wait behind it) while the cost per key
// stays that of a pipelined batch.
const maxChunkKeys = 1024

// A resolver maps a key argument to its key, answering the client when it
// refuses it: Engine.resolve for key commands, Engine.sessionKey for the
// ids of SESS.* commands.
type resolver func(c *Call, arg []byte) (keyRef, bool)

// chunkReplies says what becomes of a chunked command's replies from
// Redis once a chunk is collected.
type chunkReplies bool

const (
	// repliesHeld: they become the client's reply (MGET's values) and
	// count as its unsent replies as they come (max_client_reply_bytes,
	// max_inflight_bytes), so that fetching stops past its limit.
	repliesHeld chunkReplies = true
	// repliesDropped: each chunk is reduced to a count or an OK and its
	// replies dropped (MSET, DEL, EXISTS, SESS.DESTROY…), as checkOwned's
	// are. Counted as held they added up over the chunks: an EXISTS of
	// 300,000 keys, whose reply is one integer, passed a 1 MiB limit and
	// closed the client.
	repliesDropped chunkReplies = false
)

// chunks runs a multi-key command whose key arguments are args[0],
// args[step], … chunk by chunk. Every key is checked first, so a refused
// key leaves the whole command undone, and the commands queued before it
// run first, so it sees their writes. Each chunk's keys are resolved again
// as it is queued: holding every key's keyRef at once would cost what the
// chunks save. queue queues a chunk (its first key's index and its keys)
// and returns what collects the chunk's results once it has run, writing
// to c.Out; false: it answered an error, which then becomes the whole
// reply. chunks returns whether every chunk ran.
func (e *Engine) chunks(c *Call, args [][]byte, step int, resolve resolver, replies chunkReplies, queue func(first int, refs []keyRef) func() bool) bool {
	for i := 0; i < len(args); i += step {
		if _, ok := resolve(c, args[i]); !ok {
			return false
		}
	}
	if !e.flushBefore(c) {
		return false
	}
	// The replies received so far are held for their commands: account
	// them now (as the owner commands do), so that a chunk whose replies
	// are dropped drops only its own.
	c.setAsideReplies()
	if !c.holdReplies() {
		c.Out.Error(msgReplyLimit)
		return false
	}
	for lo := 0; lo < len(args); lo += maxChunkKeys * step {
		hi := min(lo+maxChunkKeys*step, len(args))
		refs := make([]keyRef, 0, (hi-lo+step-1)/step)
		for i := lo; i < hi; i += step {
			r, _ := resolve(c, args[i]) // accepted above
			refs = append(refs, r)
		}
		mark := len(c.Out.Buf)
		collect := queue(lo/step, refs)
		_ = c.exec() // a failure reaches each result, where collect answers it
		if replies == repliesDropped {
			c.Batch.TakeReplyBytes()
		} else if !c.holdReplies() {
			// The proxy is closing the client; stop fetching for it.
			c.Out.Reset(c.Out.Proto)
			c.Out.Error(msgReplyLimit)
			return false
		}
		if !collect() {
			c.Out.Buf = append(c.Out.Buf[:0], c.Out.Buf[mark:]...)
			return false
		}
	}
	return true
}

// setAsideReplies keeps the reply bytes received so far out of this
// command's account when its batch is a round's: they are the other
// clients' (their holder accounts them, Round.TakeReplyBytes), and the
// chunks that follow report only their own.
func (c *Call) setAsideReplies() {
	if c.round != nil {
		c.round.setAside += c.Batch.TakeReplyBytes()
	}
}

// holdReplies reports the replies received since the last report to the
// proxy; false: the client is over its limit of unsent replies.
func (c *Call) holdReplies() bool {
	n := c.Batch.TakeReplyBytes()
	return c.meter == nil || c.meter.Replies(n)
}

// mgetChunked is MGET with more than maxChunkKeys keys.
func (e *Engine) mgetChunked(c *Call) {
	keys := c.Args[1:]
	e.chunks(c, keys, 1, e.resolve, repliesHeld, func(first int, refs []keyRef) func() bool {
		if first == 0 {
			c.Out.Array(len(keys))
		}
		values := e.queueMGet(c, refs)
		return func() bool {
			vals, ok := values()
			if ok {
				appendValues(c, vals)
			}
			return ok
		}
	})
}

// msetChunked is MSET with more than maxChunkKeys keys. Every payload is
// encoded before the first chunk is written, so a refused payload leaves
// the whole command undone.
func (e *Engine) msetChunked(c *Call) {
	pairs := c.Args[1:]
	values := make([][]byte, len(pairs)/2)
	for i := range values {
		r, ok := e.resolve(c, pairs[2*i])
		if !ok {
			return
		}
		values[i] = pairs[2*i+1]
		if r.session {
			if values[i], ok = e.encode(c, r, pairs[2*i+1], false); !ok {
				return
			}
		}
	}
	ok := e.chunks(c, pairs, 2, e.resolve, repliesDropped, func(first int, refs []keyRef) func() bool {
		return e.queueMSet(c, refs, pairs[2*first+1:], values[first:first+len(refs)])
	})
	if ok {
		c.Out.OK()
	}
}

// sumChunked is DEL, UNLINK, EXISTS, SESS.DESTROY or SESS.EXISTS with more
// than maxChunkKeys keys or ids: queue queues a chunk and returns its
// count, and the reply is the counts summed.
func (e *Engine) sumChunked(c *Call, resolve resolver, queue func(*Call, []keyRef) func() (int64, bool)) {
	var total int64
	ok := e.chunks(c, c.Args[1:], 1, resolve, repliesDropped, func(_ int, refs []keyRef) func() bool {
		count := queue(c, refs)
		return func() bool {
			n, ok := count()
			total += n
			return ok
		}
	})
	if ok {
		c.Out.Int(total)
	}
}

// Commands that must look at whole sessions to answer (SESS.BYOWNER,
// SESS.DESTROYOWNER, SESS.ALL) fetch them in chunks rather than all at
// once. The first chunk is firstChunkKeys keys; each next one is sized
// from the bytes the last one brought so that it brings about chunkBytes,
// growing at most twofold (sessions of very different sizes can make one
// chunk bring more), and never past maxChunkKeys.
const (
	firstChunkKeys = 16
	chunkBytes     = 8 << 20
)

// nextChunkSize is the size of the chunk after one of n keys whose
// sessions took fetched bytes.
func nextChunkSize(n int, fetched int64) int {
	next := 2 * n
	if fetched > 0 {
		next = int(min(int64(next), chunkBytes*int64(n)/fetched))
	}
	return max(1, min(next, maxChunkKeys))
}
