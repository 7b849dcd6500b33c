package proxy

import (
	"bytes"
)

// requestReader reads the requests of a client served by a goroutine
// (serveClient): TLS clients, every client when server.event_loops is
// negative, and the clients an event loop hands over.
//
// redcon's reader, which read these clients before, grew its buffer to fit
// the largest request a client sent and kept it until the client left
// (about twice the request: 40 idle clients after one 4 MiB request each
// held over 200 MB, past the Go memory limit's allowance). This one grows
// the same way while a large request is read, gives the grown buffer to
// that request's commands, and reads on into a buffer of readBufferBytes.
//
// What it reads has passed guardedConn's scanner, which enforces
// max_request_bytes, the protocol, request_timeout and the slots for large
// requests, and says where each request ends; parseRequest, which the
// scanner keeps safe (FuzzRequestScanner), takes each whole request apart.
type requestReader struct {
	conn *guardedConn
	buf  []byte
	n    int // buf[:n]: read, not yet a whole request
}

const (
	// readBufferBytes is what a goroutine's client keeps for reading
	// between requests of this size or smaller.
	readBufferBytes = 4 << 10
	// maxReadBytes bounds one read into a grown buffer, so the scanner's
	// note of where requests end (which a pipeline of tiny requests makes
	// several times the bytes read) stays small.
	maxReadBytes = 64 << 10
	// maxKeptEnds bounds the scratch for those notes kept between reads.
	maxKeptEnds = 256
)

func newRequestReader(c *guardedConn) *requestReader {
	return &requestReader{conn: c, buf: make([]byte, readBufferBytes)}
}

// read appends the next whole commands the client sent, at least one, to
// cmds. Each batch's commands get bytes of their own, which later reads
// leave alone: connState.hold keeps them without a copy. On an error,
// cmds holds the commands the client sent whole before the one at fault;
// a *limitError is the refusal of that one (Server.readFailed).
func (r *requestReader) read(cmds [][][]byte) ([][][]byte, error) {
	sc := &r.conn.scanner
	for {
		if r.n == len(r.buf) {
			// A request larger than the buffer, bounded by
			// max_request_bytes, by what unfinished requests may hold,
			// and, past 1 MiB, by the large-read slots.
			if 2*len(r.buf) > clientMemory {
				if err := r.conn.awaitUnfinished(); err != nil {
					return cmds, err
				}
			}
			grown := make([]byte, 2*len(r.buf))
			copy(grown, r.buf[:r.n])
			r.buf = grown
			r.conn.holdUnfinished(len(r.buf))
		}
		sc.ends = sc.ends[:0]
		k, err := r.conn.Read(r.buf[r.n:min(len(r.buf), r.n+maxReadBytes)])
		if k > 0 {
			// Bytes can come with an error (crypto/tls reads the last
			// record and the close_notify behind it at once): the commands
			// they finish are the client's all the same.
			var cerr error
			if cmds, cerr = r.cut(cmds, k); cerr != nil {
				err = cerr
			}
		}
		if cap(sc.ends) > maxKeptEnds {
			sc.ends = nil
		}
		if err != nil || len(cmds) > 0 {
			return cmds, err
		}
	}
}

// cut turns the whole requests that end in the k bytes just read into
// commands, and keeps what follows the last of them for the next read.
func (r *requestReader) cut(cmds [][][]byte, k int) ([][][]byte, error) {
	ends := r.conn.scanner.ends
	base := r.n
	r.n += k
	if len(ends) == 0 {
		return cmds, nil
	}
	last := base + ends[len(ends)-1]
	var whole []byte
	if len(r.buf) > readBufferBytes {
		// The buffer grew for a request that has now ended (it began
		// before the buffer was full, so it is at least half of it): its
		// commands take the buffer, and reading goes on in a small one.
		whole = r.buf[:last:last]
		rest := r.buf[last:r.n]
		r.buf = make([]byte, max(readBufferBytes, 2*len(rest)))
		r.n = copy(r.buf, rest)
		// The request is whole: the budget takes it from here.
		r.conn.holdUnfinished(len(r.buf))
		r.conn.releaseTurn()
	} else {
		whole = bytes.Clone(r.buf[:last])
		r.n = copy(r.buf, r.buf[last:r.n])
	}
	start := 0
	for _, e := range ends {
		raw := whole[start : base+e]
		start = base + e
		args, err := parseRequest(raw)
		if err != nil {
			// Unbalanced quotes in an inline request, the one mistake
			// the scanner leaves to the parser: the commands before it
			// are the client's, nothing after it is.
			return cmds, err
		}
		if len(args) == 0 {
			continue // an empty inline line or *0, which Redis skips too
		}
		cmds = append(cmds, args)
	}
	return cmds, nil
}
